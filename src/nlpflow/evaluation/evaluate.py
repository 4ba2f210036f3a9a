"""evaluate: score the test split in depth.

    nlpflow stage evaluate

Writes
- `reports/metrics.json` (DVC metrics): accuracy, MCC, precision/recall/F1 macro, micro,
  weighted and per class, ROC AUC and average precision, ECE, a bootstrap interval of the main
  metric (`ci`), the behavioural pass rate and the tfidf_logreg baseline's score;
- `reports/plots/` (DVC plots): confusion.csv, roc/<label>.csv, pr/<label>.csv,
  calibration.csv, and confusion_matrix.png, roc.png, pr.png, reliability.png;
- `reports/evaluation/`: predictions.parquet, slices.json, behavioural.json,
  worst_errors.csv/.md, baseline.json, and train_text_hashes.txt.gz: what the model trained
  on (text_key of each train and validation text), so a later gate can tell which of its own
  test rows this model saw in training.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel

from nlpflow.config.nlp_tasks import DEFAULT_NLP_TASK
from nlpflow.config.params import EvaluateParams
from nlpflow.data.gather import load_splits
from nlpflow.errors import StageInputError
from nlpflow.evaluation.metrics import compute_confusion, compute_metrics
from nlpflow.evaluation.nlp import scoring
from nlpflow.evaluation.plots import write_plots
from nlpflow.evaluation.slices import compute_slice_metrics
from nlpflow.evaluation.training_texts import TRAINING_TEXTS, save_text_hashes, training_texts
from nlpflow.evaluation.training_texts import load_text_hashes as load_text_hashes
from nlpflow.evaluation.training_texts import text_key as text_key
from nlpflow.training.families import TextClassifier, load_manifest, load_model, predict_labels


class EvaluateReport(BaseModel):
    metrics: dict[str, Any]
    confusion: list[list[int]]
    labels: list[str]
    rows: int
    main_metric: str = "macro_f1"
    ci: dict[str, Any] = {}  # nlpflow.evaluation.stats.Interval of the main metric, as a dict
    slices: dict[str, dict[str, Any]] = {}
    behavioural: dict[str, Any] = {}  # pass_rate, and pass rate by test name
    baseline: dict[str, Any] = {}  # family, <main metric>, accuracy

    def tracked_metrics(self) -> dict[str, float]:
        """The numbers for MLflow, grouped by the prefix before `/` (MLflow's UI charts each
        group apart): test/<metric> and its interval, test_class/<label>/<metric>,
        slice/<name>/<main>, behavioural/<test> pass rates and baseline/<main>."""
        main, out = self.main_metric, {}
        for key, value in self.metrics.items():
            if isinstance(value, float) and key != "behavioural_pass_rate":  # logged below
                out[f"test/{key}"] = value
        for label, scores in self.metrics.get("per_class", {}).items():
            label = _metric_part(str(label))
            out |= {f"test_class/{label}/{k}": v for k, v in scores.items() if isinstance(v, float)}
        if self.ci:
            out |= {f"test/{main}_ci_low": self.ci["low"], f"test/{main}_ci_high": self.ci["high"]}
        out |= {f"slice/{_metric_part(name)}/{main}": s[main] for name, s in self.slices.items()}
        if self.behavioural.get("pass_rate") is not None:
            out["behavioural/pass_rate"] = self.behavioural["pass_rate"]
        for name, rate in self.behavioural.get("tests", {}).items():
            if rate is not None:
                out[f"behavioural/{_metric_part(name)}"] = rate
        if main in self.baseline:
            out[f"baseline/{main}"] = self.baseline[main]
        return {k: float(v) for k, v in out.items()}


def _metric_part(name: str) -> str:
    """A label or slice name as one segment of an MLflow metric key (letters, digits, _-. and
    spaces; a `/` would start another group)."""
    return re.sub(r"[^\w\-. ]", "_", name)


def evaluate(
    *,
    model_dir: Path,
    src: Path,
    metrics_path: Path,
    plots_dir: Path,
    out_dir: Path,
    params: EvaluateParams,
    task: str = DEFAULT_NLP_TASK,
    baseline_dir: Path | None = None,
    behavioural: Path | None = None,
) -> EvaluateReport:
    """Predict the test split of `src` with the model in `model_dir` and write every report.
    `task`: the NLP task (params `task`) whose Scoring module computes the metrics;
    `baseline_dir`: the tfidf_logreg yardstick (None: not scored); `behavioural`: the
    behavioural test file (None: no tests, pass rate null)."""
    nlp = scoring(task)
    model = load_model(model_dir)
    test = _load_test(src, model.labels)
    gold = test["label"].tolist()
    predicted, proba = predict_labels(model, test["text"].tolist())
    metrics, ci = nlp.compute_scores(gold, predicted, proba, labels=model.labels, params=params)
    slices = compute_slice_metrics(
        test["raw_text"].tolist(), gold, predicted, labels=model.labels, params=params
    )
    suite = _behavioural(behavioural, model=model, model_dir=model_dir, test=test,
                         predicted=predicted, params=params)  # fmt: skip
    scored = _score_baseline(baseline_dir, test=test)
    baseline = _baseline_summary(scored, main=params.main_metric)
    metrics["behavioural_pass_rate"] = suite["pass_rate"]
    metrics["baseline"] = baseline or None

    metrics_path.parent.mkdir(parents=True, exist_ok=True)
    metrics_path.write_text(json.dumps(metrics, indent=2))
    frame = nlp.predictions_frame(test, predicted, proba, labels=model.labels)
    _write_evaluation(out_dir, frame=frame, slices=slices, suite=suite, baseline=scored,
                      params=params)  # fmt: skip
    nlp.write_errors(out_dir, frame, limit=params.worst_errors)
    save_text_hashes(out_dir / TRAINING_TEXTS, training_texts(src))
    confusion = compute_confusion(gold, predicted, model.labels)
    write_plots(plots_dir, frame=frame, proba=proba, labels=model.labels, confusion=confusion,
                 bins=params.calibration_bins)  # fmt: skip
    return EvaluateReport(
        metrics=metrics, confusion=confusion, labels=model.labels, rows=len(test),
        main_metric=params.main_metric, ci=ci, slices=slices,
        behavioural={"pass_rate": suite["pass_rate"],
                     "tests": {t["name"]: t["pass_rate"] for t in suite["tests"]}},
        baseline=baseline,
    )  # fmt: skip


def _load_test(src: Path, labels: list[str]) -> pd.DataFrame:
    test = load_splits(src, ("test",))["test"]
    if test.empty:
        raise StageInputError(f"{src / 'test.parquet'} has no rows: there is nothing to evaluate.")
    test = test.assign(text=test["text"].astype(str), label=test["label"].astype(str))
    # processed folders written before raw text was kept: the cleaned text stands in for it
    raw = test["raw_text"].astype(str) if "raw_text" in test.columns else test["text"]
    test = test.assign(raw_text=raw)
    unknown = sorted(set(test["label"]) - set(labels))
    if unknown:
        raise StageInputError(
            f"{src / 'test.parquet'} holds label(s) {', '.join(unknown)} that the model does not "
            f"know (it predicts {', '.join(labels)}): retrain the model on this data."
        )
    return test


def _behavioural(
    path: Path | None,
    *,
    model: TextClassifier,
    model_dir: Path,
    test: pd.DataFrame,
    predicted: list[str],
    params: EvaluateParams,
) -> dict[str, Any]:
    """behavioural.json's content. Tests perturb raw text, which is then cleaned by the
    model's own preprocessing and predicted: the path a served request takes."""
    from nlpflow.evaluation.behavioural import check_labels, load_behavioural, run_behavioural

    if path is None:
        return {"pass_rate": None, "cases": 0, "tests": []}
    suite = load_behavioural(path)
    check_labels(suite, model.labels, path=path)
    cleaner = _cleaner(model_dir)
    report = run_behavioural(
        suite, predict=lambda texts: predict_labels(model, cleaner.transform(texts)),
        labels=model.labels, test_texts=test["raw_text"].tolist(), test_predicted=predicted,
        seed=params.seed,
    )  # fmt: skip
    return report.model_dump()


