"""The bootstrap's fast path: every resample scored from one bincount, equal to scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

import nlpflow.evaluation.metrics
import nlpflow.evaluation.stats
from nlpflow.config.params import Params
from nlpflow.evaluation.metrics import SCALAR_METRICS, metric_function
from nlpflow.evaluation.stats import bootstrap_ci, paired_bootstrap
from nlpflow.release.gate import ChallengerEvidence, ChampionEvidence, decide

LABELS = ["neg", "neu", "pos", "rare"]


def _sklearn(name: str, labels: list[str]):  # type: ignore[no-untyped-def]
    """The slow reference: scikit-learn's own functions, one call per resample."""
    if name == "accuracy":
        return lambda y, p: float(accuracy_score(y, p))
    if name == "mcc":
        return lambda y, p: float(matthews_corrcoef(y, p))
    average = name.removesuffix("_f1")
    return lambda y, p: float(f1_score(y, p, labels=labels, average=average, zero_division=0))


def _slow_paired_p(gold, a, b, *, metric, samples: int, seed: int) -> float:  # type: ignore[no-untyped-def]
    """The paired bootstrap as it was: a loop over resamples, the metric called twice each."""
    y, pa, pb = (np.asarray(x, dtype=object) for x in (gold, a, b))
    picks = np.random.default_rng(seed).integers(0, len(y), size=(samples, len(y)))
    not_better = sum(metric(y[i], pb[i]) - metric(y[i], pa[i]) <= 1e-12 for i in picks)
    return (not_better + 1) / (samples + 1)


def _rows(seed: int, n: int) -> tuple[list[str], list[str], list[str]]:
    rng = np.random.default_rng(seed)
    gold = rng.choice(LABELS, size=n, p=[0.45, 0.3, 0.2, 0.05]).tolist()
    # two models right about 70% and 75% of the time; A sometimes says a label gold never has
    a = [g if rng.random() < 0.70 else str(rng.choice([*LABELS[:3], "other"])) for g in gold]
    b = [g if rng.random() < 0.75 else str(rng.choice(LABELS[:3])) for g in gold]
    return gold, a, b


@pytest.mark.parametrize("name", SCALAR_METRICS)
def test_paired_bootstrap_equals_a_slow_sklearn_reference(name: str) -> None:
    gold, a, b = _rows(3, 60)
    labels = sorted(set(gold))
    fast = paired_bootstrap(gold, a, b, metric=metric_function(name, labels), samples=120, seed=5)
    slow = _slow_paired_p(gold, a, b, metric=_sklearn(name, labels), samples=120, seed=5)
    assert fast.p_value == slow
    assert 1 / 121 < fast.p_value < 1.0  # a test that decides something, not a corner case
    assert fast.a == pytest.approx(_sklearn(name, labels)(gold, a), abs=1e-12)
    assert fast.b == pytest.approx(_sklearn(name, labels)(gold, b), abs=1e-12)


def test_bootstrap_interval_equals_a_slow_sklearn_reference() -> None:
    gold, a, _ = _rows(4, 50)
    labels = sorted(set(gold))
    fast = bootstrap_ci(gold, a, metric=metric_function("macro_f1", labels), name="macro_f1",
                        samples=200, seed=9)  # fmt: skip
    reference = _sklearn("macro_f1", labels)
    y, p = np.asarray(gold, dtype=object), np.asarray(a, dtype=object)
    picks = np.random.default_rng(9).integers(0, 50, size=(200, 50))
    low, high = np.quantile([reference(y[i], p[i]) for i in picks], [0.025, 0.975])
    assert (fast.low, fast.high) == (pytest.approx(low, abs=1e-12), pytest.approx(high, abs=1e-12))


def test_batches_of_resamples_give_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    gold, a, b = _rows(5, 80)
    metric = metric_function("weighted_f1", LABELS)
    whole = paired_bootstrap(gold, a, b, metric=metric, samples=250, seed=2)
    monkeypatch.setattr(nlpflow.evaluation.stats, "_BATCH_CELLS", 80 * 7)  # 7 resamples a batch
    assert paired_bootstrap(gold, a, b, metric=metric, samples=250, seed=2) == whole
    # a plain function (no `resampled`) walks the same resamples one by one
    plain = paired_bootstrap(gold, a, b, metric=lambda y, p: metric(y, p), samples=250, seed=2)
    assert plain.p_value == whole.p_value


def test_labels_outside_the_scored_set_each_count_as_their_own_class() -> None:
    # "x" and "y" are two different wrong answers: merged into one class, MCC would be 0.4364
    gold = ["a", "b", "a", "b", "a", "b"]
    predicted = ["a", "b", "x", "y", "a", "a"]
    assert metric_function("mcc", ["a", "b"])(gold, predicted) == pytest.approx(
        matthews_corrcoef(gold, predicted)
    )
    # and accuracy: gold "x" predicted "y" is wrong, though neither is a scored label
    assert metric_function("accuracy", ["a"])(["x", "a"], ["y", "a"]) == 0.5


def test_the_gates_bootstrap_uses_the_fast_metric(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gate once recomputed scikit-learn's whole report per resample (a unit test took
    208 s); compute_metrics must not be called at all now."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the gate's bootstrap called compute_metrics")

    monkeypatch.setattr(nlpflow.evaluation.metrics, "compute_metrics", refuse)
    gold, a, b = _rows(6, 1000)
    labels = sorted(set(gold))
    score = metric_function("macro_f1", labels)
    params = Params.model_validate({
        "evaluate": {"main_metric": "macro_f1", "bootstrap_samples": 1000},
        "register": {"gate": {"significance": "bootstrap"}},
    })  # fmt: skip
    challenger = ChallengerEvidence(
        family="transformer", gold=gold, predicted=b, score=score(gold, b), slices={},
        behavioural_pass_rate=None, baseline_score=None,
    )  # fmt: skip
    champion = ChampionEvidence(version=1, predicted=a, slices={}, score=score(gold, a))
    decision = decide(challenger, champion, params)
    expected = paired_bootstrap(gold, a, b, metric=score, samples=1000, seed=13)
    assert decision.values["p_value"] == expected.p_value
