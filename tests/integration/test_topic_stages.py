"""Unlabelled, dated text through every stage of topic-modeling, as `nlpflow stage` runs them
against a real MLflow store: no label checks in validate, no label scores in evaluate, the
time column carried from gather to each topic's shares over time.

    .venv/bin/python -m pytest tests/integration/test_topic_stages.py -q
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import REPO, make_project, mlflow_client, project_environment, run_cli_pipeline

pytestmark = pytest.mark.slow
MODEL = "topic-stages-test"
LABEL_CHECKS = {"label_column", "label_not_null", "label_in_set", "class_min_count"}


def _params() -> str:
    tree = yaml.safe_load((REPO / "params.yaml").read_text())
    topics = yaml.safe_load((REPO / "configs/topics.yaml").read_text())
    tree |= {"task": "topic-modeling"}
    tree["data"] |= {"source": "tickets_dated.csv", "label_column": None, "time_column": "when"}
    tree["preprocess"] |= topics["preprocess"]
    tree["train"] |= {"family": "nmf", "topics": topics["train"]["topics"]}
    tree["evaluate"] |= {"main_metric": "npmi", "behavioural": None}
    tree["sweep"] |= {"metric": "val_npmi"}
    return yaml.safe_dump(tree, sort_keys=False)


def test_unlabelled_dated_text_gets_topics_and_their_shares_over_time(tmp_path: Path) -> None:
    root = make_project(tmp_path / "project", _params())
    tickets = pd.read_csv(REPO / "data/sample/support_tickets.csv")
    # six months, the rows in file order: a month is a sixth of the file
    months = [f"2024-{1 + i * 6 // len(tickets):02d}-15" for i in range(len(tickets))]
    tickets[["text"]].assign(when=months).to_csv(root / "tickets_dated.csv", index=False)
    with project_environment(root, MODEL):
        reports = run_cli_pipeline(root, [])
    checks = {c["id"] for c in reports["validate"]["checks"]}
    assert "text_not_blank" in checks and not checks & LABEL_CHECKS
    metrics = reports["evaluate"]["metrics"]
    assert metrics["topics"] == 4 and metrics["baseline"]["family"] == "nmf"
    assert not {"nmi", "ari", "purity"} & set(metrics)  # no labels to score against
    over_time = pd.read_csv(root / "reports/plots/topic_shares_over_time.csv")
    assert sorted(over_time["period"].unique()) == [f"2024-{m:02d}" for m in range(1, 7)]
    assert over_time.groupby("period")["share"].sum().to_numpy() == pytest.approx(
        [1.0] * 6, abs=1e-6
    )
    # every row of every split has its month: the documents per period add up to all rows
    documents = over_time.groupby("period")["documents"].first()
    assert int(documents.sum()) == len(tickets)
    assert (root / "reports/plots/topic_shares_over_time.png").stat().st_size > 10_000
    register = reports["register"]
    assert {c["name"]: c for c in register["checks"]}["serving"]["passed"]
    version = mlflow_client(root).get_model_version(MODEL, str(register["version"]))
    assert version.tags["gate.decision"] in {"promoted", "rejected"}
