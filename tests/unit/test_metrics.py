"""Classification metrics, ROC/PR, calibration: against values worked out by hand or by sklearn."""

from __future__ import annotations

import numpy as np
import pytest

from nlpflow.evaluation.metrics import (
    SCALAR_METRICS,
    compute_calibration,
    compute_confusion,
    compute_curves,
    compute_metrics,
    compute_ranking,
    metric_function,
)

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


# --- micro / weighted averages ----------------------------------------------------------------


def test_micro_and_weighted_averages_match_hand_computed_values() -> None:
    m = compute_metrics(Y_TRUE, Y_PRED, LABELS)
    # every row's gold and predicted label is in LABELS: micro P = R = F1 = accuracy = 3/6
    assert m["micro_precision"] == m["micro_recall"] == m["micro_f1"] == pytest.approx(1 / 2)
    # weighted by support a=3, b=2, c=1 (per-class values as in the test above)
    # P = (3 * 2/3 + 2 * 1/3 + 1 * 0) / 6 = (8/3) / 6 = 4/9
    # R = (3 * 2/3 + 2 * 1/2 + 0) / 6 = 3/6 = 1/2
    # F1 = (3 * 2/3 + 2 * 2/5 + 0) / 6 = (14/5) / 6 = 7/15
    assert m["weighted_precision"] == pytest.approx(4 / 9)
    assert m["weighted_recall"] == pytest.approx(1 / 2)
    assert m["weighted_f1"] == pytest.approx(7 / 15)


def test_micro_average_over_a_subset_of_labels_differs_from_accuracy() -> None:
    # "z" is not a scored label: tp over {a, b} = 2 (rows 0, 2); predicted in {a, b} = 4;
    # gold in {a, b} = 3 -> P = 2/4, R = 2/3, F1 = 2 * 2 / (4 + 3) = 4/7; accuracy = 2/4
    m = compute_metrics(["a", "a", "b", "z"], ["a", "b", "b", "a"], ["a", "b"])
    assert m["micro_precision"] == pytest.approx(1 / 2)
    assert m["micro_recall"] == pytest.approx(2 / 3)
    assert m["micro_f1"] == pytest.approx(4 / 7)
    assert m["accuracy"] == pytest.approx(1 / 2)
    assert metric_function("micro_f1", ["a", "b"])(["a", "a", "b", "z"], ["a", "b", "b", "a"]) == (
        pytest.approx(4 / 7)
    )


# --- metric_function: the bootstrap's fast path -----------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metric_function_equals_compute_metrics_on_random_labels(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = ["neg", "neu", "pos", "rare"]
    # skewed: "rare" is never predicted and gold at most a few times
    gold = rng.choice(labels, size=200, p=[0.5, 0.3, 0.19, 0.01]).tolist()
    predicted = rng.choice(labels[:3], size=200).tolist()
    expected = compute_metrics(gold, predicted, labels)
    for name in SCALAR_METRICS:
        assert metric_function(name, labels)(gold, predicted) == pytest.approx(expected[name]), name


def test_metric_function_with_an_unscored_gold_label_matches_sklearn() -> None:
    gold, predicted = ["a", "b", "x", "x", "a"], ["a", "a", "a", "b", "b"]
    expected = compute_metrics(gold, predicted, ["a", "b"])
    for name in SCALAR_METRICS:
        assert metric_function(name, ["a", "b"])(gold, predicted) == pytest.approx(expected[name])


def test_metric_function_rejects_an_unknown_metric() -> None:
    with pytest.raises(ValueError, match="macro_f1"):
        metric_function("f2", ["a"])


# --- ROC / PR ---------------------------------------------------------------------------------


