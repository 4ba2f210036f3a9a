"""Cached and resumable flow runs, and data-triggered skips, with real Prefect, MLflow and DVC.

One project (tfidf_logreg, seconds per run) goes through a sequence of runs; each test reads
the part of the sequence it is about.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from nlpflow.pipeline.fingerprint import hash_path
from nlpflow.pipeline.stages import MODEL, STAGE_NAMES
from tests.conftest import (
    _venv_env,
    fast_params,
    make_project,
    mlflow_client,
    project_environment,
)

pytestmark = pytest.mark.slow
MODEL_NAME = "cache-test-classifier"


def _params(**schedule: Any) -> str:
    tree = yaml.safe_load(fast_params(family="tfidf_logreg"))
    tree["schedule"].update(schedule)
    return yaml.safe_dump(tree, sort_keys=False)


def _run(root: Path, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
    from nlpflow.flows.training import training_flow

    state = training_flow(project_dir=str(root), return_state=True, **kwargs)
    return state, (state.result() if state.is_completed() else {})


@pytest.fixture(scope="module")
def sequence(prefect_api: str, tmp_path_factory: pytest.TempPathFactory):
    root = make_project(
        tmp_path_factory.mktemp("cache") / "project", _params(skip_unchanged_data=False)
    )
    runs: dict[str, Any] = {}
    remote = root.parent / "remote"
    with project_environment(root, MODEL_NAME) as env:
        env.setenv("NLPFLOW_DVC_REMOTE", str(remote))
        _, runs["first"] = _run(root)
        runs["first_model"] = hash_path(root / MODEL)
        runs["remote_status"] = subprocess.run(
            ["dvc", "status", "--cloud", "--remote", "nlpflow", "--json"],
            cwd=root, capture_output=True, text=True, env=_venv_env(),
        )  # fmt: skip
        runs["remote_files"] = sum(1 for p in remote.rglob("*") if p.is_file())
        _, runs["noop"] = _run(root)
        runs["dvc_status"] = subprocess.run(
            ["dvc", "status", "--quiet"], cwd=root, capture_output=True, text=True, env=_venv_env()
        )
        _, runs["evaluate_param"] = _run(root, overrides=["evaluate.worst_errors=3"])
        _, runs["other_model"] = _run(root, overrides=["train.tfidf.C=0.01"])
        runs["other_model_hash"] = hash_path(root / MODEL)
        _, runs["back"] = _run(root)
        runs["back_model"] = hash_path(root / MODEL)
        yield root, runs


def test_an_unchanged_rerun_reuses_every_stage(sequence) -> None:
    root, runs = sequence
    first, noop = runs["first"], runs["noop"]
    assert first["cached"] == [] and first["skipped"] is None
    assert noop["cached"] == list(STAGE_NAMES)
    assert noop["register"] == first["register"]  # the same registration, not a new version
    client = mlflow_client(root)
    assert len(client.search_model_versions(f"name='{MODEL_NAME}'")) >= 1
    tags = client.get_run(noop["run_id"]).data.tags
    assert tags["nlpflow.outcome"] == "completed"
    assert tags["nlpflow.cached.train"] == first["run_id"]  # where the outputs came from
    assert tags["nlpflow.cached_stages"] == ",".join(STAGE_NAMES)
    # dvc.lock still describes the outputs, though no stage ran (nor `dvc commit`)
    assert runs["dvc_status"].returncode == 0, runs["dvc_status"].stdout


def test_the_run_pushed_its_data_snapshot_and_models_to_the_dvc_remote(sequence) -> None:
    _, runs = sequence
    status = runs["remote_status"]
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout or "{}") == {}  # nothing local that the remote lacks
    assert runs["remote_files"] >= 5  # gathered splits, validated rows, the model, the baseline


def test_a_params_change_reruns_only_the_stages_reading_it(sequence) -> None:
    _, runs = sequence
    assert runs["evaluate_param"]["cached"] == [
        "gather",
        "validate",
        "preprocess",
        "train_params",
        "train",
        "baseline",
    ]
    assert runs["other_model"]["cached"] == ["gather", "validate", "preprocess"]


def test_outputs_overwritten_by_another_run_are_rebuilt_not_trusted(sequence) -> None:
    _, runs = sequence
    assert runs["other_model_hash"] != runs["first_model"]
    back = runs["back"]
    # train's result for these params is cached, but models/model now holds the C=0.01 model
    assert "train" not in back["cached"] and "evaluate" not in back["cached"]
    assert back["cached"][:3] == ["gather", "validate", "preprocess"]
    assert runs["back_model"] == runs["first_model"]  # rebuilt: the same bytes as at first
    assert back["evaluate"]["metrics"] == runs["first"]["evaluate"]["metrics"]


def test_a_run_failed_in_train_reruns_train_and_what_follows_only(
    prefect_api: str, tmp_path: Path
) -> None:
    root = make_project(tmp_path / "project", _params())
    (root / "models").mkdir()
    # a file where train writes its model folder before swapping it in (train.py: partial)
    (root / "models" / ".model.partial").write_text("a file where train writes its folder")
    with project_environment(root, "resume-classifier"):
        state, _ = _run(root)
        assert state.is_failed()
        client = mlflow_client(root)
        [failed_run] = client.search_runs([client.get_experiment_by_name("nlpflow").experiment_id])
        assert failed_run.info.status == "FAILED"
        (root / "models" / ".model.partial").unlink()
        state, retried = _run(root)
    assert state.is_completed()
    assert retried["cached"] == ["gather", "validate", "preprocess", "train_params"]
    tags = client.get_run(retried["run_id"]).data.tags
    assert tags["nlpflow.cached.preprocess"] == failed_run.info.run_id
    assert "nlpflow.cached.train" not in tags
    assert retried["register"]["version"] == 1


def _flow_run_message(state: Any) -> str:
    from prefect.client.orchestration import get_client

    async def read() -> str:
        async with get_client() as client:
            run = await client.read_flow_run(state.state_details.flow_run_id)
            artifacts = await client.read_artifacts()
            keys = {a.key for a in artifacts if a.flow_run_id == run.id}
            assert "nlpflow-skip" in keys
            return str(run.state.message)

    return asyncio.run(read())


def test_unchanged_data_skips_the_scheduled_run_and_says_why(sequence) -> None:
    root, _ = sequence
    (root / "params.yaml").write_text(_params(skip_unchanged_data=True))  # not a stage param
    client = mlflow_client(root)
    versions = len(client.search_model_versions(f"name='{MODEL_NAME}'"))
    with project_environment(root, MODEL_NAME):
        state, skipped = _run(root)
        assert skipped["skipped"] is not None
        assert "equal those of the last completed run" in skipped["skipped"]
        assert "train" not in skipped
        assert "Skipped: the gathered snapshot" in _flow_run_message(state)
        tags = client.get_run(skipped["run_id"]).data.tags
        assert tags["nlpflow.outcome"] == "skipped"
        assert tags["nlpflow.skip_reason"] == skipped["skipped"]
        # --force runs anyway
        _, forced = _run(root, force=True)
        assert forced["skipped"] is None and forced["cached"] == []
        # new rows: the snapshot changes, so the run trains
        data = root / "data/sample/support_tickets.csv"
        frame = pd.read_csv(data)
        extra = frame.sample(n=20, random_state=1).assign(text=lambda f: f["text"] + " (again)")
        pd.concat([frame, extra]).to_csv(data, index=False)
        _, fresh = _run(root)
    assert fresh["skipped"] is None
    assert "train" in fresh and "train" not in fresh["cached"]
    assert len(client.search_model_versions(f"name='{MODEL_NAME}'")) > versions
