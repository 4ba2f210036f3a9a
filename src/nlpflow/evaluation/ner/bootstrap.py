"""Uncertainty of entity F1: bootstrap over sentences, alone and paired (the promotion gate).

Entity F1 is a micro average, so a resample's F1 follows from its summed (tp, fp, fn): each
sentence's counts are computed once (`sentence_counts`, exact entity match, equal to seqeval's
strict totals), and a batch of resamples is one matrix product of how often each resample drew
each sentence with those counts. Resamples are drawn as nlpflow.evaluation.stats draws them
(one generator of `seed`, rows = sentences), with its Interval and PairedTest and its
conventions: percentile interval; the paired p is the share of resamples where B does not beat
A, +1-corrected; a difference within float noise is a tie and a tie is not better.

    ci = bootstrap_f1(gold, predicted, samples=1000, seed=13)         # Interval of entity_f1
    test, diff = paired(gold, champion, challenger, samples=1000)     # diff: challenger - champion
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from nlpflow.evaluation.ner.scores import Tags, check_tags, sentence_entities
from nlpflow.evaluation.stats import Interval, PairedTest

# Cells of one batch's draw matrix (resamples x sentences), as stats bounds its index batches
_BATCH_CELLS = 8_000_000
_TIE = 1e-12  # stats' tie: F1s of the same counts summed in another order differ in the last bit


def sentence_counts(gold: Sequence[Tags], predicted: Sequence[Tags]) -> np.ndarray:
    """(sentences, 3) integers: each sentence's true positives, false positives and false
    negatives, an entity counting as found only with its exact boundaries and type."""
    check_tags(gold, predicted)
    counts = np.zeros((len(gold), 3), dtype=np.int64)
    for i, (g, p) in enumerate(
        zip(sentence_entities(gold), sentence_entities(predicted), strict=True)
    ):
        tp = len(set(g) & set(p))
        counts[i] = (tp, len(p) - tp, len(g) - tp)
    return counts


def f1_of_counts(sums: np.ndarray) -> np.ndarray:
    """Micro F1 of summed (tp, fp, fn) along the last axis: 2tp / (2tp + fp + fn), which is
    2PR / (P + R); 0 with no entity on either side (seqeval's zero_division=0)."""
    s = np.asarray(sums, dtype=float)
    tp, fp, fn = s[..., 0], s[..., 1], s[..., 2]
    den = 2 * tp + fp + fn
    return np.divide(2 * tp, den, out=np.zeros(np.shape(den)), where=den > 0)


def _draws(sentences: int, samples: int, seed: int) -> Iterator[np.ndarray]:
    """Batches of (resamples x sentences): how often each resample drew each sentence. The
    indices are stats' (`integers(0, sentences, size=(samples, sentences))` of `seed`, drawn
    in batches), so a paired test here agrees with stats.paired_bootstrap of EntityF1."""
    rng = np.random.default_rng(seed)
    step = max(1, _BATCH_CELLS // max(sentences, 1))
    for start in range(0, samples, step):
        yield _drawn(rng.integers(0, sentences, size=(min(step, samples - start), sentences)))


def _drawn(picks: np.ndarray) -> np.ndarray:
    """How often each resample (row of `picks`, sentence indices) drew each sentence: one
    bincount; as floats, so `drawn @ counts` is a BLAS product (exact below 2**53)."""
    resamples, sentences = picks.shape
    offsets = (np.arange(resamples) * sentences)[:, None]
    drawn = np.bincount((picks + offsets).ravel(), minlength=resamples * sentences)
    return drawn.reshape(resamples, sentences).astype(float)


def _resampled_f1(columns: Sequence[np.ndarray], *, samples: int, seed: int) -> list[np.ndarray]:
    """Each column of sentence counts' F1 on the same resamples."""
    out: list[list[np.ndarray]] = [[] for _ in columns]
    for drawn in _draws(len(columns[0]), samples, seed):
        for scores, counts in zip(out, columns, strict=True):
            scores.append(f1_of_counts(drawn @ counts))
    return [np.concatenate(scores) for scores in out]


def _sentences(column: Any) -> list[list[str]]:
    # stats' functions hand rows over as a numpy object array: 2-D when all sentences are the
    # same length, so each row is made a list again
    return [list(tags) for tags in column]


class EntityF1:
    """Strict micro entity F1 as a stats.ResampledMetric: rows are sentences (lists of tags),
    so stats.bootstrap_ci and stats.paired_bootstrap (the gate's) can score it."""

    name = "entity_f1"

    def __call__(self, gold: Any, predicted: Any) -> float:
        counts = sentence_counts(_sentences(gold), _sentences(predicted))
        return float(f1_of_counts(counts.sum(axis=0)))

    def resampled(self, gold: Any, predicted: Any, indices: np.ndarray) -> np.ndarray:
        """F1 of each resample: row r of `indices` (resamples x sentences) picks its sentences."""
        counts = sentence_counts(_sentences(gold), _sentences(predicted))
        return f1_of_counts(_drawn(np.asarray(indices, dtype=np.int64)) @ counts)


def bootstrap_f1(
    gold: Sequence[Tags],
    predicted: Sequence[Tags],
    *,
    samples: int = 1000,
    level: float = 0.95,
    seed: int = 13,
) -> Interval:
    """Percentile bootstrap interval of strict micro entity F1 over resamples of sentences."""
    counts = sentence_counts(gold, predicted)
    if len(counts) == 0:
        raise ValueError("bootstrap_f1 needs at least one sentence")
    (values,) = _resampled_f1([counts], samples=samples, seed=seed)
    low, high = _percentiles(values, level)
    return Interval(
        metric=EntityF1.name, value=float(f1_of_counts(counts.sum(axis=0))), low=low, high=high,
        level=level, samples=samples,
    )  # fmt: skip


def paired(
    gold: Sequence[Tags],
    a: Sequence[Tags],
    b: Sequence[Tags],
    *,
    samples: int = 1000,
    level: float = 0.95,
    seed: int = 13,
) -> tuple[PairedTest, Interval]:
    """Is model B's entity F1 better than model A's on the same sentences? Resamples sentences
    once for both. Returns stats' PairedTest (difference = b - a; one-sided p: the share of
    resamples where B does not beat A, +1-corrected) and the percentile interval of b - a."""
    counts_a, counts_b = sentence_counts(gold, a), sentence_counts(gold, b)
    if len(counts_a) == 0:
        raise ValueError("paired needs at least one sentence")
    scores_a, scores_b = _resampled_f1([counts_a, counts_b], samples=samples, seed=seed)
    f1_a = float(f1_of_counts(counts_a.sum(axis=0)))
    f1_b = float(f1_of_counts(counts_b.sum(axis=0)))
    differences = scores_b - scores_a
    not_better = int((differences <= _TIE).sum())
    low, high = _percentiles(differences, level)
    test = PairedTest(
        method="bootstrap", a=f1_a, b=f1_b, difference=f1_b - f1_a,
        p_value=(not_better + 1) / (samples + 1),
    )  # fmt: skip
    interval = Interval(
        metric=f"{EntityF1.name}_difference", value=f1_b - f1_a, low=low, high=high, level=level,
        samples=samples,
    )  # fmt: skip
    return test, interval


def _percentiles(values: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(values, [tail, 1.0 - tail])
    return float(low), float(high)
