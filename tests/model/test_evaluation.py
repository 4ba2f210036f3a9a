"""The evaluate stage end to end: a tfidf_linear_svm model and the tfidf_logreg baseline trained
in the test on the bundled sample, then evaluate() and checks on every file it writes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from nlpflow.config.params import EvaluateParams, PreprocessParams, SliceParams, TrainParams
from nlpflow.data.preprocess import TextPreprocessor
from nlpflow.errors import ParamsError, StageInputError
from nlpflow.evaluation.evaluate import evaluate
from nlpflow.evaluation.metrics import compute_metrics
from nlpflow.evaluation.report import EvaluateReport
from nlpflow.evaluation.training_texts import TRAINING_TEXTS, load_text_hashes, text_key
from nlpflow.training.families import load_model, predict_labels
from nlpflow.training.train import train, train_baseline
from tests.conftest import REPO, SAMPLE

PARAMS = EvaluateParams(
    bootstrap_samples=200, worst_errors=5, min_slice_size=10,
    slices={"refunds": SliceParams(keywords=["refund"]), "orders": SliceParams(regex=r"#\d{4,}"),
            "nowhere": SliceParams(keywords=["zebra crossing"])},
)  # fmt: skip
LABELS = ["account", "billing", "shipping", "technical"]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """processed/ (text cleaned as preprocess would, raw_text kept), models/model, models/baseline."""
    root = tmp_path_factory.mktemp("evaluate")
    frame = pd.read_csv(SAMPLE)
    cleaned = TextPreprocessor(PreprocessParams(lowercase=True)).transform(frame["text"].tolist())
    frame = frame.assign(raw_text=frame["text"], text=cleaned)
    processed = root / "processed"
    processed.mkdir()
    cut = {"train": (0, 400), "validation": (400, 450), "test": (450, len(frame))}
    for split, (start, end) in cut.items():
        frame.iloc[start:end].to_parquet(processed / f"{split}.parquet", index=False)
    model = TrainParams(family="tfidf_linear_svm")
    train(src=processed, dst=root / "model", history_path=root / "history.csv", params=model,
          preprocess=PreprocessParams(lowercase=True), labels=LABELS)  # fmt: skip
    train_baseline(src=processed, dst=root / "baseline", params=model,
                   preprocess=PreprocessParams(lowercase=True), labels=LABELS)  # fmt: skip
    return root


def _evaluate(root: Path, out: str, **changes: Any) -> EvaluateReport:
    kwargs: dict[str, Any] = {
        "model_dir": root / "model", "baseline_dir": root / "baseline",
        "src": root / "processed", "metrics_path": root / out / "metrics.json",
        "plots_dir": root / out / "plots", "out_dir": root / out / "evaluation",
        "params": PARAMS, "behavioural": REPO / "behavioural.yaml",
    }  # fmt: skip
    return evaluate(**(kwargs | changes))


@pytest.fixture(scope="module")
def run(project: Path) -> tuple[Path, EvaluateReport]:
    return project / "full", _evaluate(project, "full")


def test_metrics_json_holds_the_contract_and_agrees_with_the_predictions(run) -> None:  # type: ignore[no-untyped-def]
    out, report = run
    metrics = json.loads((out / "metrics.json").read_text())
    floats = ["accuracy", "mcc", "roc_auc", "average_precision", "ece", "behavioural_pass_rate"]
    floats += [
        f"{a}_{m}" for a in ("macro", "micro", "weighted") for m in ("precision", "recall", "f1")
    ]
    assert all(type(metrics[k]) is float for k in floats), floats
    assert list(metrics["per_class"]) == LABELS
    predictions = pd.read_parquet(out / "evaluation" / "predictions.parquet")
    assert len(predictions) == report.rows == 726 - 450
    assert metrics["accuracy"] == pytest.approx(
        (predictions["label"] == predictions["predicted"]).mean()
    )
    expected = compute_metrics(predictions["label"], predictions["predicted"], LABELS)
    assert metrics["macro_f1"] == pytest.approx(expected["macro_f1"])
    assert report.metrics == metrics


def test_predictions_hold_both_texts_and_a_probability_per_label(run, project: Path) -> None:  # type: ignore[no-untyped-def]
    out, _ = run
    predictions = pd.read_parquet(out / "evaluation" / "predictions.parquet")
    assert list(predictions.columns) == [
        "raw_text", "text", "label", "predicted", "confidence", *(f"proba_{k}" for k in LABELS)
    ]  # fmt: skip
    test = pd.read_parquet(project / "processed" / "test.parquet")
    assert predictions["raw_text"].tolist() == test["raw_text"].tolist()
    proba = predictions[[f"proba_{k}" for k in LABELS]].to_numpy()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    np.testing.assert_allclose(predictions["confidence"], proba.max(axis=1))
    assert predictions["predicted"].tolist() == [LABELS[i] for i in proba.argmax(axis=1)]


def test_interval_roc_and_calibration(run) -> None:  # type: ignore[no-untyped-def]
    from sklearn.metrics import roc_auc_score

    out, _ = run
    metrics = json.loads((out / "metrics.json").read_text())
    ci = metrics["ci"]
    assert ci["metric"] == "macro_f1" and ci["value"] == pytest.approx(metrics["macro_f1"])
    assert ci["low"] < ci["value"] < ci["high"] and ci["samples"] == 200 and ci["level"] == 0.95
    assert ci["high"] - ci["low"] < 0.2  # 276 rows: a few points either side, not the whole range
    predictions = pd.read_parquet(out / "evaluation" / "predictions.parquet")
    proba = predictions[[f"proba_{k}" for k in LABELS]].to_numpy()
    assert metrics["roc_auc"] == pytest.approx(
        roc_auc_score(predictions["label"], proba, multi_class="ovr", labels=LABELS)
    )
    bins = pd.read_csv(out / "plots" / "calibration.csv")
    assert list(bins.columns) == ["bin", "confidence", "accuracy", "count"]
    assert bins["count"].sum() == len(predictions)
    ece = (
        bins["count"] / bins["count"].sum() * (bins["accuracy"] - bins["confidence"]).abs()
    ).sum()
    assert metrics["ece"] == pytest.approx(ece)
    for kind, columns in (("roc", ["fpr", "tpr"]), ("pr", ["recall", "precision"])):
        assert sorted(p.stem for p in (out / "plots" / kind).glob("*.csv")) == LABELS
        assert list(pd.read_csv(out / "plots" / kind / "billing.csv").columns) == columns
    for png in ("confusion_matrix", "roc", "pr", "reliability"):
        assert (out / "plots" / f"{png}.png").read_bytes()[:4] == b"\x89PNG"


def test_worst_errors_are_the_most_confident_mistakes(run) -> None:  # type: ignore[no-untyped-def]
    out, _ = run
    predictions = pd.read_parquet(out / "evaluation" / "predictions.parquet")
    mistakes = predictions[predictions["label"] != predictions["predicted"]]
    assert len(mistakes) >= 5  # else this test checks little
    worst = pd.read_csv(out / "evaluation" / "worst_errors.csv")
    assert list(worst.columns) == ["raw_text", "label", "predicted", "confidence"]
    assert len(worst) == 5
    assert (worst["label"] != worst["predicted"]).all()
    assert worst["confidence"].is_monotonic_decreasing
    assert worst["confidence"].iloc[0] == pytest.approx(mistakes["confidence"].max())
    assert worst["confidence"].iloc[-1] >= mistakes["confidence"].nlargest(5).min() - 1e-12
    table = (out / "evaluation" / "worst_errors.md").read_text()
    assert f"of {len(mistakes)} in {len(predictions)} test rows" in table
    assert table.count("\n| 0.") + table.count("\n| 1.") == 5


def test_slices_json(run) -> None:  # type: ignore[no-untyped-def]
    out, report = run
    data = json.loads((out / "evaluation" / "slices.json").read_text())
    assert data["main_metric"] == "macro_f1" and data["slices"] == report.slices
    slices = data["slices"]
    predictions = pd.read_parquet(out / "evaluation" / "predictions.parquet")
    tokens = predictions["raw_text"].str.split().str.len()
    short = predictions[(tokens >= 9) & (tokens <= 16)]
    assert slices["length_9_16"]["rows"] == len(short)
    assert slices["length_9_16"]["accuracy"] == pytest.approx(
        (short["label"] == short["predicted"]).mean()
    )
    refunds = predictions[predictions["raw_text"].str.contains(r"(?i)\brefund\b")]
    assert slices["refunds"]["rows"] == len(refunds) > 0 and slices["refunds"]["kind"] == "keywords"
    assert slices["orders"]["kind"] == "regex"
    assert {s["trusted"] for s in slices.values()} <= {True, False}
    assert all(s["trusted"] == (s["rows"] >= 10) for s in slices.values())
    assert data["empty"] == ["nowhere"] and "nowhere" not in slices


def test_behavioural_and_baseline_reports(run) -> None:  # type: ignore[no-untyped-def]
    out, report = run
    suite = json.loads((out / "evaluation" / "behavioural.json").read_text())
    names = [t["name"] for t in suite["tests"]]
    assert names[:3] == ["typos", "person_names", "punctuation"]
    passed, cases = (
        sum(t["passed"] for t in suite["tests"]),
        sum(t["cases"] for t in suite["tests"]),
    )
    assert suite["cases"] == cases and suite["pass_rate"] == pytest.approx(passed / cases)
    mft = next(t for t in suite["tests"] if t["type"] == "mft")
    assert mft["cases"] == 8 and mft["pass_rate"] >= 0.75  # canonical tickets: the easy ones
    assert report.behavioural["tests"]["typos"] == suite["tests"][0]["pass_rate"]

    baseline = json.loads((out / "evaluation" / "baseline.json").read_text())
    assert baseline["family"] == "tfidf_logreg"
    test = pd.read_parquet(out.parent / "processed" / "test.parquet")
    theirs, _ = predict_labels(load_model(out.parent / "baseline"), test["text"].tolist())
    assert baseline["metrics"] == compute_metrics(test["label"].tolist(), theirs, LABELS)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["baseline"] == {
        "family": "tfidf_logreg", "macro_f1": baseline["metrics"]["macro_f1"],
        "accuracy": baseline["metrics"]["accuracy"],
    }  # fmt: skip
    assert metrics["baseline"]["macro_f1"] != metrics["macro_f1"]  # a different model scored


def test_tracked_metrics_name_what_mlflow_receives(run) -> None:  # type: ignore[no-untyped-def]
    _, report = run
    tracked = report.tracked_metrics()
    assert tracked["test/macro_f1"] == report.metrics["macro_f1"]
    assert tracked["test_class/billing/f1"] == report.metrics["per_class"]["billing"]["f1"]
    assert tracked["test/macro_f1_ci_low"] == report.ci["low"]
    assert tracked["slice/refunds/macro_f1"] == report.slices["refunds"]["macro_f1"]
    assert tracked["behavioural/pass_rate"] == report.behavioural["pass_rate"]
    assert "behavioural/canonical_tickets" in tracked
    assert tracked["baseline/macro_f1"] == report.baseline["macro_f1"]
    assert all(type(v) is float for v in tracked.values())


def test_without_behavioural_tests_the_pass_rate_is_null(project: Path) -> None:
    report = _evaluate(project, "plain", behavioural=None, baseline_dir=None)
    metrics = json.loads((project / "plain" / "metrics.json").read_text())
    assert metrics["behavioural_pass_rate"] is None and metrics["baseline"] is None
    suite = json.loads((project / "plain" / "evaluation" / "behavioural.json").read_text())
    assert suite == {"pass_rate": None, "cases": 0, "tests": []}
    assert "behavioural/pass_rate" not in report.tracked_metrics()
    assert not (project / "plain" / "evaluation" / "baseline.json").exists()


def test_evaluate_scores_through_the_module_of_its_nlp_task(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second NLP task is its module and one registry entry: evaluate hands the task's
    Scoring module its inputs, writes metrics.json from its report and the training-text
    hashes every task's gate needs, and draws nothing of classification's itself."""
    import sys
    import types

    from nlpflow.config.nlp_tasks import NLP_TASKS, NlpTask
    from nlpflow.evaluation.nlp import EvaluateInputs

    seen: list[EvaluateInputs] = []
    fake = types.ModuleType("nlpflow.evaluation.nlp.fake_spans")

    def evaluate(inputs: EvaluateInputs) -> EvaluateReport:
        seen.append(inputs)
        inputs.out_dir.mkdir(parents=True, exist_ok=True)
        (inputs.out_dir / "span_errors.md").write_text(f"limit {inputs.params.worst_errors}")
        ci = {"low": 0.25, "high": 0.75}
        per_type = {"ORG": {"f1": 0.4, "support": 3}}
        return EvaluateReport(metrics={"span_f1": 0.5, "ci": ci, "per_type": per_type},
                              confusion=[], labels=["ORG"], rows=3, main_metric="span_f1",
                              ci=ci)  # fmt: skip

    fake.evaluate = evaluate  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, fake.__name__, fake)
    monkeypatch.setitem(NLP_TASKS, "spans-test", NlpTask("spans-test", "test only",
                        data="text_classification", suite="text_classification",
                        scoring="fake_spans", output="text_classification"))  # fmt: skip
    out = project / "spans"
    (out / "plots").mkdir(parents=True)
    (out / "plots" / "roc.png").write_bytes(b"an earlier run's chart")
    report = _evaluate(project, "spans", task="spans-test", behavioural=None, baseline_dir=None)
    assert [(i.src, i.out_dir, i.baseline_dir, i.behavioural) for i in seen] == [
        (project / "processed", out / "evaluation", None, None)
    ]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["span_f1"] == 0.5 and metrics["ci"] == {"low": 0.25, "high": 0.75}
    assert report.tracked_metrics() == {"test/span_f1": 0.5, "test/span_f1_ci_low": 0.25,
                                        "test/span_f1_ci_high": 0.75,
                                        "test_type/ORG/f1": 0.4}  # fmt: skip
    assert (out / "evaluation" / "span_errors.md").read_text() == f"limit {PARAMS.worst_errors}"
    trained = load_text_hashes(out / "evaluation" / TRAINING_TEXTS)
    train = pd.read_parquet(project / "processed" / "train.parquet")
    assert text_key(str(train["raw_text"].iloc[0])) in trained
    # classification's files are its module's, not evaluate's
    assert not (out / "evaluation" / "predictions.parquet").exists()
    assert not (out / "plots").exists()


def test_bad_inputs_stop_with_the_fix(project: Path, tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match=r"nope\.yaml does not exist"):
        _evaluate(project, "bad", behavioural=tmp_path / "nope.yaml")
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("tests: [{name: m, type: mft, examples: [{text: hi, label: refunds}]}]")
    with pytest.raises(ParamsError, match=r"wrong\.yaml: test 'm' names label\(s\) refunds"):
        _evaluate(project, "bad", behavioural=wrong)
    src = tmp_path / "processed"
    shutil.copytree(project / "processed", src)
    test = pd.read_parquet(src / "test.parquet")
    test.assign(label=test["label"].replace("billing", "invoices")).to_parquet(src / "test.parquet")
    with pytest.raises(StageInputError, match="label\\(s\\) invoices that the model does not know"):
        _evaluate(project, "bad", src=src)
