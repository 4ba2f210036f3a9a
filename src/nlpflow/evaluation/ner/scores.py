"""Entity-level scores of BIO (IOB2) tag sequences, one list of tags per sentence.

- `entity_scores`: seqeval's strict IOB2 precision/recall/F1 (micro, macro, per type), token
  accuracy, and nervaluate's strict, exact-boundary, partial and type-only matching, as the
  flat keys of a metrics.json;
- `type_confusion`: gold type against predicted type where the boundaries match exactly;
- `error_table`: every error, classified as missed, spurious, wrong_type or wrong_boundary.

Every figure reads entities as seqeval's strict mode does (`sentence_entities`): an I- tag that
continues no entity of its type starts none. nervaluate is handed those entities rather than the
tags, because its own reader would turn such a stray I- into an entity: partial, exact and type
scores then differ from the strict ones only in how they match, never in what an entity is.

    scores = entity_scores(gold, predicted)   # gold[i], predicted[i]: the tags of sentence i
    scores["entity_f1"], scores["partial_f1"], scores["per_type"]["person"]["f1"]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

Tags = Sequence[str]  # one sentence's tags: "O", "B-<type>" or "I-<type>"
MISSED, SPURIOUS = "(missed)", "(spurious)"
# nervaluate's schema -> the prefix of its keys here
_FIGURES = ("precision", "recall", "f1")
_SCHEMAS = {"strict": "strict", "exact": "exact", "partial": "partial", "ent_type": "type"}


class Span(NamedTuple):
    """One entity of a sentence: tokens start..end-1."""

    start: int
    end: int  # exclusive
    type: str


def check_tags(gold: Sequence[Tags], predicted: Sequence[Tags]) -> None:
    """ValueError unless gold and predicted hold the same number of sentences, each of the same
    length, and every tag is O, B-<type> or I-<type>."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold sentences against {len(predicted)} predicted")
    for i, (g, p) in enumerate(zip(gold, predicted, strict=True)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: {len(g)} gold tags against {len(p)} predicted")
        for tag in (*g, *p):
            if tag != "O" and not (tag[:2] in ("B-", "I-") and len(tag) > 2):
                raise ValueError(f"sentence {i}: tag {tag!r} is not IOB2 (O, B-<type> or I-<type>)")


def sentence_entities(sentences: Sequence[Tags]) -> list[list[Span]]:
    """Each sentence's entities as seqeval's strict IOB2 mode reads them, in order."""
    from seqeval.scheme import IOB2, Entities

    found = Entities([list(tags) for tags in sentences], IOB2, suffix=False).entities
    return [[Span(e.start, e.end, e.tag) for e in sentence] for sentence in found]


def prf(tp: int, predicted: int, gold: int) -> dict[str, float]:
    """Precision, recall and F1 from counts; 0 where a denominator is 0 (seqeval's
    zero_division=0)."""
    precision = tp / predicted if predicted else 0.0
    recall = tp / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def entity_scores(gold: Sequence[Tags], predicted: Sequence[Tags]) -> dict[str, Any]:
    """The NER figures of metrics.json: entity_{precision,recall,f1} (seqeval strict, micro),
    entity_macro_{precision,recall,f1}, token_accuracy, {strict,exact,partial,type}_{precision,
    recall,f1} (nervaluate), gold_entities, predicted_entities, and per_type: {type: {precision,
    recall, f1, support}}."""
    check_tags(gold, predicted)
    gold_spans, pred_spans = sentence_entities(gold), sentence_entities(predicted)
    tokens = sum(len(g) for g in gold)
    same = sum(
        a == b for g, p in zip(gold, predicted, strict=True) for a, b in zip(g, p, strict=True)
    )
    if any(gold_spans) or any(pred_spans):
        scores = _seqeval_scores(gold, predicted)
    else:  # seqeval fails on no sentences, and averages no types to NaN
        scores = {f"{k}_{f}": 0.0 for k in ("entity", "entity_macro") for f in _FIGURES}
        scores["per_type"] = {}
    scores["token_accuracy"] = same / tokens if tokens else 0.0
    scores |= _nervaluate_scores(gold_spans, pred_spans)
    scores["gold_entities"] = sum(map(len, gold_spans))
    scores["predicted_entities"] = sum(map(len, pred_spans))
    return scores


def _seqeval_scores(gold: Sequence[Tags], predicted: Sequence[Tags]) -> dict[str, Any]:
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2

    report = classification_report(
        [list(g) for g in gold], [list(p) for p in predicted], mode="strict", scheme=IOB2,
        output_dict=True, zero_division=0,
    )  # fmt: skip
    averages = {"micro avg": "entity", "macro avg": "entity_macro"}
    scores: dict[str, Any] = {}
    for average, key in averages.items():
        for figure in _FIGURES:
            scores[f"{key}_{figure}"] = float(
                report[average][f"{figure}-score" if figure == "f1" else figure]
            )
    scores["per_type"] = {
        name: {
            "precision": float(row["precision"]),
            "recall": float(row["recall"]),
            "f1": float(row["f1-score"]),
            "support": int(row["support"]),
        }
        for name, row in sorted(report.items())
        if not name.endswith(" avg")
    }
    return scores


def _nervaluate_scores(
    gold_spans: list[list[Span]], pred_spans: list[list[Span]]
) -> dict[str, float]:
    """nervaluate 1.2's four schemas over the given entities (its Evaluator(...).evaluate()
    ["overall"][schema] is an EvaluationResult; ends are inclusive there)."""
    from nervaluate import Evaluator

    def documents(spans: list[list[Span]]) -> list[list[dict[str, Any]]]:
        return [
            [{"label": s.type, "start": s.start, "end": s.end - 1} for s in doc] for doc in spans
        ]

    types = sorted({s.type for doc in (*gold_spans, *pred_spans) for s in doc})
    overall: dict[str, Any] = {}
    if types:  # with no entities at all its results hold no schema
        evaluator = Evaluator(documents(gold_spans), documents(pred_spans), types, loader="dict")
        overall = evaluator.evaluate()["overall"]
    out: dict[str, float] = {}
    for schema, key in _SCHEMAS.items():
        result = overall.get(schema)
        for figure in _FIGURES:
            out[f"{key}_{figure}"] = float(getattr(result, figure)) if result is not None else 0.0
    return out


def type_confusion(
    gold: Sequence[Tags], predicted: Sequence[Tags]
) -> tuple[list[str], list[list[int]]]:
    """(labels, matrix), rows gold and columns predicted, labels the entity types then MISSED and
    SPURIOUS. A gold entity counts in its row under the type of the prediction with exactly its
    boundaries, or under MISSED when there is none; a prediction whose boundaries match no gold
    entity counts in the SPURIOUS row. Overlaps with other boundaries count as missed plus
    spurious (error_table tells them apart). The MISSED row and SPURIOUS column stay 0: the
    matrix is square so it plots as the classification confusion does."""
    check_tags(gold, predicted)
    gold_spans, pred_spans = sentence_entities(gold), sentence_entities(predicted)
    types = sorted({s.type for doc in (*gold_spans, *pred_spans) for s in doc})
    labels = [*types, MISSED, SPURIOUS]
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for gs, ps in zip(gold_spans, pred_spans, strict=True):
        # the entities of one sentence never overlap, so boundaries name at most one of them
        predicted_type = {(p.start, p.end): p.type for p in ps}
        gold_bounds = {(g.start, g.end) for g in gs}
        for g in gs:
            matrix[index[g.type]][index[predicted_type.get((g.start, g.end), MISSED)]] += 1
        for p in ps:
            if (p.start, p.end) not in gold_bounds:
                matrix[index[SPURIOUS]][index[p.type]] += 1
    return labels, matrix


def error_table(
    tokens: Sequence[Sequence[str]], gold: Sequence[Tags], predicted: Sequence[Tags]
) -> list[dict[str, Any]]:
    """Every error, by sentence then position (_position): {sentence, kind, gold_text, gold_type, gold_start,
    gold_end, predicted_text, predicted_type, predicted_start, predicted_end} (None for the side
    an error lacks; text is the tokens joined by spaces; ends exclusive).

    Kinds: `wrong_type`, a prediction overlapping a gold entity with another type; `wrong_boundary`,
    one overlapping it with the same type and other boundaries; `missed`, a gold entity no
    prediction is paired with; `spurious`, a prediction paired with none. A prediction with
    both another type and other boundaries is `wrong_type` (the type is the error a reader
    acts on; the differing starts/ends show the boundary). Each entity is paired at most once:
    greedily, same boundaries first, then same type, then the larger overlap."""
    check_tags(gold, predicted)
    if len(tokens) != len(gold) or any(
        len(t) != len(g) for t, g in zip(tokens, gold, strict=False)
    ):
        raise ValueError("tokens must hold one token per tag of every gold sentence")
    rows: list[dict[str, Any]] = []
    gold_spans, pred_spans = sentence_entities(gold), sentence_entities(predicted)
    for i, (words, gs, ps) in enumerate(zip(tokens, gold_spans, pred_spans, strict=True)):
        found = sorted(_sentence_errors(gs, ps), key=_position)
        rows += [_error_row(words, kind, g, p, sentence=i) for kind, g, p in found]
    return rows


def _sentence_errors(gs: list[Span], ps: list[Span]) -> list[tuple[str, Span | None, Span | None]]:
    """One sentence's errors as (kind, gold, predicted), in no particular order."""
    exact = set(gs) & set(ps)
    gold_left, pred_left = [g for g in gs if g not in exact], [p for p in ps if p not in exact]
    candidates = []
    for g in gold_left:
        for p in pred_left:
            overlap = min(g.end, p.end) - max(g.start, p.start)
            if overlap > 0:
                rank = 0 if (g.start, g.end) == (p.start, p.end) else 1 if g.type == p.type else 2
                candidates.append((rank, -overlap, g.start, p.start, g, p))
    errors: list[tuple[str, Span | None, Span | None]] = []
    used_gold: set[Span] = set()
    used_pred: set[Span] = set()
    for rank, _, _, _, g, p in sorted(candidates, key=lambda c: c[:4]):
        if g not in used_gold and p not in used_pred:
            used_gold.add(g)
            used_pred.add(p)
            errors.append(("wrong_boundary" if rank == 1 else "wrong_type", g, p))
    errors += [("missed", g, None) for g in gold_left if g not in used_gold]
    errors += [("spurious", None, p) for p in pred_left if p not in used_pred]
    return errors


def _position(error: tuple[str, Span | None, Span | None]) -> tuple[int, int]:
    """An error's place: its first token, then its prediction's (gold's if it has none)."""
    _, g, p = error
    first = min(s.start for s in (g, p) if s is not None)
    return first, p.start if p is not None else g.start if g is not None else 0


def _error_row(
    words: Sequence[str], kind: str, g: Span | None, p: Span | None, *, sentence: int
) -> dict[str, Any]:
    row: dict[str, Any] = {"sentence": sentence, "kind": kind}
    for side, span in (("gold", g), ("predicted", p)):
        row[f"{side}_text"] = " ".join(words[span.start : span.end]) if span else None
        row[f"{side}_type"] = span.type if span else None
        row[f"{side}_start"] = span.start if span else None
        row[f"{side}_end"] = span.end if span else None
    return row
