"""TF-IDF families: word n-gram TF-IDF features under a linear scikit-learn classifier.

- tfidf_logreg: logistic regression, the statistical baseline.
- tfidf_linear_svm: a linear SVM whose margins are calibrated into probabilities.

Both are one scikit-learn Pipeline, saved with skops (loading runs no code; see
nlpflow.training.families.sklearn_io); they differ only in the last step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nlpflow.config.params import SvmParams, TfidfParams, TrainParams
from nlpflow.errors import ModelError
from nlpflow.evaluation.metrics import compute_metrics
from nlpflow.training.families import XY, EpochCallback, load_manifest, save_manifest
from nlpflow.training.progress import TrainingProgress

FAMILY = "tfidf_logreg"
SVM_FAMILY = "tfidf_linear_svm"
FAMILIES = (FAMILY, SVM_FAMILY)
PIPELINE_FILE = "pipeline.skops"


class TfidfClassifier:
    def __init__(self, pipeline: Any, labels: list[str], family: str = FAMILY) -> None:
        self.pipeline = pipeline
        self.labels = labels
        self.family = family
        # sklearn orders classes itself; map its columns onto our label order.
        self._order = [list(pipeline.classes_).index(label) for label in labels]

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        if not len(texts):  # scikit-learn rejects an empty batch; a server may send one
            return np.zeros((0, len(self.labels)))
        return np.asarray(self.pipeline.predict_proba(list(texts)))[:, self._order]

    def save(self, path: Path) -> None:
        from nlpflow.training.families.sklearn_io import save_sklearn

        save_manifest(path, family=self.family, labels=self.labels, extra={})
        save_sklearn(self.pipeline, path / PIPELINE_FILE)

    @classmethod
    def load(cls, path: Path) -> TfidfClassifier:
        from nlpflow.training.families.sklearn_io import load_sklearn

        manifest = load_manifest(path)
        return cls(load_sklearn(path / PIPELINE_FILE), manifest["labels"], manifest["family"])


def score_fit(
    predict: Callable[[Any], Sequence[str]],
    splits: dict[str, tuple[Any, list[str]]],
    labels: list[str],
) -> dict[str, float]:
    """`<split>_accuracy` and `<split>_macro_f1` of a model that trains in one closed-form fit.

    Each split is (inputs, gold labels); inputs are whatever `predict` takes (texts, features).
    """
    scores: dict[str, float] = {}
    for split, (inputs, gold) in splits.items():
        if len(gold):
            m = compute_metrics(gold, predict(inputs), labels)
            scores |= {f"{split}_accuracy": m["accuracy"], f"{split}_macro_f1": m["macro_f1"]}
    return scores


def finish_fit(
    progress: TrainingProgress, scores: dict[str, float], on_epoch: EpochCallback | None
) -> None:
    """Report a closed-form fit as its one "epoch": the progress summary and on_epoch."""
    progress.finish([{"epoch": 1.0, **scores}])
    if on_epoch is not None:
        on_epoch(1, scores)


def _fit_pipeline(
    classifier: Any,
    train: tuple[list[str], list[str]],
    validation: tuple[list[str], list[str]],
    *,
    labels: list[str],
    params: TfidfParams,
    family: str,
    on_epoch: EpochCallback | None,
) -> TfidfClassifier:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import Pipeline

    vectorizer = TfidfVectorizer(
        ngram_range=(1, params.ngram_max),
        min_df=params.min_df,
        max_features=params.max_features,
        sublinear_tf=params.sublinear_tf,
    )
    pipeline = Pipeline([("tfidf", vectorizer), ("clf", classifier)])
    progress = TrainingProgress(family)
    progress.begin(examples=len(train[0]))
    pipeline.fit(*train)
    # one "epoch": the closed-form fit; the train split is scored only for on_epoch's caller
    splits = {"train": train, "val": validation} if on_epoch else {"val": validation}
    finish_fit(progress, score_fit(pipeline.predict, splits, labels), on_epoch)
    return TfidfClassifier(pipeline, labels, family)


def fit_tfidf(
    train: tuple[list[str], list[str]],
    validation: tuple[list[str], list[str]],
    *,
    labels: list[str],
    params: TfidfParams,
    seed: int,
    on_epoch: EpochCallback | None = None,
) -> TfidfClassifier:
    from sklearn.linear_model import LogisticRegression

    classifier = LogisticRegression(C=params.C, max_iter=params.max_iter, random_state=seed)
    return _fit_pipeline(
        classifier, train, validation, labels=labels, params=params, family=FAMILY,
        on_epoch=on_epoch,
    )  # fmt: skip


def fit_tfidf_svm(
    train: tuple[list[str], list[str]],
    validation: tuple[list[str], list[str]],
    *,
    labels: list[str],
    params: TfidfParams,
    svm: SvmParams,
    seed: int,
    on_epoch: EpochCallback | None = None,
) -> TfidfClassifier:
    """LinearSVC margins, calibrated on out-of-fold predictions of the training set.

    Not a softmax of decision_function: SVM margins have no probabilistic scale (it moves with
    C), so such "probabilities" would be arbitrarily over- or under-confident, and the serving
    score and the champion's log-loss would mean nothing. CalibratedClassifierCV fits the
    mapping on margins the SVM did not train on; ensemble=False then keeps one SVM trained on
    all rows, so prediction costs one linear model, not one per fold.
    """
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import LinearSVC

    smallest = min(train[1].count(label) for label in set(train[1]))
    folds = min(svm.calibration_folds, smallest)
    if folds < 2:
        raise ModelError(
            f"tfidf_linear_svm calibrates on cross-validation folds, so every label needs at "
            f"least 2 training rows; one has {smallest}. Add rows or use tfidf_logreg."
        )
    classifier = CalibratedClassifierCV(
        LinearSVC(C=svm.C, max_iter=svm.max_iter, random_state=seed),
        method=svm.calibration, cv=folds, ensemble=False,
    )  # fmt: skip
    return _fit_pipeline(
        classifier, train, validation, labels=labels, params=params, family=SVM_FAMILY,
        on_epoch=on_epoch,
    )  # fmt: skip


def fit_logreg(
    train: XY, validation: XY, *, labels: list[str], params: TrainParams,
    on_epoch: EpochCallback | None = None, on_step: EpochCallback | None = None,
    workdir: Path | None = None,
) -> TfidfClassifier:  # fmt: skip
    """tfidf_logreg's registered fit: train.tfidf and train.seed (one closed-form fit: no
    steps, no checkpoints)."""
    return fit_tfidf(
        train, validation, labels=labels, params=params.tfidf, seed=params.seed, on_epoch=on_epoch
    )


def fit_svm(
    train: XY, validation: XY, *, labels: list[str], params: TrainParams,
    on_epoch: EpochCallback | None = None, on_step: EpochCallback | None = None,
    workdir: Path | None = None,
) -> TfidfClassifier:  # fmt: skip
    """tfidf_linear_svm's registered fit: train.tfidf, train.svm and train.seed."""
    return fit_tfidf_svm(
        train, validation, labels=labels, params=params.tfidf, svm=params.svm,
        seed=params.seed, on_epoch=on_epoch,
    )  # fmt: skip
