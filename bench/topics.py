"""Topic models side by side on one corpus, and one pipeline run on 100,000 texts, on this CPU.

    python bench/topics.py [--docs 20000] [--topics 20] [--scale 100000] [--skip-scale]

The corpus is written from installed packages (bench/topic_corpus.py): the docstrings of every
Python package in this virtual environment, each labelled with its package (numpy, torch,
sqlalchemy, ...). It is public text that any machine with nlpflow's dependencies can rebuild
offline; its manifest records the package versions. It is not 20 Newsgroups, so the published
figures of the BERTopic paper (20 Newsgroups: NPMI about 0.17 for BERTopic, 0.06 for LDA, 0.09
for NMF; diversity about 0.85) are anchors to read ours against, not the same measurement.

1. Families: a seeded sample of --docs texts, split 80/10/10, cleaned as
   configs/topics_docstrings.yaml cleans them (lower-case, lemmas, no stop words, punctuation or
   numbers, the first 200 tokens) and counted with its vocabulary (train.topics: document
   frequency limits, the words every docstring uses left out); lda, nmf and embedding_clusters
   each fitted with --topics topics in a process of its own (its peak memory is its own), then
   scored on the test texts as evaluate scores them: NPMI and C_v (gensim's CoherenceModel),
   diversity over the top 25 words, NMI and purity against the packages.
2. Scale (run first): `nlpflow run` of configs/topics_docstrings.yaml on --scale texts (every
   stage, the Prefect runner, a throw-away project folder), timed, with the peak memory of its
   largest process.

Prints Markdown tables and writes reports/bench/topics.json with a `goals` object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
FAMILIES = ("lda", "nmf", "embedding_clusters")
# the cleaning and vocabulary of every contender: the docstring config's (its preprocess
# section, and train.topics: document-frequency limits and the words every docstring uses)
CONFIG = ROOT / "configs" / "topics_docstrings.yaml"
GOAL_MARGIN = 0.05  # embedding_clusters' NPMI at least LDA's plus this
GOAL_SECONDS = 600.0  # the 100k run
MIN_WORDS = 10  # docstrings of at least this many words: over 100k of them here


def _config() -> dict[str, Any]:
    import yaml

    return dict(yaml.safe_load(CONFIG.read_text()))


def build_corpus(path: Path) -> dict[str, Any]:
    """bench/topic_corpus.py's corpus at `path` (written when missing) and its manifest."""
    manifest = path.with_name(path.stem + ".manifest.json")
    if not path.exists():
        subprocess.run([sys.executable, str(ROOT / "bench" / "topic_corpus.py"), str(path),
                        "--min-words", str(MIN_WORDS)], check=True)  # fmt: skip
    return dict(json.loads(manifest.read_text()))


def sample_splits(corpus: Path, docs: int, folder: Path, seed: int = 13) -> None:
    """A seeded sample of `docs` rows, cleaned, as train/validation/test parquet in `folder`."""
    import pandas as pd

    from nlpflow.config.params import PreprocessParams
    from nlpflow.data.preprocess import TextPreprocessor

    frame = pd.read_json(corpus, lines=True).sample(n=docs, random_state=seed)
    cleaner = TextPreprocessor(PreprocessParams(**_config()["preprocess"]))
    start = time.perf_counter()
    frame = frame.assign(text=cleaner.transform(frame["text"].tolist()))
    print(f"cleaned {len(frame)} texts in {time.perf_counter() - start:.1f} s", flush=True)
    cut = [int(docs * 0.8), int(docs * 0.9)]
    folder.mkdir(parents=True, exist_ok=True)
    for name, part in zip(("train", "validation", "test"),
                          (frame[: cut[0]], frame[cut[0] : cut[1]], frame[cut[1] :]), strict=True):  # fmt: skip
        part.to_parquet(folder / f"{name}.parquet", index=False)


