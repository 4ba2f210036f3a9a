"""The served output for topic-modeling (nlpflow.serving.nlp.Output).

One row per text: `topic` (the id of its largest topic), `probability` (that topic's share of
the text), `words` (the topic's top words, comma-separated) and `share_<topic>` for every topic,
in the model's topic order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from nlpflow.evaluation.nlp.topic_modeling import SHARE_PREFIX, answer_form, topic_names

if TYPE_CHECKING:
    import numpy as np


def output_schema(labels: Sequence[str]) -> dict[str, str]:
    outputs = {"topic": "string", "probability": "double", "words": "string"}
    return outputs | {f"{SHARE_PREFIX}{topic}": "double" for topic in labels}


def predict_frame(model: Any, cleaner: Any, texts: list[str]) -> pd.DataFrame:
    import numpy as np

    shares = (
        model.predict_proba(cleaner.transform(texts))
        if texts
        else np.zeros((0, len(model.labels)))  # an empty request gets an empty answer
    )
    names = topic_names(model)
    best = shares.argmax(axis=1)
    frame = pd.DataFrame(
        {
            "topic": [model.labels[i] for i in best],
            "probability": shares.max(axis=1).astype(float) if len(shares) else [],
            "words": [names[i] for i in best],
        }
    )
    for i, topic in enumerate(model.labels):
        frame[f"{SHARE_PREFIX}{topic}"] = shares[:, i].astype(float)
    return frame


def read_answer(frame: pd.DataFrame, labels: Sequence[str]) -> tuple[list[Any], np.ndarray]:
    columns = [f"{SHARE_PREFIX}{topic}" for topic in labels]
    answers = [
        answer_form(str(topic), str(words).split(", "))
        for topic, words in zip(frame["topic"], frame["words"], strict=True)
    ]
    return answers, frame[columns].to_numpy()


def answer_counts(frame: pd.DataFrame) -> tuple[str, dict[str, int]]:
    counts = frame["topic"].astype(str).value_counts()
    ordered = sorted(counts.items(), key=lambda item: _topic_order(str(item[0])))
    return "rows per largest topic", {str(k): int(v) for k, v in ordered}


def answer_drift(frame: pd.DataFrame, model: Any) -> dict[str, Any] | None:
    """Each topic's mean share of the scored texts against its share of the training texts
    (recorded by train: the model's `reference_shares`), their total variation distance (half
    the summed absolute differences: 0 = the same mix of topics, 1 = none in common) and the
    topics that moved most. None when the model recorded no shares, or nothing was scored."""
    reference = getattr(model, "reference_shares", None)
    if not reference or frame.empty:
        return None
    current = {t: float(frame[f"{SHARE_PREFIX}{t}"].mean()) for t in reference}
    return share_drift(current, {t: float(v) for t, v in reference.items()})


def share_drift(current: dict[str, float], reference: dict[str, float]) -> dict[str, Any]:
    """The drift of topic shares `current` from `reference`: their total variation distance
    and the three largest moves (batch inference merges its chunks' shares with this too)."""
    moves = {t: current[t] - reference[t] for t in reference}
    tvd = 0.5 * sum(abs(v) for v in moves.values())
    largest = sorted(moves, key=lambda t: -abs(moves[t]))[:3]
    return {
        "tvd": round(tvd, 6),
        "reference": {t: round(reference[t], 6) for t in reference},
        "current": {t: round(v, 6) for t, v in current.items()},
        "largest_moves": {t: round(moves[t], 6) for t in largest},
    }


def _topic_order(topic: str) -> tuple[int, str]:
    return (int(topic), "") if topic.lstrip("-").isdigit() else (1 << 30, topic)


def is_output_column(name: str) -> bool:
    return name in ("topic", "probability", "words") or name.startswith(SHARE_PREFIX)


def display(texts: list[str], frame: pd.DataFrame) -> pd.DataFrame:
    """The text, its largest topic, that topic's share and its words."""
    shown = frame[["topic", "probability", "words"]].copy()
    shown.insert(0, "text", texts)
    return shown


def json_rows(texts: list[str], frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Each text with its largest topic, the topic's words as a list, and every topic's share."""
    rows = []
    for text, row in zip(texts, frame.to_dict("records"), strict=True):
        shares = {
            k.removeprefix(SHARE_PREFIX): v for k, v in row.items() if k.startswith(SHARE_PREFIX)
        }
        rows.append({"text": text, "topic": row["topic"], "probability": row["probability"],
                     "words": str(row["words"]).split(", "), "shares": shares})  # fmt: skip
    return rows
