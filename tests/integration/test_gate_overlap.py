"""A new split seed puts the champion's training rows into the challenger's test set: the gate
finds them through the real stages and a real MLflow registry (SQLite), and judges both models
on the test rows the champion never saw, saying so in the decision."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import (
    fast_params,
    make_project,
    mlflow_client,
    project_environment,
    run_cli_pipeline,
)

pytestmark = pytest.mark.slow
MODEL = "overlap-test-classifier"


def _normal(text: str) -> str:
    return " ".join(str(text).casefold().split())


def test_a_champion_that_trained_on_test_rows_is_judged_on_the_rest(tmp_path: Path) -> None:
    root = make_project(tmp_path / "project", fast_params(family="tfidf_logreg"))
    with project_environment(root, MODEL):
        first = run_cli_pipeline(root, [])
        seen = tmp_path / "seen"  # what v1 trained on, before the next run replaces it
        shutil.copytree(root / "data/processed", seen)
        second = run_cli_pipeline(root, ["data.split.seed=99"])
    client = mlflow_client(root)
    run = first["register"]["run_id"]
    logged = {a.path for a in client.list_artifacts(run, "registration")}
    assert "registration/train_text_hashes.txt.gz" in logged

    trained = {_normal(t) for split in ("train", "validation")
               for t in pd.read_parquet(seen / f"{split}.parquet")["raw_text"]}  # fmt: skip
    test = pd.read_parquet(root / "reports/evaluation/predictions.parquet")["raw_text"]
    overlap = sum(_normal(t) in trained for t in test)
    assert 20 < overlap < len(test) - 20  # the new seed moved many, not all, of v1's rows

    reg = second["register"]
    assert reg["version"] == 2 and reg["previous_champion"] == 1
    said = (
        f"champion v1 trained on {overlap} of the {len(test)} test rows; both compared on the "
        f"remaining {len(test) - overlap}"
    )
    checks = {c["name"]: c for c in reg["checks"]}
    assert checks["overlap"]["passed"] and checks["overlap"]["reason"] == said
    assert (
        f"on the {len(test) - overlap} test rows it did not train on"
        in (checks["margin"]["reason"])
    )
    assert said in reg["reasons"]
    tags = client.get_model_version(MODEL, "2").tags
    values = json.loads(tags["gate.metrics"])
    assert values["champion_trained_on"] == overlap
    assert values["compared_rows"] == len(test) - overlap
    assert said in tags["gate.reasons"]