def run_family(family: str, folder: Path, topics: int) -> dict[str, Any]:
    """One family fitted and scored (in this process: the caller starts one per family)."""
    import pandas as pd

    from nlpflow.config.params import parse_params
    from nlpflow.evaluation.nlp.topic_modeling import compute_model_scores
    from nlpflow.evaluation.topics.metrics import compute_label_agreement
    from nlpflow.training.train import examples, fit

    splits = {s: pd.read_parquet(folder / f"{s}.parquet") for s in ("train", "validation", "test")}
    vocabulary = _config()["train"]["topics"] | {"n_topics": topics}
    params = parse_params({"task": "topic-modeling", "train": {
        "family": family, "topics": vocabulary}}).train  # fmt: skip
    start = time.perf_counter()
    model = fit(examples(splits["train"], "topic-modeling"),
                examples(splits["validation"], "topic-modeling"), labels=[], params=params)  # fmt: skip
    seconds = time.perf_counter() - start
    test = splits["test"]
    start = time.perf_counter()
    scores = compute_model_scores(model, test["text"].tolist())
    shares = model.predict_proba(test["text"].tolist())
    agreement = compute_label_agreement(
        test["label"].astype(str).tolist(), [model.labels[i] for i in shares.argmax(axis=1)]
    )
    return {
        "family": family, "topics": len(model.labels), "train_rows": len(splits["train"]),
        "test_rows": len(test), "npmi": scores["npmi"], "c_v": scores["c_v"],
        "diversity": scores["diversity"], "nmi": agreement["nmi"], "purity": agreement["purity"],
        "fit_seconds": round(seconds, 1), "score_seconds": round(time.perf_counter() - start, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "top_words": [[w for w, _ in t] for t in model.topic_words(8)],
    }  # fmt: skip


def families_in_processes(folder: Path, topics: int) -> list[dict[str, Any]]:
    rows = []
    for family in FAMILIES:
        out = folder / f"{family}.json"
        subprocess.run([sys.executable, __file__, "--one", family, "--folder", str(folder),
                        "--topics", str(topics), "--out", str(out)], check=True)  # fmt: skip
        rows.append(json.loads(out.read_text()))
        print(f"{family}: npmi {rows[-1]['npmi']:.3f} in {rows[-1]['fit_seconds']} s", flush=True)
    return rows


def scale_run(corpus: Path, docs: int) -> dict[str, Any]:
    """`nlpflow run -c configs/topics_docstrings.yaml` on `docs` texts in a fresh project."""
    import pandas as pd

    project = Path(tempfile.mkdtemp(prefix="nlpflow-topics-scale-"))
    try:
        for name in ("params.yaml", "configs", "gx"):
            source = ROOT / name
            (shutil.copytree if source.is_dir() else shutil.copy)(source, project / name)
        frame = pd.read_json(corpus, lines=True)
        frame.sample(n=min(docs, len(frame)), random_state=13).to_json(
            project / "docstrings.jsonl", orient="records", lines=True
        )
        env = os.environ | {
            "NLPFLOW_DATA_ROOT": str(project),
            "PREFECT_HOME": str(project / ".prefect"),
        }
        command = [str(Path(sys.executable).with_name("nlpflow")), "run", "-c",
                   "configs/topics_docstrings.yaml", "--set", "data.source=docstrings.jsonl"]  # fmt: skip
        start = time.perf_counter()
        done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        metrics_file = project / "reports" / "metrics.json"
        metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
        if done.returncode != 0:
            print(done.stdout[-3000:], done.stderr[-3000:], sep="\n")
        return {
            "docs": min(docs, len(frame)), "seconds": round(seconds, 1), "returncode": done.returncode,
            "peak_rss_mb": round(peak / 1024, 1),  # its largest process (run before any other child)
            "npmi": metrics.get("npmi"), "diversity": metrics.get("diversity"),
            "nmi": metrics.get("nmi"), "topics": metrics.get("topics"),
        }  # fmt: skip
    finally:
        shutil.rmtree(project, ignore_errors=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--topics", type=int, default=20)
    parser.add_argument("--scale", type=int, default=100_000)
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument(
        "--reuse-scale", action="store_true",
        help="keep the 100k run of the last report (reports/bench/topics.json): for a re-run of "
        "the families after a change the run's family (nmf) does not read",
    )  # fmt: skip
    parser.add_argument(
        "--corpus", type=Path, default=ROOT / "data" / "topics" / "docstrings.jsonl"
    )
    parser.add_argument("--one", choices=FAMILIES)  # internal: one family, in its own process
    parser.add_argument("--folder", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.one:
        args.out.write_text(json.dumps(run_family(args.one, args.folder, args.topics)))
        return {}
    manifest = build_corpus(args.corpus)
    # first: the peak memory of this process's children is then the run's alone
    last = ROOT / "reports" / "bench" / "topics.json"
    if args.reuse_scale and last.exists():
        scale = json.loads(last.read_text())["scale"]
    else:
        scale = None if args.skip_scale else scale_run(args.corpus, args.scale)
        if scale is not None:
            scale["measured"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with tempfile.TemporaryDirectory(prefix="nlpflow-topics-bench-") as tmp:
        sample_splits(args.corpus, args.docs, Path(tmp))
        rows = families_in_processes(Path(tmp), args.topics)
    by = {row["family"]: row for row in rows}
    goals: dict[str, bool] = {
        "every_family_side_by_side": all(f in by for f in FAMILIES),
        f"embedding_clusters_npmi_at_least_lda_plus_{GOAL_MARGIN}":
            by["embedding_clusters"]["npmi"] >= by["lda"]["npmi"] + GOAL_MARGIN,
    }  # fmt: skip
    if scale is not None:
        goals["run_100k_under_10_minutes"] = (
            scale["returncode"] == 0
            and scale["docs"] >= 100_000
            and scale["seconds"] < GOAL_SECONDS
        )
    report = {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "corpus": {"rows": manifest.get("rows"), "labels": len(manifest.get("label_counts", {})),
                   "min_words": manifest.get("min_words")},
        "docs": args.docs, "topics": args.topics, "families": rows, "scale": scale, "goals": goals,
    }  # fmt: skip
    out = ROOT / "reports" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "topics.json").write_text(json.dumps(report, indent=2))
    print_tables(report)
    return report


def print_tables(report: dict[str, Any]) -> None:
    print(f"\n{report['docs']} docstrings, {report['topics']} topics, 80/10/10 split\n")
    print("| family | NPMI | C_v | diversity | NMI | purity | fit s | score s | peak MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in report["families"]:
        print(f"| {r['family']} | {r['npmi']:.3f} | {r['c_v']:.3f} | {r['diversity']:.2f} | "
              f"{r['nmi']:.3f} | {r['purity']:.3f} | {r['fit_seconds']} | {r['score_seconds']} | "
              f"{r['peak_rss_mb']:.0f} |")  # fmt: skip
    scale = report["scale"]
    if scale:
        print(f"\nnlpflow run on {scale['docs']} texts: {scale['seconds']} s, peak memory "
              f"{scale['peak_rss_mb']:.0f} MB, rc {scale['returncode']}, NPMI {scale['npmi']}")  # fmt: skip
    print(
        "\ngoals: "
        + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in report["goals"].items())
    )


if __name__ == "__main__":
    main()
