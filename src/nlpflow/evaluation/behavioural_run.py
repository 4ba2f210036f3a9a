"""Running a behavioural suite: each test's cases, passed or failed, with a few failures kept.

run_behavioural(suite, predict=predict, labels=labels, test_texts=texts,
                test_predicted=predicted, seed=13)
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np

from nlpflow.evaluation.behavioural_suite import (
    BehaviouralReport,
    BehaviouralResult,
    BehaviouralSuite,
    DirectionalTest,
    InvarianceTest,
    MftTest,
    Predict,
    named_labels,
)
from nlpflow.evaluation.perturbations import perturb, transform

MAX_FAILURES = 5  # examples kept per test: enough to see the pattern, small enough to read


def run_behavioural(
    suite: BehaviouralSuite,
    *,
    predict: Predict,
    labels: Sequence[str],
    test_texts: Sequence[str],
    test_predicted: Sequence[str],
    seed: int,
) -> BehaviouralReport:
    """Run every test. `predict` maps raw texts to (labels, probabilities in `labels` order);
    `test_texts`/`test_predicted` are the test split's raw texts and their predictions, which
    `from_test` draws from."""
    results = []
    for test in suite.tests:
        absent = sorted({n for n in named_labels(test) if n not in labels})
        if absent:  # only the sample's file gets here (check_labels refuses the others)
            results.append(_not_run(test, absent))
            continue
        if isinstance(test, MftTest):
            results.append(_run_mft(test, predict))
            continue
        pool = _pool(test, test_texts, test_predicted, seed=seed)
        if isinstance(test, InvarianceTest):
            results.append(_run_invariance(test, pool, predict, seed=seed))
        else:
            results.append(_run_directional(test, pool, predict, labels=labels))
    cases, passed = sum(r.cases for r in results), sum(r.passed for r in results)
    return BehaviouralReport(
        pass_rate=passed / cases if cases else None, cases=cases, tests=results
    )


def _pool(
    test: InvarianceTest | DirectionalTest,
    test_texts: Sequence[str],
    test_predicted: Sequence[str],
    *,
    seed: int,
) -> list[str]:
    """The texts a test may use, in the order it uses them: the file's, or the test rows in an
    order seeded by evaluate.seed and the test's name (tests do not all draw the same rows)."""
    if test.texts is not None:
        return list(test.texts)
    wanted = test.predicted_as
    if isinstance(test, DirectionalTest) and test.expect == "flip" and wanted is None:
        wanted = test.label
    rows = [i for i, p in enumerate(test_predicted) if wanted is None or p == wanted]
    random.Random(f"{seed}\x00{test.name}").shuffle(rows)
    return [str(test_texts[i]) for i in rows]


def _result(
    test: InvarianceTest | DirectionalTest | MftTest,
    verdicts: list[bool],
    failures: list[dict[str, Any]],
    *,
    skipped: int,
) -> BehaviouralResult:
    cases, passed = len(verdicts), sum(verdicts)
    return BehaviouralResult(
        name=test.name, type=test.type, cases=cases, passed=passed, skipped=skipped,
        pass_rate=passed / cases if cases else None, failures=failures[:MAX_FAILURES],
    )  # fmt: skip


def _not_run(
    test: InvarianceTest | DirectionalTest | MftTest, absent: list[str]
) -> BehaviouralResult:
    return BehaviouralResult(
        name=test.name, type=test.type, cases=0, passed=0, skipped=0, pass_rate=None,
        failures=[], not_run=f"names label(s) {', '.join(absent)}, which the model does not predict",
    )  # fmt: skip


def _run_invariance(
    test: InvarianceTest, pool: list[str], predict: Predict, *, seed: int
) -> BehaviouralResult:
    """Pass: the prediction does not change. A text the perturbation leaves unchanged (no name
    to swap) is no case; from_test keeps drawing until it has N cases or runs out of rows."""
    limit = test.from_test or len(pool)
    pairs: list[tuple[str, str]] = []
    skipped = 0
    for text in pool:
        if len(pairs) == limit:
            break
        changed = perturb(test, text, seed=seed)
        if changed == text:
            skipped += 1
        else:
            pairs.append((text, changed))
    before, _, after, _ = _predict_pairs(predict, pairs)
    verdicts = [a == b for a, b in zip(before, after, strict=True)]
    failures = [
        {"original": o, "perturbed": c, "predicted_original": a, "predicted_perturbed": b}
        for (o, c), a, b, ok in zip(pairs, before, after, verdicts, strict=True)
        if not ok
    ]
    return _result(test, verdicts, failures, skipped=skipped)


def _predict_pairs(
    predict: Predict, pairs: list[tuple[str, str]]
) -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    """Predictions of the originals and of the changed texts, in one batch."""
    if not pairs:
        return [], np.zeros((0, 0)), [], np.zeros((0, 0))
    predicted, proba = predict([a for a, _ in pairs] + [b for _, b in pairs])
    n = len(pairs)
    return list(predicted[:n]), proba[:n], list(predicted[n:]), proba[n:]


def _run_directional(
    test: DirectionalTest, pool: list[str], predict: Predict, *, labels: Sequence[str]
) -> BehaviouralResult:
    """Pass: the label's probability moves the expected way (strictly), or for flip, a text
    predicted as the label is not any more. Under flip, texts not predicted as the label
    cannot flip away from it: they are skipped, not failed."""
    limit = test.from_test or len(pool)
    pairs = [(text, transform(test, text)) for text in pool[:limit]]
    before, p_before, after, p_after = _predict_pairs(predict, pairs)
    column = list(labels).index(test.label)
    verdicts, failures, skipped = [], [], 0
    for i, (original, changed) in enumerate(pairs):
        if test.expect == "flip" and before[i] != test.label:
            skipped += 1
            continue
        a, b = float(p_before[i, column]), float(p_after[i, column])
        ok = {"increase": b > a, "decrease": b < a, "flip": after[i] != test.label}[test.expect]
        verdicts.append(ok)
        if not ok:
            failures.append({
                "original": original, "perturbed": changed,
                "predicted_original": before[i], "predicted_perturbed": after[i],
                f"p_{test.label}_original": a, f"p_{test.label}_perturbed": b,
            })  # fmt: skip
    return _result(test, verdicts, failures, skipped=skipped)


def _run_mft(test: MftTest, predict: Predict) -> BehaviouralResult:
    """Pass: the canonical text gets its expected label."""
    predicted, proba = predict([e.text for e in test.examples])
    verdicts = [p == e.label for p, e in zip(predicted, test.examples, strict=True)]
    failures = [
        {"text": e.text, "expected": e.label, "predicted": p, "confidence": float(proba[i].max())}
        for i, (e, p, ok) in enumerate(zip(test.examples, predicted, verdicts, strict=True))
        if not ok
    ]
    return _result(test, verdicts, failures, skipped=0)
