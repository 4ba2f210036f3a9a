"""Two datasets trained in one project folder, against a real MLflow registry (SQLite).

    .venv/bin/python -m pytest tests/integration/test_registry_identity.py -q

The bug (issue 18): every dataset shared the registered model `nlpflow-classifier`, so an AG
News topic model was scored against an SST-2 sentiment champion on the news test rows, "beat"
it 0.87 to 0.00 and replaced it. Here the sample's support tickets (account, billing, shipping,
technical) and a small sentiment set (neg, pos) are trained in one project:

- under one shared name, the second is registered but refused (never compared, never
  promoted), and the reason names both sides and the fix; a champion registered before
  versions carried their identity is recognised from what its run logged;
- with the names following the config (no NLPFLOW_REGISTERED_MODEL), each dataset gets its
  own registered model and champion, and neither touches the other's.

The model card's intended use comes from params, and no default claims ticket routing.
"""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import (
    cli_environment,
    fast_params,
    make_project,
    mlflow_client,
    project_environment,
    run_cli_pipeline,
)

pytestmark = pytest.mark.slow
SHARED = "shared-classifier"
REVIEWS_USE = "Tell positive from negative English product reviews. Not for other domains."
# the second dataset: its own labels, no behavioural tests (the sample's name ticket labels)
REVIEWS = ["data.source=data/reviews.csv", "evaluate.behavioural=null",
           f"register.card.intended_use={REVIEWS_USE}"]  # fmt: skip
TICKET_LABELS = "[account, billing, shipping, technical]"


def _write_reviews(path: Path) -> None:
    """120 distinct short reviews, half positive, half negative, told apart by their words."""
    good = ["great", "excellent", "lovely", "wonderful", "superb", "delightful"]
    bad = ["awful", "terrible", "broken", "useless", "horrible", "disappointing"]
    things = ["blender", "kettle", "lamp", "chair", "headset", "backpack", "toaster",
              "monitor", "jacket", "printer"]  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for i, thing in enumerate(things):
            for j in range(6):
                writer.writerow([f"The {thing} is {good[j]}, {good[(i + j) % 6]} value", "pos"])
                writer.writerow([f"The {thing} is {bad[j]}, {bad[(i + j) % 6]} value", "neg"])


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = make_project(
        tmp_path_factory.mktemp("identity") / "project", fast_params(family="tfidf_logreg")
    )
    _write_reviews(root / "data" / "reviews.csv")
    runs: dict[str, Any] = {}
    with project_environment(root, SHARED):  # one name for both: the bug's setting
        runs["shared_tickets"] = run_cli_pipeline(root, [])["register"]
        runs["shared_reviews"] = run_cli_pipeline(root, REVIEWS)["register"]
        runs["shared_reviews_card"] = (root / "reports" / "model_card.md").read_text()
    with project_environment(root, SHARED) as mp:
        mp.delenv("NLPFLOW_REGISTERED_MODEL")  # names follow the data and params
        runs["tickets"] = run_cli_pipeline(root, [])["register"]
        runs["tickets_card"] = (root / "reports" / "model_card.md").read_text()
        runs["reviews"] = run_cli_pipeline(root, REVIEWS)["register"]
    return root, runs


def test_a_champion_of_other_labels_and_data_is_not_compared_nor_replaced(project) -> None:
    root, runs = project
    first, second = runs["shared_tickets"], runs["shared_reviews"]
    assert first["version"] == 1 and first["promoted"] is True
    assert second["version"] == 2 and second["promoted"] is False and second["refused"]
    client = mlflow_client(root)
    assert int(client.get_model_version_by_alias(SHARED, "champion").version) == 1
    tags = client.get_model_version(SHARED, "2").tags
    assert tags["gate.decision"] == "rejected" and tags["gate.refused"] == "identity"
    assert tags["gate.compared_version"] == "1"
    reason = tags["gate.reasons"]
    assert reason.startswith("identity: refused to compare: champion v1 of 'shared-classifier'")
    # both sides named: the champion's labels and source, then this model's
    assert f"labels {TICKET_LABELS}, source data/sample/support_tickets.csv" in reason
    assert "labels [neg, pos], source data/reviews.csv" in reason
    assert "labels and data source differ" in reason
    # the fix: NLPFLOW_REGISTERED_MODEL named it; unset, the name follows the data
    assert "unset it to let the name follow the data (nlpflow-reviews)" in reason
    assert "register.model_name" in reason
    # never a metric comparison against a model of other labels
    assert "champion" not in json.loads(tags["gate.metrics"])
    checks = {c["name"]: c for c in second["checks"]}
    assert not checks["margin"]["applicable"] and not checks["significance"]["applicable"]
    assert "not compared with champion v1" in runs["shared_reviews_card"]


