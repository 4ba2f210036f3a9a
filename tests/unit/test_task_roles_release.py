"""The promotion gate and batch inference ask the NLP task's modules (nlpflow.evaluation.nlp,
nlpflow.serving.nlp) for what differs per task: a test-only task, registered here, decides the
gate's score, slices, serving comparison and paired metric, and batch inference's reserved
columns. Text classification's own modules answer as the gate and batch did before."""

from __future__ import annotations

import sys
import types
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from nlpflow.config.params import Params, parse_params
from nlpflow.errors import ParamsError

TASK = "spans-release-test"
FAMILY = "spans-release-family"
LABELS = ["PER", "LOC"]


class _Metric:
    """Share of rows predicted "good": the gate must score with it, not with accuracy."""

    def __call__(self, gold: Any, predicted: Any) -> float:
        return float(np.mean([p == "good" for p in predicted]))


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """Registers TASK (its scoring and output modules) and FAMILY, which serves it."""
    from nlpflow.config.nlp_tasks import NLP_TASKS, NlpTask
    from nlpflow.config.params import FAMILIES

    seen: list[tuple[str, Any]] = []
    scoring = types.ModuleType("nlpflow.evaluation.nlp.fake_release_spans")
    output = types.ModuleType("nlpflow.serving.nlp.fake_release_spans")

    def judge(gold, predicted, texts, *, labels, params, cleaned=None):  # type: ignore[no-untyped-def]
        assert cleaned is None  # the rows hold no cleaned `text` column here
        seen.append(("judge", (gold, predicted, texts, labels, params.main_metric)))
        return 0.42, {"long": {"rows": len(texts), "span_f1": 0.42, "trusted": True}}

    def paired_metric(name, labels):  # type: ignore[no-untyped-def]
        seen.append(("paired_metric", (name, list(labels))))
        return _Metric()

    def recorded(predictions, labels):  # type: ignore[no-untyped-def]
        seen.append(("recorded", list(labels)))
        return predictions["spans"].tolist(), np.zeros((len(predictions), len(labels)))

    def predict_frame(model, cleaner, texts):  # type: ignore[no-untyped-def]
        return pd.DataFrame({"spans": [f"[{len(t)}]" for t in texts]})

    def read_answer(frame, labels):  # type: ignore[no-untyped-def]
        seen.append(("read_answer", list(labels)))
        return frame["spans"].tolist(), np.zeros((len(frame), len(labels)))

    def output_schema(labels):  # type: ignore[no-untyped-def]
        return {"spans": "string"}

    def is_output_column(name):  # type: ignore[no-untyped-def]
        return name == "spans" or name.startswith("span_")

    for name, fn in dict(judge=judge, paired_metric=paired_metric, recorded=recorded).items():
        setattr(scoring, name, fn)
    for name, fn in dict(predict_frame=predict_frame, read_answer=read_answer,
                         output_schema=output_schema, is_output_column=is_output_column).items():  # fmt: skip
        setattr(output, name, fn)
    for module in (scoring, output):
        monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(NLP_TASKS, TASK, NlpTask(TASK, "test only", data="text_classification",
                        suite="text_classification", scoring="fake_release_spans",
                        output="fake_release_spans"))  # fmt: skip
    family = replace(FAMILIES["tfidf_logreg"], name=FAMILY, tasks=(TASK,))
    monkeypatch.setitem(FAMILIES, FAMILY, family)
    return seen


def _params(**overrides: Any) -> Params:
    """Params of TASK: model_copy skips the check that train.family serves it."""
    params = parse_params({"evaluate": {"main_metric": "accuracy"}, **overrides})
    return params.model_copy(update={"task": TASK})


def test_the_challenger_is_judged_by_its_tasks_scoring_and_read_by_its_output(
    calls: list[tuple[str, Any]],
) -> None:
    from nlpflow.release.evidence import challenger_evidence

    texts = ["Ada in Paris", "Bob"]
    predictions = pd.DataFrame({"raw_text": texts, "label": ["[12]", "[3]"],
                                "spans": ["[12]", "[9]"]})  # fmt: skip
    served = SimpleNamespace(model=SimpleNamespace(family=FAMILY, labels=LABELS), cleaner=None)
    evidence = challenger_evidence(
        served, predictions=predictions, metrics={"baseline": {"accuracy": 0.3}},
        params=_params(), family=FAMILY,
    )  # fmt: skip
    assert evidence.predicted == ["[12]", "[3]"]  # the fake Output's answer, as it reads it
    assert evidence.score == 0.42
    assert evidence.slices == {"long": {"rows": 2, "span_f1": 0.42, "trusted": True}}
    assert evidence.baseline_score == 0.3
    # row 1: the fake scoring recorded "[9]" where the served model answers "[3]"
    assert len(evidence.serving_mismatches) == 1
    assert evidence.serving_mismatches[0].startswith("row 1 'Bob': [9] -> [3]")
    judged = (["[12]", "[3]"], ["[12]", "[3]"], texts, LABELS, "accuracy")
    assert calls == [("read_answer", LABELS), ("recorded", LABELS), ("judge", judged)]


