"""Scoring for text-classification (nlpflow.evaluation.nlp.Scoring): one label per text.

evaluate writes
- metrics.json's numbers: accuracy, MCC, precision/recall/F1 (macro, micro, weighted, per
  class), ROC AUC and average precision, the expected calibration error, a bootstrap interval
  of the main metric, the behavioural pass rate and the baseline's score;
- `reports/plots/` (DVC plots): confusion.csv, roc/<label>.csv, pr/<label>.csv,
  calibration.csv, and confusion_matrix.png, roc.png, pr.png, reliability.png;
- `reports/evaluation/`: predictions.parquet (a row per text with its probabilities,
  proba_<label>), slices.json, behavioural.json, baseline.json, and worst_errors.csv/.md (the
  mistakes the model was surest of).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nlpflow.config.params import EvaluateParams
from nlpflow.data.splits import load_splits
from nlpflow.errors import StageInputError
from nlpflow.evaluation.embeddings import EMBEDDINGS_DIR, write_embedding_report
from nlpflow.evaluation.metrics import (
    compute_calibration,
    compute_confusion,
    compute_metrics,
    compute_ranking,
    metric_function,
)
from nlpflow.evaluation.nlp import EvaluateInputs
from nlpflow.evaluation.plots import write_plots
from nlpflow.evaluation.report import EvaluateReport
from nlpflow.evaluation.slices import compute_slice_metrics
from nlpflow.training.families import (
    StaticVectors,
    TextClassifier,
    load_manifest,
    load_model,
    predict_labels,
)


def evaluate(inputs: EvaluateInputs) -> EvaluateReport:
    """Predict the test split with the model and write every report but metrics.json."""
    params, out_dir = inputs.params, inputs.out_dir
    model = load_model(inputs.model_dir)
    test = _load_test(inputs.src, model.labels)
    gold = test["label"].tolist()
    predicted, proba = predict_labels(model, test["text"].tolist())
    metrics, ci = compute_scores(gold, predicted, proba, labels=model.labels, params=params)
    slices = compute_slice_metrics(
        test["raw_text"].tolist(), gold, predicted, labels=model.labels, params=params
    )
    suite = _behavioural(inputs.behavioural, model=model, model_dir=inputs.model_dir, test=test,
                         predicted=predicted, params=params)  # fmt: skip
    scored = _score_baseline(inputs.baseline_dir, test=test)
    baseline = _baseline_summary(scored, main=params.main_metric)
    metrics["behavioural_pass_rate"] = suite["pass_rate"]
    metrics["baseline"] = baseline or None

    frame = predictions_frame(test, predicted, proba, labels=model.labels)
    _write_evaluation(out_dir, frame=frame, slices=slices, suite=suite, baseline=scored,
                      params=params)  # fmt: skip
    write_errors(out_dir, frame, limit=params.worst_errors)
    embeddings = _intrinsic(model, out_dir / EMBEDDINGS_DIR, probes=params.probe_words)
    if embeddings:  # metrics.json holds the numbers; the report the neighbours too
        metrics["embeddings"] = {k: v for k, v in embeddings.items() if k != "neighbours"}
    confusion = compute_confusion(gold, predicted, model.labels)
    write_plots(inputs.plots_dir, frame=frame, proba=proba, labels=model.labels,
                confusion=confusion, bins=params.calibration_bins)  # fmt: skip
    return EvaluateReport(
        metrics=metrics, confusion=confusion, labels=model.labels, rows=len(test),
        main_metric=params.main_metric, ci=ci, slices=slices,
        behavioural={"pass_rate": suite["pass_rate"],
                     "tests": {t["name"]: t["pass_rate"] for t in suite["tests"]}},
        baseline=baseline, embeddings=embeddings,
    )  # fmt: skip


def _intrinsic(model: TextClassifier, folder: Path, *, probes: list[str]) -> dict[str, Any]:
    """The static word vectors' own evaluation, for a model made of them; {} for any other
    (and the folder of an earlier such model removed, so it cannot pass for this one's)."""
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    if not isinstance(model, StaticVectors):
        return {}
    return write_embedding_report(model, folder, probes=probes)


def _load_test(src: Path, labels: list[str]) -> pd.DataFrame:
    test = load_splits(src, ("test",))["test"]
    if test.empty:
        raise StageInputError(f"{src / 'test.parquet'} has no rows: there is nothing to evaluate.")
    test = test.assign(text=test["text"].astype(str), label=test["label"].astype(str))
    # processed folders written before raw text was kept: the cleaned text stands in for it
    raw = test["raw_text"].astype(str) if "raw_text" in test.columns else test["text"]
    test = test.assign(raw_text=raw)
    unknown = sorted(set(test["label"]) - set(labels))
    if unknown:
        raise StageInputError(
            f"{src / 'test.parquet'} holds label(s) {', '.join(unknown)} that the model does not "
            f"know (it predicts {', '.join(labels)}): retrain the model on this data."
        )
    return test


def _behavioural(
    path: Path | None,
    *,
    model: TextClassifier,
    model_dir: Path,
    test: pd.DataFrame,
    predicted: list[str],
    params: EvaluateParams,
) -> dict[str, Any]:
    """behavioural.json's content. Tests perturb raw text, which is then cleaned by the
    model's own preprocessing and predicted: the path a served request takes."""
    from nlpflow.evaluation.behavioural import check_labels, load_behavioural, run_behavioural

    if path is None:
        return {"pass_rate": None, "cases": 0, "tests": []}
    suite = load_behavioural(path)
    check_labels(suite, model.labels, path=path)
    cleaner = _cleaner(model_dir)
    report = run_behavioural(
        suite, predict=lambda texts: predict_labels(model, cleaner.transform(texts)),
        labels=model.labels, test_texts=test["raw_text"].tolist(), test_predicted=predicted,
        seed=params.seed,
    )  # fmt: skip
    return report.model_dump()


def _cleaner(model_dir: Path) -> Any:
    from nlpflow.config.params import PreprocessParams
    from nlpflow.data.preprocess import TextPreprocessor

    manifest = load_manifest(model_dir)
    if "preprocess" not in manifest:
        raise StageInputError(
            f"{model_dir}: the model's manifest does not say how its text was cleaned "
            "(no `preprocess`), so raw behavioural texts cannot be prepared: retrain it with "
            "`nlpflow stage train`."
        )
    return TextPreprocessor(PreprocessParams(**manifest["preprocess"]))


def _score_baseline(baseline_dir: Path | None, *, test: pd.DataFrame) -> dict[str, Any] | None:
    """The baseline's family and compute_metrics on the same test rows."""
    if baseline_dir is None:
        return None
    if not baseline_dir.exists():
        raise StageInputError(f"{baseline_dir} is missing: run the baseline stage first.")
    baseline = load_model(baseline_dir)
    predicted, _ = predict_labels(baseline, test["text"].tolist())
    return {
        "family": baseline.family,
        "metrics": compute_metrics(test["label"].tolist(), predicted, baseline.labels),
    }


def _baseline_summary(scored: dict[str, Any] | None, *, main: str) -> dict[str, Any]:
    if scored is None:
        return {}
    return {
        "family": scored["family"],
        main: scored["metrics"][main],
        "accuracy": scored["metrics"]["accuracy"],
    }


def _write_evaluation(
    out_dir: Path,
    *,
    frame: pd.DataFrame,
    slices: dict[str, dict[str, Any]],
    suite: dict[str, Any],
    baseline: dict[str, Any] | None,
    params: EvaluateParams,
) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out_dir / "predictions.parquet", index=False)
    # configured slices that matched no row, so a typo in a keyword does not go unnoticed
    empty = [name for name in params.slices if name not in slices]
    (out_dir / "slices.json").write_text(
        json.dumps({"main_metric": params.main_metric, "slices": slices, "empty": empty}, indent=2)
    )
    (out_dir / "behavioural.json").write_text(json.dumps(suite, indent=2, ensure_ascii=False))
    if baseline is not None:
        (out_dir / "baseline.json").write_text(json.dumps(baseline, indent=2))
    else:  # a baseline of an earlier run must not pass for this run's
        (out_dir / "baseline.json").unlink(missing_ok=True)


