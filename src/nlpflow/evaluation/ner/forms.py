"""The gate's form of a sentence's entities in token classification: canonical JSON of
character spans, `[[start,end,"type"],...]` sorted (offsets into the raw text, end exclusive),
and strict entity F1 (micro or macro over types) of that form as a stats.ResampledMetric.

A served answer (spans over its own tokens) and a test row's gold tags (over the data's tokens)
can both be written in this form without the other's tokens, so the promotion gate can score a
served model against gold. An entity is found when its offsets and type match: on one
tokenisation this is seqeval's strict match of the tags. evaluate
(nlpflow.evaluation.nlp.token_classification) and the served Output
(nlpflow.serving.nlp.token_classification) both build entities with `entity_records`.

    canonical(entity_records("Ada is here", ["Ada", "is", "here"], [0, 4, 7],
                             [Span(0, 1, "person")]))                  # '[[0,3,"person"]]'
    SpanF1("entity_f1")(['[[0,3,"person"]]'], ['[]'])                  # 0.0
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from nlpflow.evaluation.ner.bootstrap import f1_of_counts
from nlpflow.evaluation.ner.scores import Span


def entity_records(
    text: str, tokens: Sequence[str], starts: Sequence[int], spans: Sequence[Span],
    probs: Sequence[float] | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """{start, end, label, text[, score]} per entity: character offsets into `text` from the
    tokens' starts; score, the mean probability of the entity's tags. The served Output builds
    its answer with this function, so evaluate's record and a served answer agree exactly."""
    records = []
    for span in spans:
        start = int(starts[span.start])
        end = int(starts[span.end - 1]) + len(tokens[span.end - 1])
        record: dict[str, Any] = {"start": start, "end": end, "label": span.type,
                                  "text": text[start:end]}  # fmt: skip
        if probs is not None:
            chosen = [float(p) for p in probs[span.start : span.end]]
            record["score"] = sum(chosen) / len(chosen)
        records.append(record)
    return records


def canonical(records: Sequence[dict[str, Any]]) -> str:
    """The gate's form of a sentence's entities: `[[start,end,"type"],...]`, sorted."""
    spans = sorted((int(r["start"]), int(r["end"]), str(r["label"])) for r in records)
    return json.dumps([list(s) for s in spans], separators=(",", ":"), ensure_ascii=False)


def lowest_score(records: Sequence[dict[str, Any]]) -> float:
    """The score of the entity the model was least sure of; 1.0 for a sentence without one.
    The probability recorded() and read_answer() give: a served answer holds entity scores."""
    return min((float(r["score"]) for r in records), default=1.0)


def _span_sets(values: Sequence[str]) -> list[set[tuple[int, int, str]]]:
    return [{(int(s), int(e), str(t)) for s, e, t in json.loads(v)} for v in values]


def span_counts(gold: Sequence[str], predicted: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """(types, counts): counts[row, type] = (tp, fp, fn) of exact character spans."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold rows against {len(predicted)} predicted")
    g, p = _span_sets(gold), _span_sets(predicted)
    types = sorted({s[2] for row in (*g, *p) for s in row})
    index = {t: i for i, t in enumerate(types)}
    counts = np.zeros((len(g), len(types), 3), dtype=np.int64)
    for row, (gs, ps) in enumerate(zip(g, p, strict=True)):
        for span in gs & ps:
            counts[row, index[span[2]], 0] += 1
        for span in ps - gs:
            counts[row, index[span[2]], 1] += 1
        for span in gs - ps:
            counts[row, index[span[2]], 2] += 1
    return types, counts


def span_f1(sums: np.ndarray, *, macro: bool) -> np.ndarray:
    """F1 of summed (..., types, 3) counts: micro over types, or their mean over the types
    present (with a gold or predicted entity), as seqeval's macro average."""
    if not macro:
        return f1_of_counts(sums.sum(axis=-2))
    present = sums.sum(axis=-1) > 0
    shown = present.sum(axis=-1)
    total = (f1_of_counts(sums) * present).sum(axis=-1)
    return np.divide(total, shown, out=np.zeros(np.shape(total)), where=shown > 0)


class SpanF1:
    """entity_f1 or entity_macro_f1 of the gate's form as a stats.ResampledMetric."""

    def __init__(self, name: str) -> None:
        self.name, self.macro = name, name == "entity_macro_f1"

    def __call__(self, gold: Any, predicted: Any) -> float:
        _, counts = span_counts(list(gold), list(predicted))
        return float(span_f1(counts.sum(axis=0), macro=self.macro))

    def resampled(self, gold: Any, predicted: Any, indices: np.ndarray) -> np.ndarray:
        """One score per row of `indices` (resamples x rows): how often each resample drew
        each row (one bincount), times the rows' counts."""
        _, counts = span_counts(list(gold), list(predicted))
        picks = np.asarray(indices, dtype=np.int64)
        resamples, rows = picks.shape
        offsets = (np.arange(resamples) * rows)[:, None]
        drawn = np.bincount((picks + offsets).ravel(), minlength=resamples * rows)
        flat = counts.reshape(rows, -1).astype(float)
        sums = (drawn.reshape(resamples, rows).astype(float) @ flat).reshape(resamples, -1, 3)
        return span_f1(sums, macro=self.macro)


Records = list[dict[str, Any]]  # {start, end, label, text[, score]} per entity


def entities_of(model: Any, texts: Sequence[str]) -> list[Records]:
    """The model's entities in each raw text, as served (nlpflow.serving.nlp.
    token_classification answers with these) and as the behavioural tests see them: spaCy's
    blank English tokens (whitespace dropped), the model's tags read as seqeval's strict IOB2
    reads them, offsets into the raw text."""
    from nlpflow.data.ner.formats import default_tokenizer
    from nlpflow.evaluation.ner.scores import sentence_entities

    tokenized = [
        [(t.text, t.idx) for t in default_tokenizer()(text) if t.text.strip()] for text in texts
    ]
    tagged = [i for i, tokens in enumerate(tokenized) if tokens]
    sentences = [[word for word, _ in tokenized[i]] for i in tagged]
    tags, probs = model.predict_tags(sentences) if sentences else ([], [])
    out: list[Records] = [[] for _ in texts]
    for j, (i, spans) in enumerate(zip(tagged, sentence_entities(tags), strict=True)):
        starts = [at for _, at in tokenized[i]]
        out[i] = entity_records(texts[i], sentences[j], starts, spans, probs[j])
    return out
