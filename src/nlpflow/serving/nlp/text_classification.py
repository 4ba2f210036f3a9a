"""The served output for text-classification (nlpflow.serving.nlp.Output).

One row per text: `label` (the predicted class), `score` (its probability) and
`proba_<label>` for every class, in the model's label order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    import numpy as np

PROBA_PREFIX = "proba_"  # + a class name: that class's probability


def output_schema(labels: Sequence[str]) -> dict[str, str]:
    outputs = {"label": "string", "score": "double"}
    return outputs | {f"{PROBA_PREFIX}{label}": "double" for label in labels}


def predict_frame(model: Any, cleaner: Any, texts: list[str]) -> pd.DataFrame:
    import numpy as np

    from nlpflow.training.families import predict_labels

    if texts:
        labels, proba = predict_labels(model, cleaner.transform(texts))
    else:  # an empty request gets an empty answer (scikit-learn refuses 0 rows)
        labels, proba = [], np.zeros((0, len(model.labels)))
    frame = pd.DataFrame({"label": labels, "score": proba.max(axis=1).astype(float)})
    for i, name in enumerate(model.labels):
        frame[f"{PROBA_PREFIX}{name}"] = proba[:, i].astype(float)
    return frame


def read_answer(frame: pd.DataFrame, labels: Sequence[str]) -> tuple[list[Any], np.ndarray]:
    columns = [f"{PROBA_PREFIX}{label}" for label in labels]
    return frame["label"].astype(str).tolist(), frame[columns].to_numpy()


def answer_counts(frame: pd.DataFrame) -> tuple[str, dict[str, int]]:
    counts = frame["label"].astype(str).value_counts().sort_index()
    return "rows per predicted label", {str(k): int(v) for k, v in counts.items()}


def answer_drift(frame: pd.DataFrame, model: Any) -> None:
    """None: batch inference's validation checks measure drift of the inputs (the training
    data's label shares are not recorded with the model)."""
    return None


def is_output_column(name: str) -> bool:
    return name in ("label", "score") or name.startswith(PROBA_PREFIX)


def display(texts: list[str], frame: pd.DataFrame) -> pd.DataFrame:
    """The text, the label, its score and each class's probability under the class's name."""
    shown = frame.rename(columns=lambda c: c.removeprefix(PROBA_PREFIX))
    shown.insert(0, "text", texts)
    return shown


def json_rows(texts: list[str], frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {"text": text, **row} for text, row in zip(texts, frame.to_dict("records"), strict=True)
    ]
