"""Uncertainty of test-set metrics: bootstrap intervals and paired tests of two models.

Pure functions over label sequences; `metric` is any function (gold, predicted) -> float.
scipy supplies the exact binomial tail. The resampling is numpy: a metric with a `resampled`
method (nlpflow.evaluation.metrics.metric_function's) scores a batch of resamples in one call, any other
is called once per resample.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel

Metric = Callable[[Any, Any], float]  # (gold, predicted) as sequences or arrays
# Index arrays of at most this many cells per batch of resamples (64 MB of int64): 100,000
# resamples of 10,000 rows at once would take 8 GB.
_BATCH_CELLS = 8_000_000
# Two scores closer than this are a tie: the same metric computed over permuted classes can
# differ in the last bit, and a tie must never count as "better".
_TIE = 1e-12


@runtime_checkable
class ResampledMetric(Protocol):
    """A metric that also scores many resamples at once: row r of `indices` (resamples x rows)
    holds the rows of resample r; returns one value per resample."""

    def __call__(self, gold: Any, predicted: Any) -> float: ...

    def resampled(self, gold: Any, predicted: Any, indices: np.ndarray) -> np.ndarray: ...


class Interval(BaseModel):
    metric: str
    value: float
    low: float
    high: float
    level: float
    samples: int


class PairedTest(BaseModel):
    """Is model B better than model A on the same rows? (one-sided: B > A)"""

    method: str
    a: float  # A's metric
    b: float  # B's metric
    difference: float  # b - a
    p_value: float
    b_only_right: int | None = None  # McNemar: rows B gets right and A wrong
    a_only_right: int | None = None


def _index_batches(rows: int, samples: int, seed: int) -> Iterator[np.ndarray]:
    """The resamples' row indices, in batches of rows. One generator draws them in order, so
    the batches joined are exactly `integers(0, rows, size=(samples, rows))` of that seed."""
    rng = np.random.default_rng(seed)
    step = max(1, _BATCH_CELLS // max(rows, 1))
    for start in range(0, samples, step):
        yield rng.integers(0, rows, size=(min(step, samples - start), rows))


def _resampled_scores(
    metric: Metric, gold: np.ndarray, columns: Sequence[np.ndarray], *, samples: int, seed: int
) -> list[np.ndarray]:
    """The metric of each column of predictions on each resample (the same resamples for
    every column: paired)."""
    out: list[list[np.ndarray]] = [[] for _ in columns]
    for batch in _index_batches(len(gold), samples, seed):
        for scores, predicted in zip(out, columns, strict=True):
            if isinstance(metric, ResampledMetric):
                scores.append(np.asarray(metric.resampled(gold, predicted, batch), dtype=float))
            else:
                scores.append(np.array([metric(gold[i], predicted[i]) for i in batch]))
    return [np.concatenate(scores) for scores in out]


def bootstrap_ci(
    gold: Sequence[str],
    predicted: Sequence[str],
    *,
    metric: Metric,
    name: str,
    samples: int = 1000,
    level: float = 0.95,
    seed: int = 13,
) -> Interval:
    """Percentile bootstrap interval of `metric` over resamples of the rows."""
    y, p = np.asarray(gold, dtype=object), np.asarray(predicted, dtype=object)
    if len(y) == 0:
        raise ValueError("bootstrap_ci needs at least one row")
    (values,) = _resampled_scores(metric, y, [p], samples=samples, seed=seed)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(values, [tail, 1.0 - tail])
    return Interval(
        metric=name, value=float(metric(y, p)), low=float(low), high=float(high), level=level,
        samples=samples,
    )  # fmt: skip


def mcnemar(gold: Sequence[str], a: Sequence[str], b: Sequence[str]) -> PairedTest:
    """McNemar's exact test, one-sided: among the rows where exactly one model is right, is B
    right more often than chance (p = 1/2) would make it?"""
    from scipy.stats import binomtest

    y, pa, pb = (np.asarray(x, dtype=object) for x in (gold, a, b))
    right_a, right_b = pa == y, pb == y
    b_only, a_only = int((right_b & ~right_a).sum()), int((right_a & ~right_b).sum())
    discordant = a_only + b_only
    p_value = (
        1.0 if discordant == 0 else binomtest(b_only, discordant, 0.5, alternative="greater").pvalue
    )
    acc_a, acc_b = float(right_a.mean()), float(right_b.mean())
    return PairedTest(
        method="mcnemar", a=acc_a, b=acc_b, difference=acc_b - acc_a, p_value=float(p_value),
        b_only_right=b_only, a_only_right=a_only,
    )  # fmt: skip


def paired_bootstrap(
    gold: Sequence[str],
    a: Sequence[str],
    b: Sequence[str],
    *,
    metric: Metric,
    samples: int = 1000,
    seed: int = 13,
) -> PairedTest:
    """Paired bootstrap: resample rows once for both models; p is the share of resamples where
    B does not beat A (with the +1 correction, so it is never exactly 0). A difference within
    float noise (_TIE) is a tie, and a tie is not better."""
    y, pa, pb = (np.asarray(x, dtype=object) for x in (gold, a, b))
    if len(y) == 0:
        raise ValueError("paired_bootstrap needs at least one row")
    scores_a, scores_b = _resampled_scores(metric, y, [pa, pb], samples=samples, seed=seed)
    not_better = int((scores_b - scores_a <= _TIE).sum())
    score_a, score_b = float(metric(y, pa)), float(metric(y, pb))
    return PairedTest(
        method="bootstrap", a=score_a, b=score_b, difference=score_b - score_a,
        p_value=(not_better + 1) / (samples + 1),
    )  # fmt: skip