def _cleaner(model_dir: Path) -> Any:
    from nlpflow.config.params import PreprocessParams
    from nlpflow.data.preprocess import TextPreprocessor

    manifest = load_manifest(model_dir)
    if "preprocess" not in manifest:
        raise StageInputError(
            f"{model_dir}: the model's manifest does not say how its text was cleaned "
            "(no `preprocess`), so raw behavioural texts cannot be prepared: retrain it with "
            "`nlpflow stage train`."
        )
    return TextPreprocessor(PreprocessParams(**manifest["preprocess"]))


def _score_baseline(baseline_dir: Path | None, *, test: pd.DataFrame) -> dict[str, Any] | None:
    """The baseline's family and compute_metrics on the same test rows."""
    if baseline_dir is None:
        return None
    if not baseline_dir.exists():
        raise StageInputError(f"{baseline_dir} is missing: run the baseline stage first.")
    baseline = load_model(baseline_dir)
    predicted, _ = predict_labels(baseline, test["text"].tolist())
    return {
        "family": baseline.family,
        "metrics": compute_metrics(test["label"].tolist(), predicted, baseline.labels),
    }


def _baseline_summary(scored: dict[str, Any] | None, *, main: str) -> dict[str, Any]:
    if scored is None:
        return {}
    return {
        "family": scored["family"],
        main: scored["metrics"][main],
        "accuracy": scored["metrics"]["accuracy"],
    }


def _write_evaluation(
    out_dir: Path,
    *,
    frame: pd.DataFrame,
    slices: dict[str, dict[str, Any]],
    suite: dict[str, Any],
    baseline: dict[str, Any] | None,
    params: EvaluateParams,
) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out_dir / "predictions.parquet", index=False)
    # configured slices that matched no row, so a typo in a keyword does not go unnoticed
    empty = [name for name in params.slices if name not in slices]
    (out_dir / "slices.json").write_text(
        json.dumps({"main_metric": params.main_metric, "slices": slices, "empty": empty}, indent=2)
    )
    (out_dir / "behavioural.json").write_text(json.dumps(suite, indent=2, ensure_ascii=False))
    if baseline is not None:
        (out_dir / "baseline.json").write_text(json.dumps(baseline, indent=2))
    else:  # a baseline of an earlier run must not pass for this run's
        (out_dir / "baseline.json").unlink(missing_ok=True)
