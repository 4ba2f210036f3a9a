"""Scoring for text-classification (nlpflow.config.nlp_tasks.Scoring): one label per text.

metrics.json holds accuracy, MCC, precision/recall/F1 (macro, micro, weighted, per class),
ROC AUC and average precision, the expected calibration error and a bootstrap interval of the
main metric; predictions.parquet a row per text with its probabilities (proba_<label>);
worst_errors.csv/.md the mistakes the model was surest of.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nlpflow.config.params import EvaluateParams
from nlpflow.evaluation.metrics import (
    compute_calibration,
    compute_metrics,
    compute_ranking,
    metric_function,
)


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
