"""Slices of an NER test set: where does the model find fewer entities than on average?

- `seen_unseen`: entities whose surface form (lower-cased text, type) occurs in the train set
  against the rest; on WNUT-17 (built around novel entities) the unseen F1 is the figure;
- `by_entity_length`: entities of 1, 2 and 3+ tokens;
- `by_sentence_length`: sentences bucketed by token count at `edges`, named as the text
  classification's length slices are ([8, 16] -> length_le_8, length_9_16, length_gt_16).

Entity slices place a gold entity by its own length or surface form and a predicted one by its
own; an exact match has both the same, so it lands in one slice as a true positive. Each slice
reports entities (gold), predicted, precision, recall and f1 (strict, micro), sentence slices
their rows (sentences) too; empty slices are left out.

    seen_unseen(surface_forms(train_tokens, train_tags), gold, predicted, tokens)["unseen"]["f1"]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from itertools import pairwise
from typing import Any

from nlpflow.evaluation.ner.scores import Span, Tags, check_tags, prf, sentence_entities
from nlpflow.evaluation.slices import length_slices

SurfaceForm = tuple[str, str]  # (lower-cased entity text, its tokens joined by spaces; type)
ENTITY_LENGTHS = ("entity_len_1", "entity_len_2", "entity_len_3+")


def _surface(words: Sequence[str], span: Span) -> SurfaceForm:
    return " ".join(words[span.start : span.end]).lower(), span.type


def surface_forms(tokens: Sequence[Sequence[str]], tags: Sequence[Tags]) -> set[SurfaceForm]:
    """Every entity's surface form in these sentences: the train split's, for seen_unseen."""
    check_tags(tags, tags)
    _check_tokens(tokens, tags)
    return {
        _surface(words, span)
        for words, spans in zip(tokens, sentence_entities(tags), strict=True)
        for span in spans
    }


def _check_tokens(tokens: Sequence[Sequence[str]], tags: Sequence[Tags]) -> None:
    if len(tokens) != len(tags) or any(
        len(w) != len(t) for w, t in zip(tokens, tags, strict=False)
    ):
        raise ValueError("tokens must hold one token per tag of every sentence")


def _row(tp: int, predicted: int, gold: int) -> dict[str, Any]:
    return {"entities": gold, "predicted": predicted, **prf(tp, predicted, gold)}


def _entity_slices(
    gold: Sequence[Tags], predicted: Sequence[Tags], *, words: Sequence[Sequence[str]] | None,
    names: Sequence[str], place: Callable[[Sequence[str], Span], str],
) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Counts (tp, predicted, gold) per slice name, `place(words_of_sentence, span)` naming an
    entity's slice; slices in the order of `names`, empty ones left out."""
    check_tags(gold, predicted)
    counts = {name: [0, 0, 0] for name in names}
    spans = zip(sentence_entities(gold), sentence_entities(predicted), strict=True)
    for i, (gs, ps) in enumerate(spans):
        sentence = words[i] if words is not None else ()
        found = set(gs) & set(ps)
        for g in gs:
            counts[place(sentence, g)][2] += 1
            counts[place(sentence, g)][0] += g in found
        for p in ps:
            counts[place(sentence, p)][1] += 1
    return {name: _row(*c) for name, c in counts.items() if c[1] or c[2]}


def seen_unseen(
    train_entities: Iterable[SurfaceForm],
    gold: Sequence[Tags],
    predicted: Sequence[Tags],
    tokens: Sequence[Sequence[str]],
) -> dict[str, dict[str, Any]]:
    """{"seen": ..., "unseen": ...}: an entity is seen when its (lower-cased text, type) is one
    of `train_entities` (texts are lower-cased here too; surface_forms builds them)."""
    _check_tokens(tokens, gold)
    known = {(text.lower(), kind) for text, kind in train_entities}

    def place(words: Sequence[str], span: Span) -> str:
        return "seen" if _surface(words, span) in known else "unseen"

    return _entity_slices(gold, predicted, words=tokens, names=("seen", "unseen"), place=place)


def by_entity_length(gold: Sequence[Tags], predicted: Sequence[Tags]) -> dict[str, dict[str, Any]]:
    """{entity_len_1, entity_len_2, entity_len_3+: ...}, by the entity's token count."""

    def place(_: Sequence[str], span: Span) -> str:
        return ENTITY_LENGTHS[min(span.end - span.start, 3) - 1]

    return _entity_slices(gold, predicted, words=None, names=ENTITY_LENGTHS, place=place)


def by_sentence_length(
    gold: Sequence[Tags], predicted: Sequence[Tags], *, edges: Sequence[int] = (8, 16)
) -> dict[str, dict[str, Any]]:
    """{length_le_8, length_9_16, length_gt_16: {rows, entities, predicted, precision, recall,
    f1}} for edges [8, 16]: the sentences of each token-count bucket, scored together."""
    if not edges or any(a >= b for a, b in pairwise(edges)) or edges[0] < 1:
        raise ValueError(f"edges must be positive and increasing, got {list(edges)}")
    check_tags(gold, predicted)
    buckets = length_slices(edges)
    counts = {name: [0, 0, 0, 0] for name, _, _ in buckets}  # rows, tp, predicted, gold
    spans = zip(sentence_entities(gold), sentence_entities(predicted), strict=True)
    for tags, (gs, ps) in zip(gold, spans, strict=True):
        name = next(name for name, low, high in buckets if low <= len(tags) <= high)
        for column, n in enumerate((1, len(set(gs) & set(ps)), len(ps), len(gs))):
            counts[name][column] += n
    return {name: {"rows": c[0], **_row(*c[1:])} for name, c in counts.items() if c[0]}
