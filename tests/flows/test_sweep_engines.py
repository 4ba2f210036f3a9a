"""The sweep on Dask and Ray clusters, as a user runs it against remote ones: `nlpflow sweep` with
NLPFLOW_ENGINE=dask://127.0.0.1:PORT (a Dask LocalCluster of 2 worker processes the test
starts) and NLPFLOW_ENGINE=ray://127.0.0.1:PORT (a Ray head the test starts with
`ray start --head`, reached through the Ray client), against the processes runner on the same
seed. Prefect, Optuna, MLflow, Dask and Ray all real.

    .venv/bin/python -m pytest tests/flows/test_sweep_engines.py -q

8 tf-idf trials, 2 at a time, median pruning. The trials' values do not depend on where they
ran (tf-idf fits are deterministic and the first 10 trials of TPE are random draws from the
seed, asked in order), so every runner must find the same best trial. Which trials are pruned
depends on timing (which trials completed before a trial reports); that at least one is, the
space makes certain (see SPACE).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from nlpflow.training.sweep import SWEEP_DIR
from tests.conftest import (
    cli_environment,
    fast_params,
    make_project,
    mlflow_client,
    project_environment,
)

pytestmark = pytest.mark.slow
MODEL = "engines-classifier"
# macro-F1 on the sample's validation split (tfidf_logreg): C=1e-4 predicts the majority class
# (0.10), the others score 0.83 to 0.96 with a single best, C=0.3 on unigrams (0.957).
# Seed 5 draws (3.0,1) (0.03,1) (0.03,2) (3.0,2) (1e-4,1) (0.3,1) (3.0,1) (3.0,2): the best
# is trial 5, and trials 0 and 1, the two that start together, are good. Why a trial is then
# certainly pruned: the first bad trial to report was asked after a trial ended, and the
# first trial to end completed (nothing had completed before it reported); every trial
# completed before the bad one reports is good (a bad one completes only after reporting), so
# it reports below the median of at least one completed trial and the pruner stops it.
SPACE = {
    "tfidf.C": {"type": "categorical", "choices": [1e-4, 0.03, 0.3, 3.0]},
    "tfidf.ngram_max": {"type": "int", "low": 1, "high": 2},
}
SWEEP = {"metric": "val_macro_f1", "seed": 5, "n_trials": 8, "parallelism": 2, "pruner": "median",
         "pruner_startup_trials": 1, "pruner_warmup_epochs": 0, "space": SPACE}  # fmt: skip


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, *, seconds: float, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ray start exited {proc.returncode}: {log.read_text()[-3000:]}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {seconds:.0f} s")


def _group_alive(pgid: int) -> list[str]:
    """The processes of a process group still running (zombies are gone already)."""
    ps = subprocess.run(["ps", "-eo", "pgid=,stat=,pid=,comm="], capture_output=True, text=True)
    rows = [line.split(None, 3) for line in ps.stdout.splitlines()]
    return [" ".join(r) for r in rows if len(r) == 4 and int(r[0]) == pgid and "Z" not in r[1]]


@pytest.fixture(scope="module")
def project(prefect_api: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    tree = yaml.safe_load(fast_params(family="tfidf_logreg", epochs=1))
    tree["sweep"] = SWEEP
    text = yaml.safe_dump(tree, sort_keys=False)
    root = make_project(tmp_path_factory.mktemp("engines") / "project", text)
    with project_environment(root, MODEL):
        yield root


@pytest.fixture(scope="module")
def processes(project: Path) -> dict[str, Any]:
    """The reference: the processes runner (no cluster), run as test_sweep.py runs the flow."""
    from nlpflow.flows.sweep import sweep_flow

    sets = ["sweep.study=processes", "sweep.runner=processes",
            "sweep.output=reports/sweep/processes.yaml"]  # fmt: skip
    return sweep_flow(project_dir=str(project), overrides=sets)


@pytest.fixture(scope="module")
def dask_cluster(prefect_api: str) -> Iterator[Any]:
    """A Dask cluster of 2 worker processes (1 thread each) on loopback; stopped, with its
    worker processes, however the tests end."""
    from distributed import Client, LocalCluster

    from nlpflow.tasks.engine import environment_kept

    # the nanny's OMP_NUM_THREADS=1 & co. stay out of this process (later tests' subprocesses)
    with environment_kept():
        cluster = LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
            scheduler_port=0, dashboard_address="127.0.0.1:0",
        )  # fmt: skip
        with Client(cluster) as client:
            pids = set(client.run(os.getpid).values())
        try:
            yield cluster
        finally:
            cluster.close()
    time.sleep(1)
    leaked = [pid for pid in pids if _alive(pid)]
    assert not leaked, f"Dask worker processes left running: {leaked}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ", 1)[1].startswith("Z"))


@dataclass
class RayHead:
    client_port: int
    dashboard_port: int

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"


@pytest.fixture(scope="module")
def ray_head(cli_env: dict[str, str]) -> Iterator[RayHead]:
    """`ray start --head --block` in its own process group, every port chosen free (other Ray
    instances on the machine keep theirs) and its own temp dir (never `ray stop`: it stops
    every Ray of the machine's user). Stopped by signalling its group, which holds the GCS,
    raylet, dashboard, client server and workers; the test fails if any survives."""
    temp = tempfile.mkdtemp(prefix="nlpflow-ray-", dir="/tmp")  # sockets: short paths
    client_port, dashboard_port = _free_port(), _free_port()
    ray = str(Path(sys.executable).parent / "ray")
    command = [ray, "start", "--head", "--block", "--disable-usage-stats",
               "--node-ip-address=127.0.0.1", f"--port={_free_port()}",
               f"--ray-client-server-port={client_port}", "--include-dashboard=true",
               "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}",
               f"--dashboard-agent-listen-port={_free_port()}",
               f"--dashboard-agent-grpc-port={_free_port()}", f"--metrics-export-port={_free_port()}",
               f"--runtime-env-agent-port={_free_port()}", "--num-cpus=2",
               "--object-store-memory=100000000", f"--temp-dir={temp}"]  # fmt: skip
    log = Path(temp) / "ray-start.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(command, env=cli_env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    try:
        _wait_for_port(client_port, seconds=180, proc=proc, log=log)
        _wait_for_port(dashboard_port, seconds=60, proc=proc, log=log)
        yield RayHead(client_port, dashboard_port)
    finally:
        _stop_group(proc)
        shutil.rmtree(temp, ignore_errors=True)
    assert not _group_alive(proc.pid), _group_alive(proc.pid)


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the group (ray start --block stops what it started), SIGKILL to what is left."""
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        deadline = time.monotonic() + wait
        while _group_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.5)
            proc.poll()  # reaps the leader
        if not _group_alive(proc.pid):
            break
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


