"""evaluate: score the test split.

Writes `metrics.json` (DVC metrics: accuracy, macro and per-class precision/recall/F1), and under
the plots folder `confusion.csv` (DVC confusion plot) and `confusion_matrix.png`.

    nlpflow stage evaluate
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from nlpflow.data import load_splits
from nlpflow.metrics import compute_confusion, compute_metrics
from nlpflow.models import load_model, predict_labels


class EvaluateReport(BaseModel):
    metrics: dict[str, Any]
    confusion: list[list[int]]
    labels: list[str]
    rows: int


def save_confusion_png(path: Path, matrix: list[list[int]], labels: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    size = 1.2 + 0.7 * len(labels)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    peak = max(max(row) for row in matrix) or 1
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            ax.text(
                j,
                i,
                str(count),
                ha="center",
                va="center",
                color="white" if count > peak / 2 else "black",
            )
    fig.colorbar(image)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def evaluate(*, model_dir: Path, src: Path, metrics_path: Path, plots_dir: Path) -> EvaluateReport:
    """Predict the test split of `src` with the model in `model_dir`."""
    model = load_model(model_dir)
    test = load_splits(src, ("test",))["test"]
    gold = test["label"].astype(str).tolist()
    predicted, _ = predict_labels(model, test["text"].astype(str).tolist())
    metrics = compute_metrics(gold, predicted, model.labels)
    confusion = compute_confusion(gold, predicted, model.labels)

    metrics_path.parent.mkdir(parents=True, exist_ok=True)
    metrics_path.write_text(json.dumps(metrics, indent=2))
    plots_dir.mkdir(parents=True, exist_ok=True)
    with (plots_dir / "confusion.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["actual", "predicted"])
        writer.writerows(zip(gold, predicted, strict=True))
    save_confusion_png(plots_dir / "confusion_matrix.png", confusion, model.labels)
    return EvaluateReport(metrics=metrics, confusion=confusion, labels=model.labels, rows=len(test))
