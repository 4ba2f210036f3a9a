"""Named-entity recognition on WNUT-17 (../shared/datasets/wnut17) through nlpflow's own stages
(gather, validate, preprocess, train, evaluate) with configs/wnut17.yaml, one family per run,
side by side: entity F1 (seqeval, strict) on the official test set and train seconds.

    python bench/ner.py [--only rules spacy_ner spacy_ner_base token_transformer]
                        [--throughput-epochs 2]   (0: skip the throughput pair)

Training throughput, side by side on the same data in the same run: the token_transformer family
as nlpflow trains it (each batch padded to its longest sentence, length-grouped batches) against
the same training code with run_ner.py's batching as the issue names it (every sentence padded to
max_length 128, random batches), equal epochs and no early stopping, then entity F1 on test.

The trained token_transformer is also registered as the raw-text pyfunc and timed one text per
request, in process and behind `nlpflow serve` (goal: p50 <= 25 ms); its displaCy page of test
sentences is kept as reports/bench/ner_entities.html.

Writes reports/bench/ner.json with a `goals` object (issue 15): the best family that trains in
under 30 minutes on this CPU reaches test entity F1 >= 0.42 (the best WNUT-17 shared-task
system, UH-RiTUAL, 41.9), stretch >= 0.50 (BERTweet 56.5). Published figures are cited, not
measured here.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
BUDGET_S = 30 * 60  # the goal's training budget on this machine

# name -> overrides of configs/wnut17.yaml (the config holds token_transformer's settings):
# a family chosen, nothing else (tests/unit/test_ready_configs.py); a run's other settings are
# in the configs CONFIGS merges over it
RUNS: dict[str, list[str]] = {
    "rules": ["train.family=rules"],
    "spacy_ner": ["train.family=spacy_ner"],  # from a blank English pipeline
    # from en_core_web_sm, its types renamed as OntoNotes names them
    "spacy_ner_base": ["train.family=spacy_ner"],
    # all-MiniLM-L6-v2 (uncased: the only encoder installable from PyPI found), case_types auto
    "token_transformer": ["train.family=token_transformer"],
    # the same, trained on train + dev (configs/wnut17_train_dev.yaml, over wnut17.yaml)
    "token_transformer_train_dev": ["train.family=token_transformer"],
}
# name -> config files merged over configs/wnut17.yaml
CONFIGS: dict[str, list[str]] = {
    "spacy_ner_base": ["wnut17_spacy_base.yaml"],
    "token_transformer_train_dev": ["wnut17_train_dev.yaml"],
}
DEFAULT_RUNS = ["rules", "spacy_ner_base", "token_transformer", "token_transformer_train_dev"]


def run(name: str, out: Path) -> dict[str, Any]:
    from nlpflow.config.params import FAMILIES, load_params
    from nlpflow.config.settings import Settings
    from nlpflow.pipeline.runs import make_context
    from nlpflow.pipeline.stages import METRICS, run_stage

    overrides = RUNS[name]
    family = overrides[0].split("=", 1)[1]
    if family not in FAMILIES:
        return {"run": name, "family": family, "skipped": f"family {family} is not registered"}
    configs = [ROOT / "configs" / c for c in ["wnut17.yaml", *CONFIGS.get(name, [])]]
    params = load_params(ROOT / "params.yaml", overrides, configs)
    if params.evaluate.behavioural:  # the run's project is a temporary folder: by absolute path
        shown = params.evaluate.model_copy(
            update={"behavioural": str(ROOT / params.evaluate.behavioural)}
        )
        params = params.model_copy(update={"evaluate": shown})
    with tempfile.TemporaryDirectory(prefix=f"nlpflow-ner-{name}-") as tmp:
        ctx = make_context(Path(tmp), params, Settings(project_dir=Path(tmp), data_root=ROOT),
                           tracked=False)  # fmt: skip
        reports = {}
        for stage in ("gather", "validate", "preprocess", "train", "baseline", "evaluate"):
            start = time.perf_counter()
            reports[stage] = run_stage(stage, ctx)
            print(f"  {name}: {stage} {time.perf_counter() - start:.1f} s", flush=True)
        metrics = json.loads((Path(tmp) / METRICS).read_text())
        latency = None
        if name == "token_transformer":
            latency = serve_latency(Path(tmp), params)
            # displaCy's page of test sentences, gold above predicted, as MLflow shows it
            out.mkdir(parents=True, exist_ok=True)
            shutil.copy(Path(tmp) / "reports/evaluation/entities.html", out / "ner_entities.html")
        slices = json.loads((Path(tmp) / "reports/evaluation/slices.json").read_text())["slices"]
    train = reports["train"]
    seconds = float(train.seconds)  # type: ignore[attr-defined]
    return {
        "run": name, "family": family, "overrides": overrides,
        "epochs_run": train.epochs,  # type: ignore[attr-defined]
        "train_seconds": round(seconds, 1),
        "entity_f1": round(metrics["entity_f1"], 4),
        "entity_precision": round(metrics["entity_precision"], 4),
        "entity_recall": round(metrics["entity_recall"], 4),
        "ci": metrics.get("ci"),
        "unseen_f1": round(slices.get("unseen", {}).get("entity_f1", float("nan")), 4),
        "seen_f1": round(slices.get("seen", {}).get("entity_f1", float("nan")), 4),
        "per_type_f1": {k: round(v["f1"], 4) for k, v in metrics["per_type"].items()},
        "perf": train.perf,  # type: ignore[attr-defined]
        "serve": latency,
    }  # fmt: skip


def serve_latency(root: Path, params: Any, requests: int = 200) -> dict[str, Any]:
    """One-text latency of the trained tagger as served: registered as the raw-text pyfunc in a
    fresh store in `root`, then (a) loaded in process and (b) behind `nlpflow serve` over HTTP
    on a keep-alive connection; WNUT-17 test texts, one per request. The two run one after the
    other, not interleaved: a server's idle OpenMP threads spin after each request and slow a
    process that runs beside them on 2 cores (bench/serve.py measured it)."""
    import http.client

    import numpy as np
    import pandas as pd
    from serve import _free_port, _wait_for_ping  # bench/serve.py, beside this script

    from nlpflow.config.settings import Settings
    from nlpflow.pipeline.paths import MODEL
    from nlpflow.release.publish import publish_model
    from nlpflow.serving.predict import load_registered
    from nlpflow.tracking.refs import ModelRef
    from nlpflow.tracking.tracker import Tracker

    name = "bench-ner-serve"
    settings = Settings(project_dir=root, registered_model=name)
    tracker = Tracker(settings)
    run_id = tracker.start_run("bench-ner", run_name="serve", tags={})
    version = publish_model(tracker, run_id=run_id, model_dir=root / MODEL, model_name=name,
                            params=params)  # fmt: skip
    tracker.client.set_registered_model_alias(name, "champion", str(version))
    tracker.end_run(run_id, "FINISHED")
    model = load_registered(ModelRef(name, version), settings, root / "loaded")
    texts = pd.read_parquet(root / "data/processed/test.parquet")["raw_text"].tolist()[:requests]

    def timed(predict: Any) -> tuple[list[float], list[Any]]:
        for text in texts[:10]:  # warm-up: first calls allocate and pick kernels
            predict(text)
        times, answers = [], []
        for text in texts:
            begin = time.perf_counter()
            answers.append(predict(text))
            times.append((time.perf_counter() - begin) * 1000)
        return times, answers

    results = {"pyfunc in process": timed(
        lambda t: json.loads(model.predict(pd.DataFrame({"text": [t]}))["entities"].iloc[0])
    )}  # fmt: skip
    port = _free_port()
    env = dict(os.environ, NLPFLOW_PROJECT_DIR=str(root), NLPFLOW_REGISTERED_MODEL=name)
    log = root / "serve.log"
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "nlpflow"), "serve", "--port", str(port)],
        env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        _wait_for_ping(port, server, log)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

        def over_http(text: str) -> list[Any]:
            conn.request("POST", "/invocations", json.dumps({"inputs": [text]}),
                         {"Content-Type": "application/json"})  # fmt: skip
            response = conn.getresponse()
            body = json.loads(response.read())
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}: {body}")
            return json.loads(body["predictions"][0]["entities"])

        results["HTTP `nlpflow serve`"] = timed(over_http)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    answers = [r[1] for r in results.values()]
    return {
        "requests": len(texts), "served_equals_in_process": answers[0] == answers[1],
        **{f"{key}: p50_ms": round(float(np.percentile(r[0], 50)), 2) for key, r in results.items()},
        **{f"{key}: p99_ms": round(float(np.percentile(r[0], 99)), 2) for key, r in results.items()},
    }  # fmt: skip


def _processed(tmp: Path, params: Any) -> dict[str, tuple[list[Any], list[Any]]]:
    """WNUT-17 as the train stage reads it: gathered, validated and preprocessed here."""
    import pandas as pd

    from nlpflow.config.settings import Settings
    from nlpflow.pipeline.runs import make_context
    from nlpflow.pipeline.stages import run_stage

    ctx = make_context(tmp, params, Settings(project_dir=tmp, data_root=ROOT), tracked=False)
    for stage in ("gather", "validate", "preprocess"):
        run_stage(stage, ctx)
    out = {}
    for split in ("train", "validation", "test"):
        frame = pd.read_parquet(tmp / f"data/processed/{split}.parquet")
        out[split] = ([list(t) for t in frame["tokens"]], [list(t) for t in frame["tags"]])
    return out


def throughput(epochs: int) -> list[dict[str, Any]]:
    """nlpflow's batching against run_ner's (pad to max_length, random batches): the same
    family code, encoder, seed, batch size, learning rate and epochs; only batching differs."""
    import contextlib
    import functools
    from unittest import mock

    import transformers

    from nlpflow.config.params import load_params
    from nlpflow.evaluation.ner.scores import entity_scores
    from nlpflow.training.families.token_transformer import fit_token_transformer

    base = [*RUNS["token_transformer"], f"train.epochs={epochs}",
            f"train.early_stopping_patience={epochs}"]  # fmt: skip
    params = load_params(ROOT / "params.yaml", base, [ROOT / "configs" / "wnut17.yaml"])
    rows = []
    with tempfile.TemporaryDirectory(prefix="nlpflow-ner-speed-") as tmp:
        data = _processed(Path(tmp), params)
        labels = sorted({t for tags in data["train"][1] for t in tags})
        padded = functools.partial(
            transformers.DataCollatorForTokenClassification,
            padding="max_length", max_length=params.train.max_length,
        )  # fmt: skip
        contenders = [
            ("nlpflow (pad per batch, length-grouped)", True, None),
            (f"run_ner batching (pad to {params.train.max_length}, random batches)", False,
             padded),
        ]  # fmt: skip
        for name, grouped, collator in contenders:
            train = params.train.model_copy(update={"group_by_length": grouped})
            # fit_token_transformer imports the collator from transformers when it runs
            swap = (
                mock.patch.object(transformers, "DataCollatorForTokenClassification", collator)
                if collator is not None else contextlib.nullcontext()
            )  # fmt: skip
            with swap:
                start = time.perf_counter()
                model = fit_token_transformer(data["train"], data["validation"], labels=labels,
                                              params=train)  # fmt: skip
                seconds = time.perf_counter() - start
            predicted, _ = model.predict_tags(data["test"][0])
            f1 = float(entity_scores(data["test"][1], predicted)["entity_f1"])
            rows.append({
                "contender": name, "epochs": epochs, "train_seconds": round(seconds, 1),
                "examples_per_s": round(len(data["train"][0]) * epochs / seconds, 2),
                "entity_f1": round(f1, 4), "perf": model.perf,
            })  # fmt: skip
            print(f"  throughput: {name}: {seconds:.1f} s, test entity F1 {f1:.4f}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", nargs="*", choices=list(RUNS), default=DEFAULT_RUNS)
    parser.add_argument("--throughput-epochs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench")
    args = parser.parse_args()
    if not (ROOT.parent / "shared/datasets/wnut17").is_dir():
        sys.exit("../shared/datasets/wnut17 is absent: this benchmark needs it")
    from nlpflow.config.settings import apply_environment_defaults

    apply_environment_defaults()
    results = []
    for name in args.only:  # a run that fails is reported as failed; the others still run
        try:
            results.append(run(name, args.out))
        except Exception as error:  # a benchmark reports a failed run; it does not stop
            print(f"  {name} failed: {error}", flush=True)
            results.append({"run": name, "family": RUNS[name][0].split("=", 1)[1],
                            "skipped": f"failed: {str(error).splitlines()[0]}"})  # fmt: skip
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "ner-partial.json").write_text(json.dumps(results, indent=2, default=str))
    speed = throughput(args.throughput_epochs) if args.throughput_epochs > 0 else []
    served = [r["serve"] for r in results if r.get("serve")]
    done = [r for r in results if "skipped" not in r and r["train_seconds"] < BUDGET_S]
    best = max((r["entity_f1"] for r in done), default=0.0)
    official = max((r["entity_f1"] for r in done if r["run"] not in CONFIGS), default=0.0)
    goals = {
        "wnut17_entity_f1_at_least_0.42_within_30_min": best >= 0.42,
        # the same, trained on the train file only (dev for early stopping), as published
        "wnut17_entity_f1_at_least_0.42_train_file_only": official >= 0.42,
        "stretch_wnut17_entity_f1_at_least_0.50": best >= 0.50,
    }
    if served:
        goals["token_transformer_one_text_p50_at_most_25_ms"] = all(
            s["pyfunc in process: p50_ms"] <= 25 and s["HTTP `nlpflow serve`: p50_ms"] <= 25
            for s in served
        )
    if speed:
        ours, theirs = speed
        goals["token_transformer_3x_run_ner_batching_within_1_f1_point"] = (
            ours["examples_per_s"] >= 3 * theirs["examples_per_s"]
            and abs(ours["entity_f1"] - theirs["entity_f1"]) <= 0.01
        )
    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"machine": machine, "results": results, "best_entity_f1": best,
              "throughput": speed, "goals": goals}  # fmt: skip
    (args.out / "ner.json").write_text(json.dumps(report, indent=2))
    print(f"\n{machine}\n")
    print("| family | run | epochs | train s | test entity F1 | P | R | unseen F1 | seen F1 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        if "skipped" in r:
            print(f"| {r['family']} | {r['run']} | skipped: {r['skipped']} |||||||")
            continue
        print(
            f"| {r['family']} | {r['run']} | {r['epochs_run']} | {r['train_seconds']} | "
            f"{r['entity_f1']:.4f} | {r['entity_precision']:.4f} | {r['entity_recall']:.4f} | "
            f"{r['unseen_f1']:.4f} | {r['seen_f1']:.4f} |"
        )
    if speed:
        print("\n| training (equal epochs) | train s | examples/s | speed-up | test entity F1 |")
        print("|---|---|---|---|---|")
        for r in speed:
            print(
                f"| {r['contender']} | {r['train_seconds']} | {r['examples_per_s']:.1f} | "
                f"{r['examples_per_s'] / speed[1]['examples_per_s']:.2f}x | {r['entity_f1']:.4f} |"
            )
    for r in results:
        if r.get("serve"):
            print(f"\n{r['run']} served, one text per request: {json.dumps(r['serve'])}")
    print(f"\ngoals: {json.dumps(goals)}")


if __name__ == "__main__":
    main()