@pytest.fixture(scope="module")
def cli_env(project: Path, prefect_api: str) -> dict[str, str]:
    # RAY_AUTH_MODE: Ray 2.60 turns token auth on for `ray start` once a token file exists
    # (~/.ray/auth_token, written by any local ray.init on the machine), and its client then
    # times out unauthenticated; the head and the client of this test run without it
    return cli_environment(project, MODEL) | {
        "PREFECT_API_URL": prefect_api, "RAY_AUTH_MODE": "disabled",
    }  # fmt: skip


def _cli_sweep(
    env: dict[str, str], project: Path, sets: list[str]
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["nlpflow", "sweep", *(arg for s in sets for arg in ("--set", s))], cwd=project,
        capture_output=True, text=True, env=env, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done


def _load_study(root: Path, name: str) -> Any:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    journal = root / SWEEP_DIR / name / "journal.log"
    return optuna.load_study(
        study_name=name, storage=JournalStorage(JournalFileBackend(str(journal)))
    )


def _sweep_run(root: Path, study: str) -> Any:
    client = mlflow_client(root)
    experiment = client.get_experiment_by_name("nlpflow-sweep")
    (run,) = client.search_runs(
        [experiment.experiment_id],
        f"tags.`sweep.study` = '{study}' and attributes.run_name = '{study}'",
    )
    return run


def _check_trials(root: Path, study_name: str) -> tuple[Any, list[Any], Any]:
    """The study, its trials' MLflow runs and the sweep's run; asserts each trial is a run
    nested under the sweep's, ending as its trial did, and that at least one was pruned."""
    client = mlflow_client(root)
    parent = _sweep_run(root, study_name)
    assert parent.info.status == "FINISHED"
    study = _load_study(root, study_name)
    runs = client.search_runs(
        [parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
    )
    assert len(study.trials) == len(runs) == 8
    by_id = {r.info.run_id: r for r in runs}
    for trial in study.trials:
        run = by_id[trial.user_attrs["mlflow_run_id"]]
        assert run.data.tags["sweep.trial"] == str(trial.number)
        assert run.data.tags["sweep.state"] == trial.state.name
        status = {"COMPLETE": "FINISHED", "PRUNED": "KILLED"}[trial.state.name]
        assert run.info.status == status, (trial.number, run.info.status)
        assert float(run.data.params["train.tfidf.C"]) == pytest.approx(trial.params["tfidf.C"])
    states = [t.state.name for t in study.trials]
    assert "PRUNED" in states, states  # certain with this space and seed (see SPACE)
    pruned = [t for t in study.trials if t.state.name == "PRUNED"]
    assert all(t.last_step == 1 for t in pruned)  # stopped at its one epoch's report
    assert parent.data.metrics["trials/pruned"] == len(pruned)
    return study, runs, parent


def _same_trials_as(reference: Any, study: Any) -> None:
    """Trial by trial the same values and scores as the reference, and the same best trial."""
    ours = {t.number: (t.params, t.intermediate_values[1]) for t in study.trials}
    theirs = {t.number: (t.params, t.intermediate_values[1]) for t in reference.trials}
    assert ours == theirs
    assert study.best_trial.number == reference.best_trial.number == 5
    assert study.best_trial.params == reference.best_trial.params
    assert study.best_trial.value == reference.best_trial.value


def _flow_run_log(flow_run_id: str) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    with get_client(sync_client=True) as client:
        logs = client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
        )
    return [log.message for log in logs]


def _worker_pids(runs: list[Any]) -> set[int]:
    hosts_pids = [r.data.tags["sweep.worker"].rsplit(":", 1) for r in runs]
    assert {host for host, _ in hosts_pids} == {socket.gethostname()}
    return {int(pid) for _, pid in hosts_pids}


def test_processes_runner_is_the_reference(processes: dict[str, Any], project: Path) -> None:
    study, runs, parent = _check_trials(project, "processes")
    assert processes["engine"] == "processes (2 processes)" and "dashboard" not in processes
    assert processes["best_trial"] == study.best_trial.number == 5
    assert processes["best_params"] == {"tfidf.C": 0.3, "tfidf.ngram_max": 1}
    assert parent.data.tags["sweep.best_run_id"] == study.best_trial.user_attrs["mlflow_run_id"]
    pids = _worker_pids(runs)
    assert os.getpid() not in pids and len(pids) <= 2  # the pool's processes


def test_sweep_on_a_dask_cluster_by_address(
    processes: dict[str, Any], dask_cluster: Any, project: Path, cli_env: dict[str, str]
) -> None:
    from distributed import Client

    scheduler = dask_cluster.scheduler_address  # tcp://127.0.0.1:PORT
    env = cli_env | {"NLPFLOW_ENGINE": scheduler.replace("tcp://", "dask://")}
    sets = ["sweep.study=dask", "sweep.runner=engine", "sweep.output=reports/sweep/dask.yaml"]
    done = _cli_sweep(env, project, sets)
    study, runs, parent = _check_trials(project, "dask")
    _same_trials_as(_load_study(project, "processes"), study)
    with Client(scheduler) as client:  # the trials ran in the cluster's worker processes
        assert _worker_pids(runs) <= set(client.run(os.getpid).values())
    # the dashboard: in the flow run's log when the trials start, and in the CLI's summary
    dashboard = dask_cluster.dashboard_link
    assert dashboard.startswith("http://127.0.0.1:") and dashboard.endswith("/status")
    log = _flow_run_log(parent.data.tags["prefect.flow_run_id"])
    assert f"trials run on dask at {scheduler}" in log
    assert f"Dask dashboard: {dashboard}" in log
    assert f"Dask dashboard: {dashboard}" in done.stderr  # the same log line, on the console
    assert f"trials ran on dask at {scheduler}\n  dashboard: {dashboard}\n" in done.stdout
    with urllib.request.urlopen(dashboard, timeout=30) as page:  # it is the cluster's
        assert page.status == 200
    best = yaml.safe_load((project / "reports/sweep/dask.yaml").read_text())
    assert best["train"]["tfidf"] == {"C": 0.3, "ngram_max": 1}


def test_sweep_on_a_ray_cluster_through_the_ray_client(
    processes: dict[str, Any], ray_head: RayHead, project: Path, cli_env: dict[str, str]
) -> None:
    from ray.util.state import list_workers

    address = f"ray://127.0.0.1:{ray_head.client_port}"
    # sweep.runner: ray takes its address from NLPFLOW_ENGINE when that names a Ray cluster
    env = cli_env | {"NLPFLOW_ENGINE": address}
    sets = ["sweep.study=ray", "sweep.runner=ray", "sweep.output=reports/sweep/ray.yaml"]
    done = _cli_sweep(env, project, sets)
    study, runs, parent = _check_trials(project, "ray")
    _same_trials_as(_load_study(project, "processes"), study)
    workers = list_workers(address=ray_head.dashboard, limit=1000, raise_on_missing_output=False)
    assert _worker_pids(runs) <= {w.pid for w in workers}  # Ray's workers trained them
    log = _flow_run_log(parent.data.tags["prefect.flow_run_id"])
    assert f"trials run on ray at {address}" in log
    assert f"Ray dashboard: {ray_head.dashboard}" in log
    assert f"trials ran on ray at {address}\n  dashboard: {ray_head.dashboard}\n" in done.stdout
    with urllib.request.urlopen(ray_head.dashboard, timeout=30) as page:
        assert page.status == 200
    best = yaml.safe_load((project / "reports/sweep/ray.yaml").read_text())
    assert best["train"]["tfidf"] == {"C": 0.3, "ngram_max": 1}
