"""Runs that overlap in one project, as real processes: they take turns (nlpflow.pipeline.locking),
never interleave, and every registered version holds the model its own run trained.

Also: two processes creating a fresh SQLite tracking store at once, and register refusing a
model folder its train stage did not write, or withdrawing a version when it fails after it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import fast_params, make_project, mlflow_client, project_environment

pytestmark = pytest.mark.slow
MODEL = "overlap-classifier"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(
        tmp_path_factory.mktemp("overlap") / "project", fast_params(family="tfidf_logreg")
    )


def _env(root: Path, venv_env: dict[str, str], **extra: str) -> dict[str, str]:
    return venv_env | {"NLPFLOW_PROJECT_DIR": str(root), "NLPFLOW_REGISTERED_MODEL": MODEL} | extra


def _start(root: Path, env: dict[str, str], *args: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, cwd=root, env=env, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT)  # fmt: skip


def _wait_until(check: Any, *, what: str, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.2)


def _holder_pid(root: Path) -> int | None:
    from nlpflow.pipeline.locking import read_holder

    holder = read_holder(root)
    return int(holder["pid"]) if holder else None


def _runs(root: Path) -> list[Any]:
    client = mlflow_client(root)
    experiments = [e.experiment_id for e in client.search_experiments()]
    return list(client.search_runs(experiments, filter_string="tags.`nlpflow.runner` != ''"))


def _registered_model_matches_its_run(root: Path, version: Any) -> None:
    """The version's files are the model its run trained: fingerprint and trained params."""
    import mlflow.artifacts

    client = mlflow_client(root)
    run = client.get_run(version.run_id)
    assert version.tags["model_sha256"] == run.data.tags["nlpflow.model_sha256"]
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=version.source,
                                                      tracking_uri=f"sqlite:///{root / 'mlflow.db'}"))  # fmt: skip
    manifest = json.loads(next(local.rglob("nlpflow.json")).read_text())
    trained = manifest["train"]["tfidf"]["max_features"]
    assert str(trained) == run.data.params["train.tfidf.max_features"], version.version


