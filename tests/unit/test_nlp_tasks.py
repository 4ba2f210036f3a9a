"""The NLP task axis: params `task`, the registry (nlpflow.config.nlp_tasks) and dispatch to
one module per task per role. A test-only task, whose modules live here, shows that adding a
task is its modules plus one registry entry."""

from __future__ import annotations

import sys
import types
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from nlpflow.config import nlp_tasks
from nlpflow.config.naming import logged_params
from nlpflow.config.nlp_tasks import NLP_TASKS, NlpTask
from nlpflow.config.params import FAMILIES, Params, parse_params
from nlpflow.data.nlp import Data, data_role
from nlpflow.data.suites import Suite, suite_role
from nlpflow.errors import ParamsError
from nlpflow.evaluation.nlp import Scoring, scoring
from nlpflow.serving.nlp import Output, output

FAKE = "token-classification-test"


def test_the_task_defaults_to_text_classification_and_is_not_logged() -> None:
    params = parse_params({})
    assert params.task == "text-classification"
    assert params.to_dict()["task"] == "text-classification"
    # classification runs log the MLflow params they logged before the task was a param
    assert "task" not in logged_params(params)


def test_an_unknown_task_names_the_known_ones() -> None:
    with pytest.raises(ParamsError) as caught:
        parse_params({"task": "text-clasification"})
    assert "task: unknown NLP task 'text-clasification'; known: text-classification" in str(
        caught.value
    )


def test_every_registered_task_has_modules_that_implement_its_roles() -> None:
    assert "text-classification" in NLP_TASKS
    for name in NLP_TASKS:
        assert isinstance(scoring(name), Scoring), name
        assert isinstance(output(name), Output), name
    served = {task for family in FAMILIES.values() for task in family.tasks}
    assert served <= set(NLP_TASKS), "a family serves an unregistered NLP task"
    for name in NLP_TASKS:  # every task has a family to train, and its baseline is one
        assert [f for f in FAMILIES.values() if f.serves(name)], name
        assert FAMILIES[NLP_TASKS[name].baseline].serves(name), name
        assert FAMILIES[NLP_TASKS[name].baseline].can_be_baseline, name
        assert isinstance(data_role(name), Data) and isinstance(suite_role(name), Suite), name


def _fake_output() -> types.ModuleType:
    module = types.ModuleType("nlpflow.serving.nlp.fake_spans")

    def output_schema(labels: Sequence[str]) -> dict[str, str]:
        return {"entities": "string", "count": "long"}

    def predict_frame(model: Any, cleaner: Any, texts: list[str]) -> pd.DataFrame:
        return pd.DataFrame({"entities": [t.upper() for t in texts], "count": [1] * len(texts)})

    module.output_schema = output_schema  # type: ignore[attr-defined]
    module.predict_frame = predict_frame  # type: ignore[attr-defined]
    return module


@pytest.fixture
def fake_task(monkeypatch: pytest.MonkeyPatch) -> str:
    """A second NLP task (modules in this test) served by a second family."""
    monkeypatch.setitem(
        NLP_TASKS,
        FAKE,
        NlpTask(
            FAKE,
            "test only",
            data="text_classification",
            suite="text_classification",
            scoring="fake_spans",
            output="fake_spans",
        ),
    )
    monkeypatch.setitem(sys.modules, "nlpflow.serving.nlp.fake_spans", _fake_output())
    family = replace(FAMILIES["tfidf_logreg"], name="fake_tagger", tasks=(FAKE,))
    monkeypatch.setitem(FAMILIES, "fake_tagger", family)
    return FAKE


