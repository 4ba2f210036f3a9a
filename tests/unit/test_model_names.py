"""Which registered model a run registers to and the commands read: one resolution.

    .venv/bin/python -m pytest tests/unit/test_model_names.py -q

NLPFLOW_REGISTERED_MODEL (explicit, wins), then params register.model_name, then `nlpflow-` +
the data's name. Every dataset once shared `nlpflow-classifier`, so a model of one replaced the
champion of another (issue 18).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nlpflow.config.naming import default_model_name, project_model_name, registered_model_name
from nlpflow.config.params import Params, load_params
from nlpflow.config.settings import Settings
from nlpflow.errors import ParamsError
from nlpflow.release.identity import identity_check, identity_of


def _params(**tree: object) -> Params:
    return Params.model_validate(tree)


def test_the_environment_wins_then_params_then_the_data() -> None:
    named = _params(register={"model_name": "sentiment"}, data={"source": "data/sst2.csv"})
    assert registered_model_name(named, "from-env").name == "from-env"
    assert registered_model_name(named, "from-env").origin == "NLPFLOW_REGISTERED_MODEL"
    assert registered_model_name(named, None).name == "sentiment"
    assert registered_model_name(named, "  ").name == "sentiment"  # blank is unset
    derived = registered_model_name(_params(data={"source": "data/AG News.csv"}), None)
    assert (derived.name, derived.origin) == ("nlpflow-ag-news", "data.source")
    assert "--set register.model_name=NAME" in derived.line


@pytest.mark.parametrize(
    ("data", "task", "expected"),
    [
        ({"source": "data/sample/support_tickets.csv"}, {}, "nlpflow-support-tickets"),
        ({"source": "hf:nyu-mll/glue", "hf_config": "sst2"}, {}, "nlpflow-glue-sst2"),
        ({"source": "../shared/datasets/trec"}, {}, "nlpflow-trec"),
        ({"source": "postgresql://me@db.example/shop"}, {}, "nlpflow-shop"),
        # topics of the ticket file are another model than its classifier
        ({"source": "data/sample/support_tickets.csv"},
         {"task": "topic-modeling", "train": {"family": "lda"}},
         "nlpflow-support-tickets-topic-modeling"),
    ],
)  # fmt: skip
def test_the_default_name_follows_the_data(
    data: dict[str, str], task: dict[str, object], expected: str
) -> None:
    assert default_model_name(_params(data=data, **task)) == expected


def test_commands_read_the_name_from_params_yaml_and_their_configs(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text("data:\n  source: data/tickets.csv\n")
    (tmp_path / "trec.yaml").write_text("register:\n  model_name: nlpflow-trec\n")
    settings = Settings(project_dir=tmp_path)
    assert project_model_name(settings).name == "nlpflow-tickets"
    assert project_model_name(settings, [tmp_path / "trec.yaml"]).name == "nlpflow-trec"
    explicit = Settings(project_dir=tmp_path, registered_model="mine")
    assert project_model_name(explicit, [tmp_path / "trec.yaml"]).name == "mine"


def test_a_model_name_that_would_break_a_model_reference_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("register:\n  model_name: sentiment@champion\n")
    with pytest.raises(ParamsError, match=r"register\.model_name"):
        load_params(path)


def test_the_identity_check_names_both_sides_and_the_fix() -> None:
    ours_params = _params(data={"source": "data/ag_news.csv"})
    ours = identity_of(ours_params, labels=["World", "Sports", "Business", "Sci/Tech"])
    theirs = identity_of(_params(data={"source": "data/sst2.csv"}), labels=["pos", "neg"])
    name = registered_model_name(ours_params, "nlpflow-classifier")
    check = identity_check(ours, theirs, version=3, name=name, params=ours_params)
    assert not check.passed and check.applicable
    assert "champion v3 has task text-classification, labels [neg, pos], source data/sst2.csv" in (
        check.reason
    )
    assert "labels [Business, Sci/Tech, Sports, World], source data/ag_news.csv" in check.reason
    assert "unset it to let the name follow the data (nlpflow-ag-news)" in check.reason
    same = identity_check(ours, ours, version=3, name=name, params=ours_params)
    assert same.passed and same.reason == "same task, labels and data source as champion v3"


def test_topic_models_of_other_topic_counts_are_of_the_same_data() -> None:
    # topic ids say what a model found, not what the data is: 8 topics and 12 compare
    topics = _params(task="topic-modeling", train={"family": "lda"},
                     data={"source": "data/tickets.csv"})  # fmt: skip
    eight = identity_of(topics, labels=[f"topic_{i}" for i in range(8)])
    twelve = identity_of(topics, labels=[f"topic_{i}" for i in range(12)])
    name = registered_model_name(topics, None)
    assert identity_check(twelve, eight, version=1, name=name, params=topics).passed
    # a classifier of the same file is another kind of model
    classifier = identity_of(_params(data={"source": "data/tickets.csv"}), labels=["a", "b"])
    refused = identity_check(twelve, classifier, version=1, name=name, params=topics)
    assert not refused.passed and "(task and labels differ)" not in refused.reason
    assert "is a model of other data (task differs)" in refused.reason
