"""Pure classification metrics (scikit-learn underneath, numpy where called in a loop).

- `compute_metrics`: accuracy, MCC, precision/recall/F1 (macro, micro, weighted, per class).
- `metric_function`: one of those as a fast (gold, predicted) -> float, for the bootstrap.
- `compute_ranking`, `compute_curves`: ROC and precision-recall, binary or one-vs-rest.
- `compute_calibration`: expected calibration error and the reliability bins.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, get_args

import numpy as np

from nlpflow.config.sections.evaluate import ClassMetric

# The metrics a single number can be chosen from (EvaluateParams.main_metric lists them).
SCALAR_METRICS: tuple[str, ...] = get_args(ClassMetric)


def compute_metrics(
    y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]
) -> dict[str, Any]:
    """accuracy, Matthews correlation, precision/recall/F1 macro, micro and weighted, and the
    same per class. Labels never predicted score precision 0, not NaN."""
    from sklearn.metrics import accuracy_score, matthews_corrcoef, precision_recall_fscore_support

    labels = list(labels)
    p, r, f, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=None, zero_division=0
    )
    scores: dict[str, Any] = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "mcc": float(matthews_corrcoef(y_true, y_pred)),
    }
    for average in ("macro", "micro", "weighted"):
        ap, ar, af, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=average, zero_division=0
        )
        scores |= {
            f"{average}_precision": float(ap),
            f"{average}_recall": float(ar),
            f"{average}_f1": float(af),
        }
    scores["per_class"] = {
        label: {
            "precision": float(p[i]),
            "recall": float(r[i]),
            "f1": float(f[i]),
            "support": int(support[i]),
        }
        for i, label in enumerate(labels)
    }
    return scores


def compute_confusion(
    y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]
) -> list[list[int]]:
    from sklearn.metrics import confusion_matrix

    return confusion_matrix(y_true, y_pred, labels=list(labels)).tolist()


def metric_function(name: str, labels: Sequence[str]) -> ConfusionMetric:
    """`name` (one of SCALAR_METRICS) as a fast function of (gold, predicted) that can also
    score many bootstrap resamples at once (ConfusionMetric.resampled)."""
    return ConfusionMetric(name, labels)


class ConfusionMetric:
    """One of SCALAR_METRICS computed from confusion counts with numpy. The bootstrap scores
    every resample: on 1,000 rows of 4 labels scikit-learn's f1_score took 7.7 ms a call (its
    input checks; 8 s per 1,000 resamples), one call of this 0.3 ms, and `resampled` scores a
    whole batch of resamples from one bincount (2-core machine, measured).
    Equal to compute_metrics (tests check it): precision, recall and F1 average over `labels`;
    any other label seen is a class of its own that is counted (accuracy, MCC) but never
    averaged over, as scikit-learn's `labels=` does."""

    def __init__(self, name: str, labels: Sequence[str]) -> None:
        if name not in SCALAR_METRICS:
            raise ValueError(f"unknown metric {name!r}; choose one of {', '.join(SCALAR_METRICS)}")
        self.name = name
        self.labels = list(labels)

    def __call__(self, gold: Sequence[str], predicted: Sequence[str]) -> float:
        return float(self.resampled(gold, predicted, np.arange(len(gold))[None, :])[0])

    def resampled(self, gold: Sequence[str], predicted: Sequence[str], indices: Any) -> Any:
        """The metric of each resample: row r of `indices` (resamples x rows, integers) picks
        the rows of resample r. One bincount gives every resample's confusion counts."""
        g, p, classes = self._codes(gold, predicted)
        picks = np.asarray(indices, dtype=np.int64)
        cells = (g * classes + p)[picks] + (np.arange(len(picks)) * classes**2)[:, None]
        counts = np.bincount(cells.ravel(), minlength=len(picks) * classes**2)
        matrices = counts.reshape(len(picks), classes, classes)
        return score_confusions(matrices, name=self.name, scored=len(self.labels))

    def _codes(self, gold: Sequence[str], predicted: Sequence[str]) -> tuple[Any, Any, int]:
        """Class numbers: `labels` first, then every other label in the order first seen."""
        index = {label: i for i, label in enumerate(self.labels)}
        g, p = (
            np.fromiter((index.setdefault(x, len(index)) for x in column), dtype=np.int64,
                        count=len(column))
            for column in (gold, predicted)
        )  # fmt: skip
        if len(g) != len(p):
            raise ValueError(f"{len(g)} gold labels against {len(p)} predicted")
        return g, p, len(index)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros(np.shape(num), dtype=float), where=den > 0)


def score_confusion(counts: np.ndarray, *, name: str, scored: int) -> float:
    """One metric from a confusion matrix (rows true, columns predicted); the first `scored`
    classes are the labels precision, recall and F1 average over."""
    return float(score_confusions(np.asarray(counts)[None], name=name, scored=scored)[0])


