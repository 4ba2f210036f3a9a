"""tfidf_logreg: the statistical baseline (word n-gram TF-IDF + logistic regression)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nlpflow.metrics import compute_metrics
from nlpflow.models import EpochCallback, load_manifest, save_manifest
from nlpflow.params import TfidfParams

FAMILY = "tfidf_logreg"


class TfidfClassifier:
    family = FAMILY

    def __init__(self, pipeline: Any, labels: list[str]) -> None:
        self.pipeline = pipeline
        self.labels = labels
        # sklearn orders classes itself; map its columns onto our label order.
        self._order = [list(pipeline.classes_).index(label) for label in labels]

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self.pipeline.predict_proba(list(texts)))[:, self._order]

    def save(self, path: Path) -> None:
        import joblib

        save_manifest(path, family=FAMILY, labels=self.labels, extra={})
        joblib.dump(self.pipeline, path / "pipeline.joblib")

    @classmethod
    def load(cls, path: Path) -> TfidfClassifier:
        import joblib

        return cls(joblib.load(path / "pipeline.joblib"), load_manifest(path)["labels"])


def fit_tfidf(
    train: tuple[list[str], list[str]],
    validation: tuple[list[str], list[str]],
    *,
    labels: list[str],
    params: TfidfParams,
    seed: int,
    on_epoch: EpochCallback | None = None,
) -> TfidfClassifier:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    pipeline = Pipeline(
        [
            (
                "tfidf",
                TfidfVectorizer(
                    ngram_range=(1, params.ngram_max),
                    min_df=params.min_df,
                    max_features=params.max_features,
                    sublinear_tf=params.sublinear_tf,
                ),
            ),  # fmt: skip
            ("clf", LogisticRegression(C=params.C, max_iter=params.max_iter, random_state=seed)),
        ]
    )
    pipeline.fit(*train)
    model = TfidfClassifier(pipeline, labels)
    if on_epoch is not None:  # one "epoch": the closed-form fit
        scores: dict[str, float] = {}
        for split, (texts, gold) in {"train": train, "val": validation}.items():
            if texts:
                m = compute_metrics(gold, pipeline.predict(texts), labels)
                scores |= {f"{split}_accuracy": m["accuracy"], f"{split}_macro_f1": m["macro_f1"]}
        on_epoch(1, scores)
    return model
