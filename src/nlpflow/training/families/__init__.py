"""Model families behind one interface, chosen through the family registry
(nlpflow.config.sections.families.FAMILIES: each family's module, fit function and class).

Every family trains from (train, validation) text and labels, reports each epoch through a
callback, predicts class probabilities for cleaned text, and saves to / loads from one folder:

    models/model/
      nlpflow.json    family, labels, and the preprocess params it was trained with
      ...             the family's own files
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from nlpflow.config.params import FAMILIES, TrainParams
from nlpflow.errors import ModelError, StageInputError

MANIFEST = "nlpflow.json"
# the whole baseline folder when the baseline stage would have trained the model itself
SAME_AS_MODEL = "same_as_model.json"
EpochCallback = Callable[[int, dict[str, float]], None]
# Inputs and targets: texts and labels (text-classification); token lists and BIO tag lists
# (token-classification)
XY = tuple[list[Any], list[Any]]


class TextClassifier(Protocol):
    family: str
    labels: list[str]

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray: ...

    def save(self, path: Path) -> None: ...


@runtime_checkable
class StaticVectors(Protocol):
    """A model whose features are static word vectors (embeddings_logreg): evaluate reports the
    vectors' own quality (nearest neighbours, word-pair similarity, a 2-D map) beside its scores."""

    def vector_table(self) -> tuple[list[str], np.ndarray, dict[str, int]]:
        """The words, their vectors (one row each, in the words' order) and each word's count
        in the train split (0 or absent: a pretrained word the split never used)."""
        ...


class TokenTagger(Protocol):
    """A model of NLP task token-classification: BIO tags for tokenised sentences."""

    family: str
    labels: list[str]  # its tags (BIO: O, B-<type>, I-<type>), in the order it scores them

    def predict_tags(
        self, sentences: Sequence[Sequence[str]]
    ) -> tuple[list[list[str]], list[list[float]]]:
        """Each sentence's BIO tags (one per token) and the probability the model gave each
        chosen tag (1.0 for a model that cannot say, such as rules)."""
        ...

    def save(self, path: Path) -> None: ...


class TopicModel(Protocol):
    """A model of NLP task topic-modeling: topics as weighted words, and each text's share of
    every topic (predict_proba: rows sum to 1, columns in `labels` order)."""

    family: str
    labels: list[str]  # topic ids, "0", "1", ...

    def topic_words(self, n: int | None = None) -> list[list[tuple[str, float]]]:
        """Each topic's top `n` (word, weight) pairs, heaviest first (n None: train.topics'
        top_words)."""
        ...

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray: ...

    def save(self, path: Path) -> None: ...


class FitFamily(Protocol):
    """What each family's registered `fit` is: train on (texts, labels), report each epoch
    through `on_epoch`; `on_step` and `workdir` (checkpoints) concern step-wise trainers."""

    def __call__(
        self,
        train: XY,
        validation: XY,
        *,
        labels: list[str],
        params: TrainParams,
        on_epoch: EpochCallback | None = None,
        on_step: EpochCallback | None = None,
        workdir: Path | None = None,
    ) -> TextClassifier: ...


def predict_labels(model: TextClassifier, texts: Sequence[str]) -> tuple[list[str], np.ndarray]:
    proba = model.predict_proba(texts)
    return [model.labels[i] for i in proba.argmax(axis=1)], proba


def save_manifest(path: Path, *, family: str, labels: list[str], extra: dict[str, Any]) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / MANIFEST).write_text(
        json.dumps({"family": family, "labels": labels, **extra}, indent=2)
    )


def load_manifest(path: Path) -> dict[str, Any]:
    file = path / MANIFEST
    if not file.exists():
        raise StageInputError(
            f"{file} is missing: {path} is not a trained nlpflow model; run train."
        )
    return dict(json.loads(file.read_text()))


def update_manifest(path: Path, **extra: Any) -> None:
    manifest = load_manifest(path) | extra
    (path / MANIFEST).write_text(json.dumps(manifest, indent=2))


def family_code(name: str) -> tuple[FitFamily, Any]:
    """The fit function and model class of family `name`, as the registry
    (nlpflow.config.sections.families.FAMILIES) names them. Imported on demand, so choosing
    or loading one family never imports another's heavy libraries."""
    import importlib

    spec = FAMILIES[name]
    module = importlib.import_module(f"nlpflow.training.families.{spec.code}")
    return getattr(module, spec.fit), getattr(module, spec.model)


def baseline_folder(baseline_dir: Path | None, model_dir: Path) -> Path | None:
    """The folder of the model evaluate scores as the baseline: the model's own when the
    baseline stage found it would train that very model (nlpflow.training.train)."""
    if baseline_dir is not None and (baseline_dir / SAME_AS_MODEL).is_file():
        return model_dir
    return baseline_dir


def load_model(path: Path) -> TextClassifier:
    """Load whichever family `path` holds."""
    manifest = load_manifest(path)
    family = manifest["family"]
    if family not in FAMILIES:
        raise ModelError(
            f"{path}: unknown model family {family!r}; this nlpflow loads {', '.join(FAMILIES)}. "
            "Upgrade nlpflow to the version that trained it, or retrain."
        )
    loaded: TextClassifier = family_code(family)[1].load(path)
    reference = manifest.get("reference_shares")
    if reference is not None:  # a topic model's training mix (nlpflow.training.train)
        loaded.reference_shares = reference  # type: ignore[attr-defined]
    return loaded