def compute_scores(
    gold: list[Any],
    predicted: list[Any],
    proba: np.ndarray,
    *,
    labels: list[str],
    params: EvaluateParams,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """metrics.json's numbers (behavioural and baseline are added by the caller), and the
    bootstrap interval of the main metric."""
    from nlpflow.evaluation.stats import bootstrap_ci

    metrics = compute_metrics(gold, predicted, labels)
    metrics |= compute_ranking(gold, proba, labels)
    correct = [g == p for g, p in zip(gold, predicted, strict=True)]
    metrics["ece"], _ = compute_calibration(
        correct, proba.max(axis=1), bins=params.calibration_bins
    )
    ci = bootstrap_ci(
        gold, predicted, metric=metric_function(params.main_metric, labels),
        name=params.main_metric, samples=params.bootstrap_samples,
        level=params.confidence_level, seed=params.seed,
    ).model_dump()  # fmt: skip
    metrics["ci"] = ci
    return metrics, ci


def predictions_frame(
    test: pd.DataFrame, predicted: list[Any], proba: np.ndarray, *, labels: list[str]
) -> pd.DataFrame:
    frame = test[["raw_text", "text", "label"]].reset_index(drop=True)
    frame["predicted"] = predicted
    frame["confidence"] = proba.max(axis=1).astype(float)
    for i, label in enumerate(labels):
        frame[f"proba_{label}"] = proba[:, i].astype(float)
    return frame


def write_errors(out_dir: Path, frame: pd.DataFrame, *, limit: int) -> None:
    """The mistakes the model was surest of: mislabelled data, or blind spots."""
    wrong = frame[frame["label"] != frame["predicted"]]
    worst = wrong.sort_values("confidence", ascending=False, kind="stable").head(limit)
    table = worst[["raw_text", "label", "predicted", "confidence"]]
    table.to_csv(out_dir / "worst_errors.csv", index=False)
    lines = [
        f"# The {len(table)} most confident mistakes (of {len(wrong)} in {len(frame)} test rows)",
        "",
        "| confidence | label | predicted | text |",
        "|---|---|---|---|",
    ]
    for row in table.itertuples(index=False):
        text = " ".join(str(row.raw_text).split()).replace("|", "\\|")
        lines.append(f"| {row.confidence:.3f} | {row.label} | {row.predicted} | {text} |")
    (out_dir / "worst_errors.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


# The promotion gate's scoring (nlpflow.release): what evaluate computes, for a served model's
# predictions on the test rows.


def judge(
    gold: list[Any], predicted: list[Any], texts: list[str], *, labels: list[str],
    params: EvaluateParams, cleaned: list[str] | None = None,
) -> tuple[float, dict[str, dict[str, Any]]]:  # fmt: skip
    """The main metric and the slices, as evaluate computes them."""
    from nlpflow.evaluation.metrics import compute_metrics
    from nlpflow.evaluation.slices import compute_slice_metrics

    score = float(compute_metrics(gold, predicted, labels)[params.main_metric])
    slices = compute_slice_metrics(texts, gold, predicted, labels=labels, params=params)
    return score, slices


def paired_metric(name: str, labels: list[str]) -> Any:
    """The fast confusion-count metric: it scores every bootstrap resample from one bincount."""
    from nlpflow.evaluation.metrics import metric_function

    return metric_function(name, labels)


def recorded(predictions: pd.DataFrame, labels: list[str]) -> tuple[list[Any], np.ndarray]:
    """The predicted labels and the proba_<label> columns, in `labels` order."""
    columns = [f"proba_{label}" for label in labels]
    return predictions["predicted"].astype(str).tolist(), predictions[columns].to_numpy()