def test_a_family_must_serve_the_task(fake_task: str) -> None:
    with pytest.raises(ParamsError) as caught:
        parse_params({"task": fake_task})  # train.family stays the default transformer
    assert (
        f"train.family: transformer serves text-classification, not task {fake_task}; "
        f"families that serve {fake_task}: fake_tagger"
    ) in str(caught.value)
    with pytest.raises(ParamsError, match="families that serve text-classification: tfidf_logreg"):
        parse_params({"train": {"family": "fake_tagger"}})
    params = parse_params({"task": fake_task, "train": {"family": "fake_tagger"}})
    assert (params.task, params.train.family) == (fake_task, "fake_tagger")
    assert logged_params(params)["task"] == fake_task  # a task other than the default is logged


def test_an_added_task_is_served_through_its_own_output_module(
    fake_task: str, tmp_path: Path
) -> None:
    from nlpflow.release.publish import pyfunc_spec
    from nlpflow.serving.pyfunc import predict_frame
    from nlpflow.training.families import save_manifest

    model = types.SimpleNamespace(family="fake_tagger", labels=["PER"])
    frame = predict_frame(model, None, ["ada lovelace", "x"])
    assert frame.to_dict("list") == {"entities": ["ADA LOVELACE", "X"], "count": [1, 1]}

    save_manifest(tmp_path, family="fake_tagger", labels=["PER"], extra={})
    params = Params(task=fake_task, train={"family": "fake_tagger"})  # type: ignore[arg-type]
    assert pyfunc_spec(tmp_path, params).outputs == {"entities": "string", "count": "long"}
    classify = pyfunc_spec(tmp_path, Params())
    assert classify.outputs == {"label": "string", "score": "double", "proba_PER": "double"}


def test_stages_that_dispatch_on_the_task_list_it_and_import_its_modules() -> None:
    from nlpflow.pipeline.stages import get_stage

    for name, modules in {
        "evaluate": ["nlpflow/evaluation/nlp/text_classification.py"],
        "register": ["nlpflow/serving/nlp/text_classification.py"],
    }.items():
        stage = get_stage(name)
        # task itself is no DVC param: changing it must change train.family (the params
        # refuse a family of another task), which re-runs train and everything after it
        assert "task" not in stage.params, name
        files = stage.code_files()
        assert "nlpflow/config/nlp_tasks.py" in files
        assert all(m in files for m in modules), (name, files)
    # the registry names modules, never imports them: a stage that does not dispatch on the
    # task (train: its family does) depends on no task's modules
    assert not [f for f in get_stage("train").code_files() if "/nlp/" in f]
    # gather's role and validate's suite are apart: a changed check re-runs validate only
    assert "nlpflow/data/nlp/text_classification.py" in get_stage("gather").code_files()
    assert not [f for f in get_stage("gather").code_files() if "/suites/" in f]
    assert "nlpflow/data/suites/text_classification.py" in get_stage("validate").code_files()
    assert nlp_tasks.DEFAULT_NLP_TASK in NLP_TASKS


def test_the_sweep_judges_a_tagger_on_validation_entity_f1() -> None:
    from nlpflow.training.sweep import check_sweep

    tagger = {"task": "token-classification", "train": {"family": "spacy_ner"}}
    assert parse_params(tagger).sweep.metric == "val_entity_f1"  # the task's default
    assert parse_params({}).sweep.metric == "val_macro_f1"
    with pytest.raises(
        ParamsError,
        match=r"sweep\.metric: val_accuracy is not reported by task "
        r"token-classification's families; choose one of val_entity_f1, val_loss",
    ):
        parse_params(tagger | {"sweep": {"metric": "val_accuracy"}})
    with pytest.raises(ParamsError, match="val_entity_f1 is not reported by task text-class"):
        parse_params({"sweep": {"metric": "val_entity_f1"}})
    # val_loss: Trainer families only; the way out names the task's own metric
    spaced = tagger | {"sweep": {"metric": "val_loss", "space": {
        "dropout": {"type": "float", "low": 0.1, "high": 0.3}}}}  # fmt: skip
    with pytest.raises(ParamsError, match=r"reports no validation loss; use val_entity_f1$"):
        check_sweep(parse_params(spaced), Path("."))