def score_confusions(counts: np.ndarray, *, name: str, scored: int) -> np.ndarray:
    """score_confusion of each matrix in `counts` (matrices x true x predicted), at once."""
    c = np.asarray(counts, dtype=float)  # floats: MCC squares the row count
    total = c.sum(axis=(1, 2))
    correct = np.trace(c, axis1=1, axis2=2)
    true, pred = c.sum(axis=2), c.sum(axis=1)
    if name == "accuracy":
        return _ratio(correct, total)
    if name == "mcc":  # the multiclass form (Gorodkin 2004), as scikit-learn computes it
        cov_tp = correct * total - (true * pred).sum(axis=1)
        den = np.sqrt(
            (total**2 - (true * true).sum(axis=1)) * (total**2 - (pred * pred).sum(axis=1))
        )
        return _ratio(cov_tp, den)
    tp = np.diagonal(c, axis1=1, axis2=2)[:, :scored]
    true, pred = true[:, :scored], pred[:, :scored]
    if name == "micro_f1":
        return _ratio(2 * tp.sum(axis=1), true.sum(axis=1) + pred.sum(axis=1))
    f1 = _ratio(2 * tp, true + pred)
    if name == "macro_f1":
        return f1.mean(axis=1) if scored else np.zeros(len(c))
    return _ratio((f1 * true).sum(axis=1), true.sum(axis=1))  # weighted_f1


def _one_vs_rest(gold: Sequence[str], labels: Sequence[str]) -> list[int]:
    """Columns of the classes scored one-vs-rest: binary tasks score the positive (second)
    label alone; a class absent from the test rows (or present in all) has no curve."""
    y = np.asarray(gold, dtype=object)
    columns = [1] if len(labels) == 2 else list(range(len(labels)))
    return [i for i in columns if 0 < int((y == labels[i]).sum()) < len(y)]


def compute_ranking(
    gold: Sequence[str], proba: np.ndarray, labels: Sequence[str]
) -> dict[str, float | None]:
    """ROC AUC and average precision: of the positive (second) label for two labels, else the
    macro mean one-vs-rest over the classes that have a curve; None when none has."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    y = np.asarray(gold, dtype=object)
    columns = _one_vs_rest(gold, labels)
    if not columns:
        return {"roc_auc": None, "average_precision": None}
    auc = [roc_auc_score(y == labels[i], proba[:, i]) for i in columns]
    ap = [average_precision_score(y == labels[i], proba[:, i]) for i in columns]
    return {"roc_auc": float(np.mean(auc)), "average_precision": float(np.mean(ap))}


def compute_curves(
    gold: Sequence[str], proba: np.ndarray, labels: Sequence[str]
) -> dict[str, dict[str, list[float]]]:
    """Per scored label (see compute_ranking): ROC points (fpr, tpr) and precision-recall
    points (recall, precision), with the points that change no corner dropped."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    y = np.asarray(gold, dtype=object)
    curves: dict[str, dict[str, list[float]]] = {}
    for i in _one_vs_rest(gold, labels):
        fpr, tpr, _ = roc_curve(y == labels[i], proba[:, i])
        precision, recall, _ = precision_recall_curve(
            y == labels[i], proba[:, i], drop_intermediate=True
        )
        curves[labels[i]] = {
            "fpr": fpr.tolist(), "tpr": tpr.tolist(),
            "recall": recall.tolist(), "precision": precision.tolist(),
        }  # fmt: skip
    return curves


def compute_calibration(
    correct: Sequence[bool], confidence: Sequence[float], *, bins: int
) -> tuple[float, list[dict[str, float]]]:
    """Expected calibration error (Guo et al. 2017) over `bins` equal-width bins of confidence,
    each bin (lower, upper]: sum over bins of (rows in bin / rows) * |accuracy - confidence|.
    Returns it and the non-empty bins: bin (index), confidence and accuracy (means), count."""
    hit = np.asarray(correct, dtype=float)
    conf = np.asarray(confidence, dtype=float)
    if len(hit) == 0:
        return 0.0, []
    # edges k/bins, not linspace: linspace's 0.30000000000000004 would put 0.3 in the wrong bin
    which = np.searchsorted(np.arange(1, bins) / bins, conf, side="left")
    table, ece = [], 0.0
    for b in range(bins):
        member = which == b
        count = int(member.sum())
        if count == 0:
            continue
        acc, mean_conf = float(hit[member].mean()), float(conf[member].mean())
        ece += count / len(hit) * abs(acc - mean_conf)
        table.append({"bin": b, "confidence": mean_conf, "accuracy": acc, "count": count})
    return float(ece), table
