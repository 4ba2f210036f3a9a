"""train: fit the configured model family on the preprocessed train split.

Early stopping watches the validation split. Each epoch is reported through `on_epoch`, so the
caller (the CLI stage runner or a Prefect task) can log it; this module never imports a tracker.

    nlpflow stage train
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import pandas as pd
from pydantic import BaseModel

from nlpflow.data import load_splits
from nlpflow.models import EpochCallback, TextClassifier, update_manifest
from nlpflow.params import PreprocessParams, TrainParams


class TrainReport(BaseModel):
    family: str
    labels: list[str]
    epochs: int
    seconds: float
    history: list[dict[str, float]]


def _xy(frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    return frame["text"].astype(str).tolist(), frame["label"].astype(str).tolist()


def fit(
    train: tuple[list[str], list[str]],
    validation: tuple[list[str], list[str]],
    *,
    labels: list[str],
    params: TrainParams,
    on_epoch: EpochCallback | None = None,
) -> TextClassifier:
    """Dispatch to the family; each imports its heavy libraries only when chosen."""
    if params.family == "tfidf_logreg":
        from nlpflow.models.tfidf import fit_tfidf

        return fit_tfidf(
            train,
            validation,
            labels=labels,
            params=params.tfidf,
            seed=params.seed,
            on_epoch=on_epoch,
        )
    from nlpflow.models.transformer import fit_transformer

    return fit_transformer(train, validation, labels=labels, params=params, on_epoch=on_epoch)


def train(
    *,
    src: Path,
    dst: Path,
    history_path: Path,
    params: TrainParams,
    preprocess: PreprocessParams,
    labels: list[str] | None = None,
    on_epoch: EpochCallback | None = None,
) -> TrainReport:
    """Train on `src/train.parquet` (+ validation), save the model folder to `dst`."""
    splits = load_splits(src, ("train", "validation"))
    train_xy, val_xy = _xy(splits["train"]), _xy(splits["validation"])
    labels = list(labels) if labels else sorted(set(train_xy[1]))
    history: list[dict[str, float]] = []

    def record(epoch: int, scores: dict[str, float]) -> None:
        history.append({"epoch": epoch, **scores})
        if on_epoch is not None:
            on_epoch(epoch, scores)

    start = time.perf_counter()
    model = fit(train_xy, val_xy, labels=labels, params=params, on_epoch=record)
    seconds = time.perf_counter() - start
    if dst.exists():  # a stale model of another family must not linger beside the new one
        import shutil

        shutil.rmtree(dst)
    model.save(dst)
    # Record how text must be cleaned before this model sees it (the serving model reads this).
    update_manifest(dst, preprocess=preprocess.model_dump(), train=params.model_dump())
    _save_history(history_path, history)
    return TrainReport(
        family=params.family, labels=labels, epochs=len(history), seconds=round(seconds, 2),
        history=history,
    )  # fmt: skip


def _save_history(path: Path, history: list[dict[str, float]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = sorted({k for row in history for k in row}, key=lambda k: (k != "epoch", k))
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(history)
