"""Hand-written rules against a learned model on SMS spam, and the two combined (issue 16).

    python bench/rules.py

nlpflow's own gather, validate and preprocess make the splits, from configs/sms_spam.yaml and
configs/sms_spam_rules.yaml (the split the pipeline makes: duplicates grouped, URLs kept for
the rules); then, on the same test rows:

- rules: the `rules` family with configs/rules/sms_spam.yaml (written from knowledge of SMS
  spam, not fitted to this corpus);
- tfidf_logreg: the learned baseline, trained on the train split;
- hybrid: tfidf_logreg with the rules overriding its label wherever one fires (what serving
  answers with serve.rules).

Prints a Markdown table (accuracy, spam F1, MCC, seconds to fit and to predict) and writes
reports/bench/rules.json with a `goals` object. Goals, set before the first run: the rules
far above always-ham (MCC >= 0.6), and the hybrid no worse than tfidf_logreg alone (spam F1
within 0.01 of it, or above).
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
CONFIGS = [ROOT / "configs" / "sms_spam.yaml", ROOT / "configs" / "sms_spam_rules.yaml"]
RULES = ROOT / "configs" / "rules" / "sms_spam.yaml"
POSITIVE = "spam"


def pipeline_splits(tmp: Path) -> dict[str, tuple[list[str], list[str]]]:
    """(texts, labels) per split, as the pipeline's preprocess stage writes them."""
    import pandas as pd

    from nlpflow.config.params import load_params
    from nlpflow.config.settings import Settings
    from nlpflow.pipeline.runs import make_context
    from nlpflow.pipeline.stages import PROCESSED, run_stage

    params = load_params(ROOT / "params.yaml", configs=CONFIGS)
    ctx = make_context(tmp, params, Settings(project_dir=tmp, data_root=ROOT), tracked=False)
    for stage in ("gather", "validate", "preprocess"):
        run_stage(stage, ctx)
    splits = {}
    for name in ("train", "validation", "test"):
        frame = pd.read_parquet(tmp / PROCESSED / f"{name}.parquet")
        splits[name] = (frame["text"].astype(str).tolist(), frame["label"].astype(str).tolist())
    return splits


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def scores(gold: list[str], predicted: list[str], labels: list[str]) -> dict[str, float]:
    from nlpflow.evaluation.metrics import compute_metrics

    m = compute_metrics(gold, predicted, labels)
    return {
        "accuracy": round(m["accuracy"], 4),
        "spam_f1": round(m["per_class"][POSITIVE]["f1"], 4),
        "spam_precision": round(m["per_class"][POSITIVE]["precision"], 4),
        "spam_recall": round(m["per_class"][POSITIVE]["recall"], 4),
        "mcc": round(m["mcc"], 4),
    }


def run(splits: dict[str, tuple[list[str], list[str]]]) -> dict[str, Any]:
    from nlpflow.config.params import TrainParams
    from nlpflow.training.families import predict_labels
    from nlpflow.training.families.rules_text import RulesOverride, TextRules
    from nlpflow.training.train import fit

    labels = sorted(set(splits["train"][1]))
    texts, gold = splits["test"]
    contenders: dict[str, Any] = {}
    rules_params = TrainParams.model_validate(
        {"family": "rules", "rules": {"patterns": str(RULES)}}
    )
    for name, params in (
        ("rules", rules_params),
        ("tfidf_logreg", TrainParams(family="tfidf_logreg")),
    ):
        model, fit_s = timed(
            fit, splits["train"], splits["validation"], labels=labels, params=params
        )
        contenders[name] = (model, fit_s)
    hybrid = RulesOverride(contenders["tfidf_logreg"][0], TextRules.from_file(RULES, labels=labels))
    contenders["hybrid"] = (hybrid, contenders["tfidf_logreg"][1])
    results, predicted = [], {}
    for name, (model, fit_s) in contenders.items():
        (found, _), predict_s = timed(predict_labels, model, texts)
        predicted[name] = found
        results.append({"contender": name, **scores(gold, found, labels),
                        "fit_seconds": round(fit_s, 2), "predict_seconds": round(predict_s, 2)})  # fmt: skip
    fired = TextRules.from_file(RULES, labels=labels).fired(texts)
    overrides = sum(
        1 for rule, alone, both in zip(fired, predicted["tfidf_logreg"], predicted["hybrid"], strict=True)
        if rule is not None and alone != both
    )  # fmt: skip
    by_rule: dict[str, int] = {}
    for rule in fired:
        if rule is not None:
            by_rule[rule] = by_rule.get(rule, 0) + 1
    return {
        "results": results,
        "rules_fired_share": round(sum(r is not None for r in fired) / len(texts), 4),
        "hybrid_changed_labels": overrides,
        "fired_by_rule": dict(sorted(by_rule.items())),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="nlpflow-bench-rules-") as tmp:
        splits = pipeline_splits(Path(tmp))
    measured = run(splits)
    by_name = {r["contender"]: r for r in measured["results"]}
    test_gold = splits["test"][1]
    always_ham = round(test_gold.count("ham") / len(test_gold), 4)
    goals = {
        "rules_mcc_at_least_0.6": by_name["rules"]["mcc"] >= 0.6,
        "hybrid_spam_f1_within_0.01_of_tfidf_or_above": (
            by_name["hybrid"]["spam_f1"] >= by_name["tfidf_logreg"]["spam_f1"] - 0.01
        ),
    }
    sizes = {name: len(xy[0]) for name, xy in splits.items()}
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    report = {
        "dataset": "SMS spam (configs/sms_spam.yaml + configs/sms_spam_rules.yaml)",
        "rules_file": "configs/rules/sms_spam.yaml", "sizes": sizes, "machine": machine,
        "always_ham_accuracy": always_ham, **measured, "goals": goals,
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "rules.json").write_text(json.dumps(report, indent=2))
    print(
        f"SMS spam test split {sizes['test']} rows (always-ham accuracy {always_ham}), {machine}\n"
    )
    print(
        "| contender | accuracy | spam F1 | spam precision | spam recall | MCC | fit s | predict s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in measured["results"]:
        print(
            f"| {r['contender']} | {r['accuracy']:.4f} | {r['spam_f1']:.4f} | "
            f"{r['spam_precision']:.4f} | {r['spam_recall']:.4f} | {r['mcc']:.4f} | "
            f"{r['fit_seconds']} | {r['predict_seconds']} |"
        )
    print(
        f"\nrules fired on {measured['rules_fired_share']:.1%} of test texts; the hybrid changed "
        f"{measured['hybrid_changed_labels']} of tfidf_logreg's labels. goals: {goals}"
    )


if __name__ == "__main__":
    main()