def test_the_paired_bootstrap_uses_the_tasks_metric(calls: list[tuple[str, Any]]) -> None:
    from nlpflow.release.gate import ChallengerEvidence, ChampionEvidence, decide

    gold = ["x", "y"] * 20
    params = _params(register={"gate": {"significance": "bootstrap", "beat_baseline": False}})
    challenger = ChallengerEvidence(
        family=FAMILY, gold=gold, predicted=["good"] * 40, score=0.9, slices={},
        behavioural_pass_rate=None, baseline_score=None,
    )  # fmt: skip
    champion = ChampionEvidence(version=1, predicted=["bad"] * 40, slices={}, score=0.1)
    decision = decide(challenger, champion, params)
    assert calls == [("paired_metric", ("accuracy", ["x", "y"]))]
    # accuracy would call every prediction wrong on both sides: a tie, p = 1
    samples = params.evaluate.bootstrap_samples
    assert decision.values["p_value"] == pytest.approx(1 / (samples + 1))
    assert decision.promote


def _plan(tmp_path: Path, params: Params, *, id_column: str) -> Any:
    from nlpflow.config.settings import Settings
    from nlpflow.serving.batch import plan_inference

    inference = {"source": "postgresql://me@db/shop", "table": "t", "output": "p",
                 "id_column": id_column}  # fmt: skip
    params = params.model_copy(update={"inference": params.inference.model_copy(update=inference)})
    return plan_inference(params, Settings(project_dir=tmp_path))


def test_batch_reserves_the_output_columns_of_its_task(
    calls: list[tuple[str, Any]], tmp_path: Path
) -> None:
    spans = _params()
    with pytest.raises(ParamsError, match=r"inference\.id_column 'span_start' clashes") as caught:
        _plan(tmp_path, spans, id_column="span_start")
    assert "row, run_id, scored_at, spans; task spans-release-test" in str(caught.value)
    with pytest.raises(ParamsError, match=r"inference\.id_column 'model_name' clashes"):
        _plan(tmp_path, spans, id_column="model_name")  # nlpflow's own columns, for any task
    assert _plan(tmp_path, spans, id_column="label").id_column == "label"  # not this task's
    classification = parse_params({})
    for column in ("label", "score", "proba_ham"):
        with pytest.raises(ParamsError, match="label, score, proba_<label>; task text-classi"):
            _plan(tmp_path, classification, id_column=column)
    assert _plan(tmp_path, classification, id_column="spans").id_column == "spans"


def test_a_version_answering_with_the_id_column_is_refused() -> None:
    """A version of another task than params `task` passes the plan's check with its own
    columns: the predictions refuse an id column its answer also holds."""
    from datetime import UTC, datetime

    from nlpflow.serving.batch import ROW, build_predictions
    from nlpflow.tracking.refs import ModelRef

    valid = pd.DataFrame({"spans": ["a1", "a2"], ROW: [0, 1], "text": ["x", "y"]})
    scores = pd.DataFrame({"spans": ["[]", "[]"]})
    ref = ModelRef(name="m", version=3)
    kwargs: dict[str, Any] = dict(ref=ref, scored_at=datetime.now(UTC), run_id="r")
    with pytest.raises(ParamsError, match=r"answers with column\(s\) spans"):
        build_predictions(valid, scores, id_column="spans", **kwargs)
    out = build_predictions(valid, scores.rename(columns={"spans": "entities"}),
                            id_column="spans", **kwargs)  # fmt: skip
    assert out["spans"].tolist() == ["a1", "a2"] and out["entities"].tolist() == ["[]", "[]"]


def test_text_classification_answers_as_the_gate_and_batch_did() -> None:
    from nlpflow.evaluation.metrics import ConfusionMetric, compute_metrics
    from nlpflow.evaluation.nlp import scoring
    from nlpflow.evaluation.slices import compute_slice_metrics
    from nlpflow.serving.nlp import output

    tc, answer = scoring("text-classification"), output("text-classification")
    frame = pd.DataFrame({"label": ["spam", "ham"], "score": [0.9, 0.8],
                          "proba_ham": [0.1, 0.8], "proba_spam": [0.9, 0.2]})  # fmt: skip
    labels, proba = answer.read_answer(frame, ["spam", "ham"])  # the model's label order
    assert labels == ["spam", "ham"] and proba.tolist() == [[0.9, 0.1], [0.2, 0.8]]
    recorded = frame.rename(columns={"label": "predicted"})
    got, got_proba = tc.recorded(recorded, ["spam", "ham"])
    assert got == labels and got_proba.tolist() == proba.tolist()
    assert [answer.is_output_column(c) for c in ("label", "score", "proba_x", "labels", "id")] == [
        True, True, True, False, False,
    ]  # fmt: skip
    metric = tc.paired_metric("macro_f1", ["ham", "spam"])
    assert isinstance(metric, ConfusionMetric) and metric.labels == ["ham", "spam"]
    gold, predicted = ["ham", "spam", "spam", "ham"] * 10, ["ham", "spam", "ham", "ham"] * 10
    texts = ["refund please now"] * 20 + ["hello"] * 20
    evaluate = parse_params({"evaluate": {"main_metric": "macro_f1"}}).evaluate
    score, slices = tc.judge(gold, predicted, texts, labels=["ham", "spam"], params=evaluate)
    assert score == pytest.approx(compute_metrics(gold, predicted, ["ham", "spam"])["macro_f1"])
    assert score == pytest.approx(metric(gold, predicted))
    expected = compute_slice_metrics(
        texts, gold, predicted, labels=["ham", "spam"], params=evaluate
    )
    assert slices == expected and slices
