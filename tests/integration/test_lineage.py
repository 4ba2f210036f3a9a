"""`nlpflow lineage` against a real MLflow registry (SQLite), after the real stages.

The pipeline runs once as `dvc repro` would (one `nlpflow stage` run per stage, each stage
committed to dvc.lock), so the registered version's run carries git, data and dvc.lock tags.
The CLI runs as a subprocess; every value it prints is checked against MLflow, git, the
gathered manifest and dvc.lock directly.
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import fast_params, make_project, mlflow_client, project_environment

pytestmark = pytest.mark.slow
MODEL = "lineage-test-classifier"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from nlpflow.config.params import load_params
    from nlpflow.config.settings import load_settings
    from nlpflow.pipeline.runs import make_context, record_dvc_stage, run_cli_stage
    from nlpflow.pipeline.stages import STAGE_NAMES

    root = make_project(
        tmp_path_factory.mktemp("lineage") / "project", fast_params(family="tfidf_logreg")
    )
    with project_environment(root, MODEL):
        ctx = make_context(root, load_params(root / "params.yaml"), load_settings())
        for name in STAGE_NAMES:
            report = run_cli_stage(name, ctx)
            if name != STAGE_NAMES[-1]:  # dvc.lock as `dvc repro` leaves it before register
                record_dvc_stage(root, name)
        yield root, report.model_dump()


def _cli(root: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = env | {"NLPFLOW_PROJECT_DIR": str(root), "NLPFLOW_REGISTERED_MODEL": MODEL}
    env.pop("NLPFLOW_TRACKING_URI", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(
        ["nlpflow", *args], cwd=root, capture_output=True, text=True, env=env, timeout=300
    )


def _dvc_lock_hashes(root: Path) -> dict[str, str]:
    """md5 of every data and model path dvc.lock records (code files left out)."""
    stages = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    return {
        entry["path"]: entry["md5"]
        for stage in stages.values()
        for entry in [*stage.get("deps", []), *stage.get("outs", [])]
        if "md5" in entry and not entry["path"].endswith(".py")
    }


@pytest.fixture(scope="module")
def lineage_json(project: Any) -> dict[str, Any]:
    from tests.conftest import _venv_env

    root, _ = project
    done = _cli(root, "lineage", f"{MODEL}@champion", "--json", env=_venv_env())
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_json_names_the_version_its_run_and_gate_as_mlflow_holds_them(
    project: Any, lineage_json: dict[str, Any]
) -> None:
    root, register = project
    client = mlflow_client(root)
    version = client.get_model_version(MODEL, str(register["version"]))
    run = client.get_run(version.run_id)
    model, got_run = lineage_json["model"], lineage_json["run"]
    assert (model["name"], model["version"]) == (MODEL, register["version"])
    assert model["aliases"] == ["challenger", "champion"]
    created = datetime.fromtimestamp(version.creation_timestamp / 1000, UTC)
    assert model["created"] == created.isoformat(timespec="seconds")
    assert model["gate_decision"] == version.tags["gate.decision"] == "promoted"
    assert model["gate_reasons"] == version.tags["gate.reasons"]
    assert got_run["run_id"] == version.run_id == register["run_id"]
    assert got_run["experiment_id"] == run.info.experiment_id
    assert got_run["experiment"] == client.get_experiment(run.info.experiment_id).name
    assert got_run["status"] == "FINISHED" and got_run["end"] >= got_run["start"]


def test_json_code_data_and_params_equal_git_the_manifest_dvc_lock_and_the_run(
    project: Any, lineage_json: dict[str, Any]
) -> None:
    root, register = project
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert lineage_json["code"] == {"git_commit": head, "git_dirty": False}
    data = lineage_json["data"]
    manifest = json.loads((root / "data/gathered/manifest.json").read_text())
    assert data["source_sha256"] == manifest["source_sha256"]
    assert data["dvc"] == _dvc_lock_hashes(root)
    assert {"data/gathered", "models/model"} <= set(data["dvc"])
    version = mlflow_client(root).get_model_version(MODEL, str(register["version"]))
    assert data["test_set_sha256"] == version.tags["test_set_sha256"]
    params = lineage_json["params"]
    assert params == mlflow_client(root).get_run(register["run_id"]).data.params
    assert list(params) == sorted(params)
    assert params["train.family"] == "tfidf_logreg"
    assert lineage_json["orchestration"] == {"runner": "dvc", "prefect_flow_run_id": None}


def test_human_output_defaults_to_the_champion_and_shows_run_commit_and_params(
    project: Any, lineage_json: dict[str, Any], venv_env: dict[str, str]
) -> None:
    root, _ = project
    done = _cli(root, "lineage", env=venv_env)  # NLPFLOW_REGISTERED_MODEL@champion
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert f"{MODEL} version {lineage_json['model']['version']}" in text
    assert lineage_json["run"]["run_id"] in text
    assert f"{lineage_json['code']['git_commit']} (clean)" in text
    assert lineage_json["data"]["source_sha256"] in text
    assert "none (run by dvc repro / nlpflow stage)" in text
    assert "train.family = tfidf_logreg" in text
    by_number = _cli(root, "lineage", f"{MODEL}/1", "--json", env=venv_env)
    assert by_number.returncode == 0, by_number.stderr
    assert json.loads(by_number.stdout) == lineage_json


def test_unknown_alias_version_or_model_exit_2_with_what_exists(
    project: Any, venv_env: dict[str, str]
) -> None:
    root, _ = project
    for spec, says in [
        (f"{MODEL}@production", "has no alias 'production' (aliases: @challenger -> version 1"),
        (f"{MODEL}/7", "has no version 7 (versions: 1)"),
        ("no-such-model@champion", "no registered model 'no-such-model'"),
    ]:
        done = _cli(root, "lineage", spec, env=venv_env)
        assert done.returncode == 2, (spec, done.stdout, done.stderr)
        assert "[NLP008]" in done.stderr and says in done.stderr, done.stderr
        assert "Traceback" not in done.stderr and done.stdout == ""


def test_load_lineage_refuses_a_version_that_does_not_exist(project: Any) -> None:
    from nlpflow.config.settings import load_settings
    from nlpflow.errors import RegistryError
    from nlpflow.release.lineage import load_lineage
    from nlpflow.tracking.tracker import Tracker

    root, _ = project
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NLPFLOW_PROJECT_DIR", str(root))
        tracker = Tracker(load_settings())
    with pytest.raises(RegistryError, match="has no version 9"):
        load_lineage(tracker, MODEL, 9)
