"""Runs end in a true state: a run whose process was killed (kill -9) is closed as KILLED with
the reason, by `nlpflow doctor` or by the next run; a live run and another host's are never
touched; a resumed training names the attempt it continued."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import fast_params, make_project, mlflow_client, project_environment

pytestmark = pytest.mark.slow
MODEL = "doctor-classifier"

# a process that opens a run of the project as the pipeline does, says its id, and sleeps
OPEN_RUN = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from nlpflow.config.params import load_params
    from nlpflow.pipeline.runs import make_context, open_run
    from nlpflow.config.settings import load_settings
    root = Path(sys.argv[1])
    ctx = make_context(root, load_params(root / "params.yaml"), load_settings())
    print(open_run(ctx, runner="test"), flush=True)
    time.sleep(600)
    """
)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(
        tmp_path_factory.mktemp("doctor") / "project", fast_params(family="tfidf_logreg")
    )


def _env(root: Path, venv_env: dict[str, str]) -> dict[str, str]:
    return venv_env | {"NLPFLOW_PROJECT_DIR": str(root), "NLPFLOW_REGISTERED_MODEL": MODEL}


def _open_run(root: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen([sys.executable, "-c", OPEN_RUN, str(root)], env=env,
                               stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def _run_of(root: Path, pid: int) -> Any | None:
    client = mlflow_client(root)
    experiments = [e.experiment_id for e in client.search_experiments()]
    found = client.search_runs(experiments, filter_string=f"tags.`nlpflow.pid` = '{pid}'")
    return found[0] if found else None


def _trained(root: Path, pid: int) -> bool:
    """The run of `pid` finished preprocess: it is in train, baseline or evaluate now."""
    run = _run_of(root, pid)
    return run is not None and "perf/preprocess_texts_per_second" in run.data.metrics


def test_doctor_closes_a_killed_run_as_killed_and_leaves_live_and_other_hosts_runs(
    project: Path, venv_env: dict[str, str]
) -> None:
    env = _env(project, venv_env)
    killed = subprocess.Popen(["nlpflow", "run", "--force"], cwd=project, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 300
    while not _trained(project, killed.pid):
        assert killed.poll() is None and time.monotonic() < deadline, "the run never trained"
        time.sleep(0.1)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    live, live_run = _open_run(project, env)
    client = mlflow_client(project)
    elsewhere, elsewhere_run = _open_run(project, env)
    elsewhere.kill()
    elsewhere.wait()
    client.set_tag(elsewhere_run, "nlpflow.host", "another-host")  # its process is not ours
    try:
        run = _run_of(project, killed.pid)
        assert run is not None and run.info.status == "RUNNING"  # what kill -9 leaves

        def doctor(*args: str) -> str:
            done = subprocess.run(["nlpflow", "doctor", *args], cwd=project, env=env,
                                  capture_output=True, text=True, timeout=300)  # fmt: skip
            assert done.returncode == 0, done.stderr[-3000:]
            return done.stdout

        said = doctor("--dry-run")
        assert f"process {killed.pid}" in said and "would be closed as KILLED" in said
        assert client.get_run(run.info.run_id).info.status == "RUNNING"  # a dry run changes nothing

        said = doctor()
        closed = client.get_run(run.info.run_id)
        assert closed.info.status == "KILLED"
        reason = closed.data.tags["nlpflow.closed_reason"]
        assert f"process {killed.pid} on " in reason and "closed by nlpflow doctor" in reason
        assert client.get_run(live_run).info.status == "RUNNING"  # its process still runs
        assert client.get_run(elsewhere_run).info.status == "RUNNING"  # not this host's to judge
        assert "another-host" in said and "lock    free" in said
    finally:
        live.kill()
        live.wait()


def test_the_next_run_closes_runs_whose_process_died(
    project: Path, venv_env: dict[str, str]
) -> None:
    from nlpflow.config.params import load_params
    from nlpflow.config.settings import load_settings
    from nlpflow.pipeline.runs import locked_project, make_context

    process, run_id = _open_run(project, _env(project, venv_env))
    process.send_signal(signal.SIGKILL)
    process.wait()
    with project_environment(project, MODEL):
        ctx = make_context(project, load_params(project / "params.yaml"), load_settings())
        with locked_project(ctx):  # what every run does first
            closed = mlflow_client(project).get_run(run_id)
    assert closed.info.status == "KILLED"
    assert "closed by the next run" in closed.data.tags["nlpflow.closed_reason"]


def test_a_resumed_training_names_the_attempt_it_continues(tmp_path: Path) -> None:
    from nlpflow.training.train import _note_attempt

    work = tmp_path / "checkpoints" / "key"
    assert _note_attempt(work, "first-try") is None  # nothing before it
    assert _note_attempt(work, "first-try") is None  # Prefect's task retry: the same run
    assert _note_attempt(work, "second-try") == "first-try"  # killed, then run again


def test_a_version_registered_by_a_killed_run_is_withdrawn_and_the_aliases_given_back(
    project: Path, venv_env: dict[str, str]
) -> None:
    from nlpflow.config.params import load_params
    from nlpflow.config.settings import load_settings
    from nlpflow.pipeline.runs import locked_project, make_context
    from nlpflow.release.champion import CHALLENGER, CHAMPION, PREVIOUS, aliases_of

    name = "killed-after-register"
    process, run_id = _open_run(project, _env(project, venv_env))
    client = mlflow_client(project)
    client.create_registered_model(name)
    client.create_model_version(name, "file:///nowhere")  # v1: the champion until then
    client.set_registered_model_alias(name, CHAMPION, "1")
    client.set_registered_model_alias(name, CHALLENGER, "1")
    # v2, as register leaves it: where the aliases were, then both moved to it (promoted)
    previous = {f"{PREVIOUS}{CHAMPION}": "1", f"{PREVIOUS}{CHALLENGER}": "1"}
    client.create_model_version(name, "file:///nowhere", run_id=run_id, tags=previous)
    client.set_registered_model_alias(name, CHAMPION, "2")
    client.set_registered_model_alias(name, CHALLENGER, "2")
    process.send_signal(signal.SIGKILL)  # killed before its run could finish
    process.wait()
    with project_environment(project, MODEL):
        ctx = make_context(project, load_params(project / "params.yaml"), load_settings())
        with locked_project(ctx):
            assert ctx.tracker is not None
            assert aliases_of(ctx.tracker, name) == {CHAMPION: 1, CHALLENGER: 1}
    assert [int(v.version) for v in client.search_model_versions(f"name = '{name}'")] == [1]
    run = client.get_run(run_id)
    assert run.info.status == "KILLED"
    assert "its run was killed" in run.data.tags["registry.withdrawn"]