def test_two_runs_at_once_take_turns_and_a_no_wait_run_refuses_naming_the_holder(
    project: Path, venv_env: dict[str, str], tmp_path: Path
) -> None:
    env = _env(project, venv_env)
    first = _start(project, env, "nlpflow", "run", "--force", "--set",
                   "train.tfidf.max_features=50", log=tmp_path / "first.log")  # fmt: skip
    _wait_until(lambda: _holder_pid(project) == first.pid, what="the first run to hold the lock")
    second = _start(project, env, "nlpflow", "run", "--force", "--set",
                    "train.tfidf.max_features=3000", log=tmp_path / "second.log")  # fmt: skip
    refused = subprocess.run(
        ["nlpflow", "run", "--force", "--no-wait", "--set", "train.tfidf.max_features=7"],
        cwd=project, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert first.wait(timeout=600) == 0, (tmp_path / "first.log").read_text()[-3000:]
    assert second.wait(timeout=600) == 0, (tmp_path / "second.log").read_text()[-3000:]

    said = refused.stdout + refused.stderr
    assert refused.returncode != 0
    assert f"pid {first.pid}" in said and "max_features=50" in said and "Traceback" not in said
    assert (
        f"waiting for `nlpflow run --force --set train.tfidf.max_features=50` (pid {first.pid}"
        in (tmp_path / "second.log").read_text()
    )
    runs = {r.data.params["train.tfidf.max_features"]: r for r in _runs(project)}
    assert set(runs) == {"50", "3000"}  # the refused run opened nothing
    assert all(r.info.status == "FINISHED" for r in runs.values())
    assert runs["3000"].info.start_time >= runs["50"].info.end_time  # one after the other
    versions = mlflow_client(project).search_model_versions(f"name = '{MODEL}'")
    assert len(versions) == 2
    for version in versions:
        _registered_model_matches_its_run(project, version)


def test_a_run_started_during_dvc_repro_waits_for_the_whole_repro(
    project: Path, venv_env: dict[str, str], tmp_path: Path
) -> None:
    """dvc repro runs a process per stage; a run started between two of them must wait for
    the dvc process, not slip in between its stages."""
    env = _env(project, venv_env)
    log = tmp_path / "repro.log"
    repro = _start(project, env, "dvc", "repro", log=log)
    _wait_until(lambda: "Running stage 'preprocess'" in log.read_text(), what="dvc's third stage")
    flow = _start(project, env, "nlpflow", "run", log=tmp_path / "flow.log")
    assert repro.wait(timeout=600) == 0, log.read_text()[-3000:]
    assert flow.wait(timeout=600) == 0, (tmp_path / "flow.log").read_text()[-3000:]

    runs = _runs(project)
    dvc_run = next(r for r in runs if r.data.tags["nlpflow.runner"] == "dvc")
    flow_run = max(
        (r for r in runs if r.data.tags["nlpflow.runner"] == "prefect"),
        key=lambda r: r.info.start_time,
    )
    assert dvc_run.info.status == "FINISHED" and flow_run.info.status == "FINISHED"
    assert flow_run.info.start_time >= dvc_run.info.end_time
    status = subprocess.run(["dvc", "status", "--quiet"], cwd=project, env=env, timeout=300)
    assert status.returncode == 0  # dvc.lock describes the outputs on disk


def test_register_refuses_a_model_its_train_stage_did_not_write(project: Path) -> None:
    from nlpflow.config.params import load_params
    from nlpflow.config.settings import load_settings
    from nlpflow.pipeline.runs import make_context, open_run
    from nlpflow.pipeline.stages import EVALUATION, GATHERED, METRICS, MODEL_CARD, REGISTRATION
    from nlpflow.pipeline.stages import MODEL as MODEL_DIR
    from nlpflow.release.registry import ModelChangedError, register

    with project_environment(project, MODEL):
        params = load_params(project / "params.yaml")
        ctx = make_context(project, params, load_settings())
        run_id = open_run(ctx, runner="test")
        before = len(mlflow_client(project).search_model_versions(f"name = '{MODEL}'"))
        with pytest.raises(ModelChangedError, match="another run overwrote it"):
            register(
                model_dir=ctx.path(MODEL_DIR), metrics_path=ctx.path(METRICS),
                evaluation=ctx.path(EVALUATION), dst=ctx.path(REGISTRATION),
                card=ctx.path(MODEL_CARD), params=params, tracker=ctx.tracker, run_id=run_id,
                model_name=MODEL, data_manifest=ctx.path(GATHERED) / "manifest.json",
                expected_model_sha256="0" * 64,
            )  # fmt: skip
        client = mlflow_client(project)
        assert len(client.search_model_versions(f"name = '{MODEL}'")) == before
        assert (
            "another run overwrote it"
            in client.get_run(run_id).data.tags["registry.not_registered"]
        )


def test_a_register_that_fails_after_registering_withdraws_the_version(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nlpflow.release.registry as registry
    from nlpflow.config.params import load_params
    from nlpflow.config.settings import load_settings
    from nlpflow.pipeline.fingerprint import hash_path
    from nlpflow.pipeline.runs import make_context, open_run
    from nlpflow.pipeline.stages import EVALUATION, GATHERED, METRICS, MODEL_CARD, REGISTRATION
    from nlpflow.pipeline.stages import MODEL as MODEL_DIR

    def disk_full(*_: Any, **__: Any) -> None:  # the card is written after the version exists
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(registry, "_write_card", disk_full)
    with project_environment(project, MODEL):
        params = load_params(project / "params.yaml")
        ctx = make_context(project, params, load_settings())
        run_id = open_run(ctx, runner="test")
        client = mlflow_client(project)
        champion = client.get_model_version_by_alias(MODEL, "champion").version
        count = len(client.search_model_versions(f"name = '{MODEL}'"))
        with pytest.raises(OSError, match="No space left"):
            registry.register(
                model_dir=ctx.path(MODEL_DIR), metrics_path=ctx.path(METRICS),
                evaluation=ctx.path(EVALUATION), dst=ctx.path(REGISTRATION),
                card=ctx.path(MODEL_CARD), params=params, tracker=ctx.tracker, run_id=run_id,
                model_name=MODEL, data_manifest=ctx.path(GATHERED) / "manifest.json",
                expected_model_sha256=hash_path(ctx.path(MODEL_DIR)),
            )  # fmt: skip
        versions = client.search_model_versions(f"name = '{MODEL}'")
        assert len(versions) == count and all(v.run_id != run_id for v in versions)
        assert client.get_model_version_by_alias(MODEL, "champion").version == champion
        assert "No space left" in client.get_run(run_id).data.tags["registry.withdrawn"]


CREATE_STORE = textwrap.dedent(
    """
    import os, sys, time
    os.environ["NLPFLOW_PROJECT_DIR"] = sys.argv[1]
    from nlpflow.config.settings import load_settings
    from nlpflow.tracking.tracker import Tracker
    while time.time() < float(sys.argv[2]):
        time.sleep(0.001)
    print(Tracker(load_settings()).experiment_id("race"))
    """
)


def test_processes_creating_a_fresh_tracking_store_at_once_all_succeed(tmp_path: Path) -> None:
    """MLflow migrates a fresh SQLite store on first use; at once, alembic's migrations
    collided ("Online migration expected to match one row", "duplicate column name")."""
    go = time.time() + 8  # every process imported MLflow by then
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", CREATE_STORE, str(tmp_path), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    results = [p.communicate(timeout=300) for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0], [err[-2000:] for _, err in results]
    assert {out.strip() for out, _ in results} == {"1"}  # one experiment, created once