def test_binary_ranking_scores_the_second_label_by_hand() -> None:
    labels = ["neg", "pos"]
    gold = ["neg", "pos", "neg", "pos"]
    p_pos = np.array([0.1, 0.3, 0.35, 0.8])
    proba = np.column_stack([1 - p_pos, p_pos])
    scores = compute_ranking(gold, proba, labels)
    # positive/negative pairs ranked right: (0.3 > 0.1), (0.8 > 0.1), (0.8 > 0.35); wrong:
    # (0.3 < 0.35) -> AUC 3/4
    assert scores["roc_auc"] == pytest.approx(3 / 4)
    # ranked: 0.8 pos (precision 1/1 at recall 1/2), 0.35 neg, 0.3 pos (2/3 at recall 1)
    # AP = 1/2 * 1 + 1/2 * 2/3 = 5/6
    assert scores["average_precision"] == pytest.approx(5 / 6)
    curves = compute_curves(gold, proba, labels)
    assert list(curves) == ["pos"]  # binary: the positive label only
    assert (curves["pos"]["fpr"][0], curves["pos"]["tpr"][0]) == (0.0, 0.0)
    assert (curves["pos"]["fpr"][-1], curves["pos"]["tpr"][-1]) == (1.0, 1.0)


def test_multiclass_ranking_is_the_macro_one_vs_rest_of_sklearn() -> None:
    from sklearn.metrics import average_precision_score, roc_auc_score
    from sklearn.preprocessing import label_binarize

    rng = np.random.default_rng(7)
    labels = ["a", "b", "c"]
    gold = rng.choice(labels, size=120).tolist()
    proba = rng.dirichlet([1.0, 1.0, 1.0], size=120)
    proba[np.arange(120), [labels.index(g) for g in gold]] += 0.3  # informative, not perfect
    proba /= proba.sum(axis=1, keepdims=True)
    scores = compute_ranking(gold, proba, labels)
    assert scores["roc_auc"] == pytest.approx(
        roc_auc_score(gold, proba, multi_class="ovr", average="macro", labels=labels)
    )
    assert scores["average_precision"] == pytest.approx(
        average_precision_score(label_binarize(gold, classes=labels), proba, average="macro")
    )
    assert 0.6 < scores["roc_auc"] < 1.0


def test_a_class_absent_from_the_test_rows_has_no_curve_and_is_left_out_of_the_mean() -> None:
    from sklearn.metrics import roc_auc_score

    gold = ["a", "b", "a", "b"]
    proba = np.array([[0.7, 0.2, 0.1], [0.4, 0.5, 0.1], [0.3, 0.6, 0.1], [0.2, 0.2, 0.6]])
    scores = compute_ranking(gold, proba, ["a", "b", "c"])
    both = [roc_auc_score([g == k for g in gold], proba[:, i]) for i, k in enumerate("ab")]
    assert scores["roc_auc"] == pytest.approx(np.mean(both))
    assert set(compute_curves(gold, proba, ["a", "b", "c"])) == {"a", "b"}
    assert compute_ranking(["a", "a"], proba[:2], ["a", "b", "c"])["roc_auc"] is None


# --- calibration ------------------------------------------------------------------------------


def test_ece_matches_a_hand_computed_example() -> None:
    confidence = [0.95, 0.95, 0.65, 0.65, 0.65, 0.25]
    correct = [True, False, True, True, False, False]
    ece, table = compute_calibration(correct, confidence, bins=10)
    # bin 9 (0.9, 1.0]: 2 rows, accuracy 1/2, confidence 0.95 -> 2/6 * 0.45   = 0.15
    # bin 6 (0.6, 0.7]: 3 rows, accuracy 2/3, confidence 0.65 -> 3/6 * 1/60   = 1/120
    # bin 2 (0.2, 0.3]: 1 row,  accuracy 0,   confidence 0.25 -> 1/6 * 0.25   = 1/24
    # ECE = 0.15 + 1/120 + 1/24 = 0.2
    assert ece == pytest.approx(0.2)
    assert [(row["bin"], row["count"]) for row in table] == [(2, 1), (6, 3), (9, 2)]
    assert table[1]["accuracy"] == pytest.approx(2 / 3)
    assert table[1]["confidence"] == pytest.approx(0.65)


def test_bins_are_closed_on_the_right_and_a_calibrated_model_scores_zero() -> None:
    _, table = compute_calibration([True, True, False], [0.3, 1.0, 0.0], bins=10)
    # 0.3 belongs to (0.2, 0.3], 1.0 to the last bin, 0.0 to the first
    assert [row["bin"] for row in table] == [0, 2, 9]
    # four rows at 0.75 confidence, three right: accuracy equals confidence
    ece, _ = compute_calibration([True, True, True, False], [0.75] * 4, bins=5)
    assert ece == pytest.approx(0.0)
