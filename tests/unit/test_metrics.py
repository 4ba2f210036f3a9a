"""compute_metrics / compute_confusion against values worked out by hand."""

from __future__ import annotations

import pytest

from nlpflow.metrics import compute_confusion, compute_metrics

LABELS = ["a", "b", "c"]
Y_TRUE = ["a", "a", "a", "b", "b", "c"]
Y_PRED = ["a", "a", "b", "b", "a", "b"]  # "c" is never predicted


def test_compute_metrics_matches_hand_computed_values() -> None:
    m = compute_metrics(Y_TRUE, Y_PRED, LABELS)
    # correct: rows 0, 1, 3 -> 3 of 6
    assert m["accuracy"] == pytest.approx(3 / 6)

    # a: tp = 2 (rows 0, 1); fp = 1 (row 4, true b); fn = 1 (row 2, predicted b)
    #    P = 2/3, R = 2/3, F1 = 2/3
    a = m["per_class"]["a"]
    assert a["precision"] == pytest.approx(2 / 3)
    assert a["recall"] == pytest.approx(2 / 3)
    assert a["f1"] == pytest.approx(2 / 3)
    assert a["support"] == 3

    # b: tp = 1 (row 3); fp = 2 (row 2 true a, row 5 true c); fn = 1 (row 4, predicted a)
    #    P = 1/3, R = 1/2, F1 = 2 * (1/3 * 1/2) / (1/3 + 1/2) = (1/3) / (5/6) = 2/5
    b = m["per_class"]["b"]
    assert b["precision"] == pytest.approx(1 / 3)
    assert b["recall"] == pytest.approx(1 / 2)
    assert b["f1"] == pytest.approx(2 / 5)
    assert b["support"] == 2

    # c: tp = 0, fp = 0 (never predicted: precision 0/0 -> 0), fn = 1 -> R = 0, F1 = 0
    c = m["per_class"]["c"]
    assert c == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}

    # macro = plain mean over the three labels
    # P = (2/3 + 1/3 + 0) / 3 = 1/3
    # R = (2/3 + 1/2 + 0) / 3 = (7/6) / 3 = 7/18
    # F1 = mean of per-class F1 (not F1 of macro P/R) = (2/3 + 2/5 + 0) / 3 = (16/15) / 3 = 16/45
    assert m["macro_precision"] == pytest.approx(1 / 3)
    assert m["macro_recall"] == pytest.approx(7 / 18)
    assert m["macro_f1"] == pytest.approx(16 / 45)

    assert list(m["per_class"]) == LABELS
    assert all(type(v) is float for k, v in m.items() if k != "per_class")


def test_label_absent_from_predictions_gives_zero_precision_not_an_error() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # zero_division must be handled, not warned about
        m = compute_metrics(["x", "y", "y"], ["y", "y", "y"], ["x", "y"])
    # x: never predicted -> P = 0 (not NaN), R = 0/1 = 0
    assert m["per_class"]["x"]["precision"] == 0.0
    assert m["per_class"]["x"]["recall"] == 0.0
    # y: tp = 2, fp = 1 -> P = 2/3, R = 1, F1 = 2 * (2/3) / (5/3) = 4/5
    assert m["per_class"]["y"]["precision"] == pytest.approx(2 / 3)
    assert m["per_class"]["y"]["f1"] == pytest.approx(4 / 5)
    # macro P = (0 + 2/3) / 2 = 1/3; macro F1 = (0 + 4/5) / 2 = 2/5; accuracy = 2/3
    assert m["macro_precision"] == pytest.approx(1 / 3)
    assert m["macro_f1"] == pytest.approx(2 / 5)
    assert m["accuracy"] == pytest.approx(2 / 3)


def test_perfect_predictions_score_one() -> None:
    m = compute_metrics(["a", "b", "b"], ["a", "b", "b"], ["a", "b"])
    assert m["accuracy"] == 1.0
    assert m["macro_f1"] == 1.0
    assert m["per_class"]["b"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2}


def test_compute_confusion_rows_are_true_columns_are_predicted() -> None:
    # true a: predicted a, a, b -> [2, 1, 0]
    # true b: predicted b, a    -> [1, 1, 0]
    # true c: predicted b       -> [0, 1, 0]
    assert compute_confusion(Y_TRUE, Y_PRED, LABELS) == [[2, 1, 0], [1, 1, 0], [0, 1, 0]]


def test_compute_confusion_follows_the_given_label_order() -> None:
    # same data, labels reversed: rows and columns both in order c, b, a
    assert compute_confusion(Y_TRUE, Y_PRED, ["c", "b", "a"]) == [
        [0, 1, 0],
        [0, 1, 1],
        [0, 1, 2],
    ]


def test_compute_confusion_keeps_a_row_for_a_label_never_seen() -> None:
    matrix = compute_confusion(["a", "b"], ["a", "a"], ["a", "b", "z"])
    assert matrix == [[1, 0, 0], [1, 0, 0], [0, 0, 0]]
    assert all(type(v) is int for row in matrix for v in row)


def test_mcc_matches_a_hand_computed_binary_case() -> None:
    # tp = 1, fn = 1, tn = 2, fp = 0: (1*2 - 0*1) / sqrt((1+0)(1+1)(2+0)(2+1)) = 2 / sqrt(12)
    m = compute_metrics(["s", "s", "h", "h"], ["s", "h", "h", "h"], ["h", "s"])
    assert m["mcc"] == pytest.approx(2 / 12**0.5)
    assert compute_metrics(["s", "h"], ["s", "h"], ["h", "s"])["mcc"] == pytest.approx(1.0)
