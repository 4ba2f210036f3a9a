"""Quality on the public datasets in ../shared/datasets, through nlpflow's own stages (gather,
validate, preprocess, train, evaluate) with the ready-made configs under configs/.

    python bench/quality.py [--only mr_tfidf trec_transformer ...]

Prints a Markdown table and writes reports/bench/quality.json. Goals (issue 4):
MR transformer >= 0.85 accuracy in at most 20 minutes of CPU training; MR tfidf_logreg >= 0.79
in under 10 s; TREC-6 transformer >= 0.96; SMS spam transformer spam F1 >= 0.95, MCC >= 0.93.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

# name -> (config, overrides, goal description, goal check on metrics + train seconds). The
# configs hold every setting of the figures README publishes; an override may only choose
# another family (tests/unit/test_ready_configs.py checks both).
RUNS: dict[str, tuple[str, list[str], str, Any]] = {
    "mr_tfidf": (
        "mr", ["train.family=tfidf_logreg"], "accuracy >= 0.79, train < 10 s",
        lambda m, s: m["accuracy"] >= 0.79 and s < 10,
    ),
    "mr_transformer": (
        "mr", [], "accuracy >= 0.85, train <= 20 min",
        lambda m, s: m["accuracy"] >= 0.85 and s <= 1200,
    ),
    "trec_transformer": ("trec", [], "accuracy >= 0.96", lambda m, s: m["accuracy"] >= 0.96),
    "sms_transformer": (
        "sms_spam", [], "spam F1 >= 0.95, MCC >= 0.93",
        lambda m, s: m["per_class"]["spam"]["f1"] >= 0.95 and m["mcc"] >= 0.93,
    ),
}  # fmt: skip


def run(name: str) -> dict[str, Any]:
    from nlpflow.config.params import load_params
    from nlpflow.config.settings import Settings
    from nlpflow.pipeline.runs import make_context
    from nlpflow.pipeline.stages import METRICS, run_stage

    config, overrides, goal, check = RUNS[name]
    params = load_params(ROOT / "params.yaml", overrides, [ROOT / "configs" / f"{config}.yaml"])
    # the run's project is a temporary folder: the config's behavioural tests by absolute path
    behavioural = ROOT / "configs" / "behavioural" / f"{config}.yaml"
    params = params.model_copy(
        update={"evaluate": params.evaluate.model_copy(update={"behavioural": str(behavioural)})}
    )
    with tempfile.TemporaryDirectory(prefix=f"nlpflow-quality-{name}-") as tmp:
        ctx = make_context(Path(tmp), params, Settings(project_dir=Path(tmp), data_root=ROOT),
                           tracked=False)  # fmt: skip
        reports = {}
        for stage in ("gather", "validate", "preprocess", "train", "baseline", "evaluate"):
            start = time.perf_counter()
            reports[stage] = run_stage(stage, ctx)
            print(f"  {name}: {stage} {time.perf_counter() - start:.1f} s", flush=True)
        metrics = json.loads((Path(tmp) / METRICS).read_text())
    train = reports["train"]
    seconds = float(train.seconds)  # type: ignore[attr-defined]
    return {
        "run": name, "config": f"configs/{config}.yaml", "overrides": overrides,
        "family": params.train.family, "epochs_run": train.epochs,  # type: ignore[attr-defined]
        "train_seconds": round(seconds, 1), "accuracy": round(metrics["accuracy"], 4),
        "macro_f1": round(metrics["macro_f1"], 4), "mcc": round(metrics["mcc"], 4),
        "per_class_f1": {k: round(v["f1"], 4) for k, v in metrics["per_class"].items()},
        "test_rows": sum(v["support"] for v in metrics["per_class"].values()),
        "goal": goal, "met": bool(check(metrics, seconds)),
        "perf": train.perf,  # type: ignore[attr-defined]
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", nargs="*", choices=list(RUNS), default=list(RUNS))
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench")
    args = parser.parse_args()
    if not (ROOT.parent / "shared/datasets").is_dir():
        sys.exit("../shared/datasets is absent: this benchmark needs the public datasets")
    from nlpflow.config.settings import apply_environment_defaults

    apply_environment_defaults()
    results = [run(name) for name in args.only]
    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "quality.json").write_text(
        json.dumps({"machine": machine, "results": results}, indent=2)
    )
    print(f"\n{machine}\n")
    print("| run | family | epochs | train s | test accuracy | macro-F1 | MCC | goal | met |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['run']} | {r['family']} | {r['epochs_run']} | {r['train_seconds']} | "
            f"{r['accuracy']:.4f} | {r['macro_f1']:.4f} | {r['mcc']:.4f} | {r['goal']} | "
            f"{'yes' if r['met'] else 'no'} |"
        )


if __name__ == "__main__":
    main()
