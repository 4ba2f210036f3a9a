"""The served output for token-classification (nlpflow.serving.nlp.Output).

One row per text: `entities`, a JSON list of {"start", "end", "label", "text", "score"}:
character offsets into the raw text as sent (end exclusive; text == raw[start:end]) and the
mean probability of the entity's tags. The text is tokenised with spaCy's blank English
tokenizer, whitespace tokens dropped, as nlpflow.data.ner reads span files, and tags are read
as entities as evaluate reads them (seqeval's strict IOB2: an I- that continues no entity of
its type starts none).

    predict_frame(model, None, ["Going to see Dune 2 at the Alamo Drafthouse with Sarah"])

The gate reads an answer (read_answer) in the form evaluate records (nlpflow.evaluation.ner.
forms): the entities as canonical JSON `[[start,end,"type"],...]` and, as the probability, the
lowest entity score of each text (1.0 for none), one column.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    import numpy as np

COLUMN = "entities"


def output_schema(labels: Sequence[str]) -> dict[str, str]:
    return {COLUMN: "string"}


def predict_frame(model: Any, cleaner: Any, texts: list[str]) -> pd.DataFrame:
    """`cleaner` is not used: preprocess keeps a token-classification text as written (the
    entities' offsets point into it), so the raw text is what the model tags."""
    from nlpflow.evaluation.ner.forms import entities_of

    answers = entities_of(model, texts)
    return pd.DataFrame({COLUMN: [json.dumps(a, ensure_ascii=False) for a in answers]})


def read_answer(frame: pd.DataFrame, labels: Sequence[str]) -> tuple[list[Any], np.ndarray]:
    import numpy as np

    from nlpflow.evaluation.ner.forms import canonical, lowest_score

    answers = [json.loads(value) for value in frame[COLUMN]]
    lowest = np.array([lowest_score(a) for a in answers], dtype=float).reshape(-1, 1)
    return [canonical(a) for a in answers], lowest


def answer_counts(frame: pd.DataFrame) -> tuple[str, dict[str, int]]:
    counts: dict[str, int] = {}
    for value in frame[COLUMN]:
        for entity in json.loads(value):
            counts[entity["label"]] = counts.get(entity["label"], 0) + 1
    return "entities per type", dict(sorted(counts.items()))


def answer_drift(frame: pd.DataFrame, model: Any) -> None:
    """None: batch inference's validation checks measure drift of the inputs (the training
    data's label shares are not recorded with the model)."""
    return None


def is_output_column(name: str) -> bool:
    return name == COLUMN


def display(texts: list[str], frame: pd.DataFrame) -> pd.DataFrame:
    """One row per entity: the text it was found in, its own text, type, offsets and score (a
    text with none gets one row saying so)."""
    rows = []
    for text, answer in zip(texts, frame[COLUMN], strict=True):
        entities = json.loads(answer) or [{"text": "(no entity)", "label": "", "start": "",
                                            "end": "", "score": ""}]  # fmt: skip
        rows += [{"text": text, "entity": e["text"], "label": e["label"], "start": e["start"],
                  "end": e["end"], "score": e["score"]} for e in entities]  # fmt: skip
    return pd.DataFrame(rows, columns=["text", "entity", "label", "start", "end", "score"])


def json_rows(texts: list[str], frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{"text": t, COLUMN: json.loads(a)} for t, a in zip(texts, frame[COLUMN], strict=True)]
