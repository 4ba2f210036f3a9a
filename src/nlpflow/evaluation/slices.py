"""Slices of the test set: where does the model do worse than on average?

Rows are grouped by their raw text (what a user wrote, before cleaning):
- length buckets, in whitespace tokens (`evaluate.length_buckets` [8, 16] gives length_le_8,
  length_9_16 and length_gt_16);
- `negation`: texts holding an English negation cue (not, never, no, n't, ...);
- the named keyword and regex slices of `evaluate.slices`.

Each slice reports its rows, accuracy and the main metric; a slice smaller than
`evaluate.min_slice_size` is reported but marked untrusted (the promotion gate ignores it).
The gate scores the champion's predictions with `compute_slice_metrics` too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import numpy as np

from nlpflow.config.params import EvaluateParams, SliceParams
from nlpflow.errors import ParamsError
from nlpflow.evaluation.metrics import metric_function

# Cues of explicit negation. "n't" has no word boundary before it (don't, isn't), and
# pre-tokenised corpora such as MR split it off ("does n't"); both match.
NEGATION = re.compile(
    r"\b(?:not|no|never|none|nobody|nothing|neither|nor|nowhere|cannot)\b|n['’]t\b", re.IGNORECASE
)


def length_slices(edges: Sequence[int]) -> list[tuple[str, int, float]]:
    """(name, fewest tokens, most tokens) per bucket: [8, 16] -> le_8, 9_16, gt_16."""
    buckets: list[tuple[str, int, float]] = [(f"length_le_{edges[0]}", 0, edges[0])]
    buckets += [(f"length_{a + 1}_{b}", a + 1, b) for a, b in pairwise(edges)]
    buckets.append((f"length_gt_{edges[-1]}", edges[-1] + 1, float("inf")))
    return buckets


def keyword_pattern(keywords: Sequence[str]) -> re.Pattern[str]:
    """Any of the words or phrases, whole words, any case; a phrase's spaces match any run of
    whitespace. Lookarounds instead of \\b so keywords such as '#1' or 'c++' work too."""
    phrases = [r"\s+".join(map(re.escape, k.split())) for k in keywords if k.strip()]
    return re.compile(rf"(?<!\w)(?:{'|'.join(phrases)})(?!\w)", re.IGNORECASE)


def _rule(name: str, rule: SliceParams) -> tuple[str, re.Pattern[str]]:
    if rule.keywords is not None:
        return "keywords", keyword_pattern(rule.keywords)
    assert rule.regex is not None  # SliceParams holds exactly one rule
    return "regex", re.compile(rule.regex)


def slice_members(
    raw_texts: Sequence[str], *, params: EvaluateParams
) -> dict[str, tuple[str, np.ndarray]]:
    """Every slice's kind and boolean row mask, empty slices included, in report order."""
    tokens = np.array([len(str(t).split()) for t in raw_texts], dtype=float)
    members: dict[str, tuple[str, np.ndarray]] = {}
    for name, low, high in length_slices(params.length_buckets):
        members[name] = ("length", (tokens >= low) & (tokens <= high))
    if params.negation:
        members["negation"] = ("negation", _matches(NEGATION, raw_texts))
    for name, rule in params.slices.items():
        if name in members:
            raise ParamsError(
                f"evaluate.slices.{name}: that name belongs to a built-in slice; rename it."
            )
        kind, pattern = _rule(name, rule)
        members[name] = (kind, _matches(pattern, raw_texts))
    return members


def _matches(pattern: re.Pattern[str], texts: Sequence[str]) -> np.ndarray:
    return np.array([pattern.search(str(t)) is not None for t in texts], dtype=bool)


def compute_slice_metrics(
    raw_texts: Sequence[str],
    gold: Sequence[str],
    predicted: Sequence[str],
    *,
    labels: Sequence[str],
    params: EvaluateParams,
) -> dict[str, dict[str, Any]]:
    """{slice: {kind, rows, accuracy, <main metric>, trusted}} for every slice with rows.

    Precision/recall-based metrics average over the labels present in the slice (as gold or
    prediction): a label absent from a slice would otherwise add an F1 of 0 and make, say, the
    negation slice look worse merely for holding few `account` tickets."""
    if not len(raw_texts) == len(gold) == len(predicted):
        raise ValueError("raw_texts, gold and predicted must have one entry per row")
    y, p = np.asarray(gold, dtype=object), np.asarray(predicted, dtype=object)
    main = params.main_metric
    out: dict[str, dict[str, Any]] = {}
    for name, (kind, mask) in slice_members(raw_texts, params=params).items():
        rows = int(mask.sum())
        if rows == 0:
            continue
        present = set(y[mask]) | set(p[mask])
        scored = [label for label in labels if label in present]
        out[name] = {
            "kind": kind,
            "rows": rows,
            "accuracy": metric_function("accuracy", labels)(y[mask], p[mask]),
            main: metric_function(main, scored)(y[mask], p[mask]),
            "trusted": rows >= params.min_slice_size,
        }
    return out
