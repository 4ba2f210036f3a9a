"""evaluate's plots: the data files `dvc plots` reads (CSV) and a PNG of each (matplotlib) for
MLflow and the model card: the confusion matrix, ROC and precision-recall curves, and the
reliability diagram.
"""

from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nlpflow.evaluation.metrics import compute_calibration, compute_curves


def write_plots(
    plots_dir: Path,
    *,
    frame: pd.DataFrame,
    proba: np.ndarray,
    labels: list[str],
    confusion: list[list[int]],
    bins: int,
) -> None:
    """DVC's data files (CSV) and a PNG of each for MLflow and the model card."""
    plots_dir.mkdir(parents=True, exist_ok=True)
    frame[["label", "predicted"]].rename(columns={"label": "actual"}).to_csv(
        plots_dir / "confusion.csv", index=False
    )
    save_confusion_png(plots_dir / "confusion_matrix.png", confusion, labels)
    curves = compute_curves(frame["label"].tolist(), proba, labels)
    for kind, x, y in (("roc", "fpr", "tpr"), ("pr", "recall", "precision")):
        folder = plots_dir / kind
        shutil.rmtree(folder, ignore_errors=True)  # another run's labels must not linger
        folder.mkdir()
        for label, points in curves.items():
            pd.DataFrame({x: points[x], y: points[y]}).to_csv(
                folder / f"{_file_name(label)}.csv", index=False
            )
        save_curves_png(plots_dir / f"{kind}.png", curves, x=x, y=y)
    correct = (frame["label"] == frame["predicted"]).tolist()
    _, table = compute_calibration(correct, frame["confidence"].tolist(), bins=bins)
    with (plots_dir / "calibration.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["bin", "confidence", "accuracy", "count"])
        writer.writeheader()
        writer.writerows(table)
    save_reliability_png(plots_dir / "reliability.png", table, bins=bins)


def _file_name(label: str) -> str:
    return re.sub(r"[^\w.-]+", "_", label) or "_"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    return plt


def save_confusion_png(path: Path, matrix: list[list[int]], labels: list[str]) -> None:
    plt = _pyplot()
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
            colour = "white" if count > peak / 2 else "black"
            ax.text(j, i, str(count), ha="center", va="center", color=colour)
    fig.colorbar(image)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def save_curves_png(
    path: Path, curves: dict[str, dict[str, list[float]]], *, x: str, y: str
) -> None:
    """ROC (x=fpr) or precision-recall (x=recall) curves, one line per scored label."""
    from sklearn.metrics import auc

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4.5))
    for label, points in curves.items():
        area = auc(points[x], points[y])
        ax.plot(points[x], points[y], label=f"{label} (area {area:.3f})")
    if x == "fpr":
        ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
    ax.set(xlabel=x, ylabel=y, xlim=(0, 1), ylim=(0, 1.02))
    ax.set_title("ROC, one-vs-rest" if x == "fpr" else "precision-recall, one-vs-rest")
    ax.legend(loc="lower right" if x == "fpr" else "lower left", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def save_reliability_png(path: Path, table: list[dict[str, float]], *, bins: int) -> None:
    """Accuracy against confidence per bin (bars), the diagonal of perfect calibration, and how
    many rows each bin holds (lower panel)."""
    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(5, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    width = 1.0 / bins
    lefts = [row["bin"] * width for row in table]
    top.bar(lefts, [row["accuracy"] for row in table], width=width, align="edge",
            edgecolor="black", label="accuracy")  # fmt: skip
    top.plot([row["confidence"] for row in table], [row["accuracy"] for row in table], "o",
             color="darkred", label="mean confidence")  # fmt: skip
    top.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfect calibration")
    top.set(ylabel="accuracy", ylim=(0, 1), title="reliability diagram")
    top.legend(loc="upper left", fontsize="small")
    bottom.bar(lefts, [row["count"] for row in table], width=width, align="edge", color="grey")
    bottom.set(xlabel="confidence", ylabel="rows", xlim=(0, 1))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
