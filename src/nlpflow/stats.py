"""Uncertainty of test-set metrics: bootstrap intervals and paired tests of two models.

Pure functions over label sequences; `metric` is any function (gold, predicted) -> float.
scipy supplies the exact binomial tail; the resampling is numpy, vectorised over samples where
the metric allows it (accuracy), else one call per resample.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel

Metric = Callable[[Any, Any], float]  # (gold, predicted) as sequences or arrays


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


def _indices(rows: int, samples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, rows, size=(samples, rows))


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
    values = np.array([metric(y[idx], p[idx]) for idx in _indices(len(y), samples, seed)])
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
    B does not beat A (with the +1 correction, so it is never exactly 0)."""
    y, pa, pb = (np.asarray(x, dtype=object) for x in (gold, a, b))
    not_better = 0
    for idx in _indices(len(y), samples, seed):
        if metric(y[idx], pb[idx]) - metric(y[idx], pa[idx]) <= 0:
            not_better += 1
    score_a, score_b = float(metric(y, pa)), float(metric(y, pb))
    return PairedTest(
        method="bootstrap", a=score_a, b=score_b, difference=score_b - score_a,
        p_value=(not_better + 1) / (samples + 1),
    )  # fmt: skip
