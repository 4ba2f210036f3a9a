"""Model families behind one interface.

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
from typing import Any, Protocol

import numpy as np

from nlpflow.errors import ModelError, StageInputError

MANIFEST = "nlpflow.json"
EpochCallback = Callable[[int, dict[str, float]], None]


class TextClassifier(Protocol):
    family: str
    labels: list[str]

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray: ...

    def save(self, path: Path) -> None: ...


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


# family -> (module, class); imported on load, so loading one family never imports another's
# heavy libraries. Every name in TrainParams.family must be here (a test checks it).
LOADERS = {
    "tfidf_logreg": ("nlpflow.training.families.tfidf", "TfidfClassifier"),
    "tfidf_linear_svm": ("nlpflow.training.families.tfidf", "TfidfClassifier"),
    "transformer": ("nlpflow.training.families.transformer", "TransformerClassifier"),
    "transformer_frozen": ("nlpflow.training.families.frozen", "FrozenEncoderClassifier"),
    "spacy_textcat": ("nlpflow.training.families.spacy_textcat", "SpacyTextcatClassifier"),
}


def load_model(path: Path) -> TextClassifier:
    """Load whichever family `path` holds."""
    import importlib

    family = load_manifest(path)["family"]
    if family not in LOADERS:
        raise ModelError(
            f"{path}: unknown model family {family!r}; this nlpflow loads {', '.join(LOADERS)}. "
            "Upgrade nlpflow to the version that trained it, or retrain."
        )
    module, name = LOADERS[family]
    loaded: TextClassifier = getattr(importlib.import_module(module), name).load(path)
    return loaded