def test_every_version_records_its_identity(project) -> None:
    root, _ = project
    client = mlflow_client(root)
    one, two = client.get_model_version(SHARED, "1").tags, client.get_model_version(SHARED, "2")
    assert one["identity.task"] == "text-classification"
    assert json.loads(one["identity.labels"]) == ["account", "billing", "shipping", "technical"]
    assert one["identity.source"] == "data/sample/support_tickets.csv"
    assert json.loads(two.tags["identity.labels"]) == ["neg", "pos"]
    assert one["identity.fingerprint"] != two.tags["identity.fingerprint"]
    assert len(one["identity.fingerprint"]) == 12


def test_a_champion_without_identity_tags_is_known_by_what_its_run_logged(project) -> None:
    # versions registered before nlpflow recorded identity: the run's params and the model's
    # own labels say what it is
    root, _ = project
    client = mlflow_client(root)
    for key in ("identity.task", "identity.labels", "identity.source", "identity.fingerprint"):
        client.delete_model_version_tag(SHARED, "1", key)
    with project_environment(root, SHARED):
        again = run_cli_pipeline(root, REVIEWS)["register"]
    assert again["version"] == 3 and again["promoted"] is False and again["refused"]
    assert f"labels {TICKET_LABELS}, source data/sample/support_tickets.csv" in again["reasons"]
    assert int(client.get_model_version_by_alias(SHARED, "champion").version) == 1


def test_names_following_the_data_give_each_dataset_its_own_champion(project) -> None:
    root, runs = project
    tickets, reviews = runs["tickets"], runs["reviews"]
    assert tickets["model_name"] == "nlpflow-support-tickets"
    assert reviews["model_name"] == "nlpflow-reviews"
    assert tickets["version"] == 1 and tickets["promoted"] is True
    assert reviews["version"] == 1 and reviews["promoted"] is True
    assert "derived from data.source" in reviews["name_line"]
    client = mlflow_client(root)
    # the reviews run left the tickets' champion where it was
    champion = client.get_model_version_by_alias("nlpflow-support-tickets", "champion")
    assert int(champion.version) == 1
    assert champion.tags["identity.source"] == "data/sample/support_tickets.csv"


def test_model_card_intended_use_comes_from_params(project) -> None:
    _, runs = project
    assert f"## Intended use\n{REVIEWS_USE}\n" in runs["shared_reviews_card"]
    unset = runs["tickets_card"]  # register.card.intended_use: null
    assert "customer-support" not in unset and "Route English" not in unset
    assert "Not stated: set `register.card.intended_use`" in unset
    assert "text-classification over the labels account, billing, shipping, technical" in unset


def test_registry_history_names_the_model_of_the_config_it_is_given(project) -> None:
    root, _ = project
    (root / "reviews.yaml").write_text("data:\n  source: data/reviews.csv\n")
    env = cli_environment(root, SHARED)
    env.pop("NLPFLOW_REGISTERED_MODEL")
    done = subprocess.run(["nlpflow", "registry", "history", "-c", "reviews.yaml"], cwd=root,
                          capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "nlpflow-reviews: champion v1" in done.stdout
    assert "registered model 'nlpflow-reviews' (derived from data.source" in done.stderr
