"""The team stack of infra/docker-compose.yml without containers: a real `mlflow server` and a
real `prefect server`, both on PostgreSQL, and `nlpflow run` processes pointed at them.

.venv/bin/pytest tests/integration/test_team_stack.py -x -q

Needs PostgreSQL at 127.0.0.1:5432 (trust auth, user postgres; NLPFLOW_TEST_PG_URL names
another). Each module run creates its own databases (random names) and drops them at the end.
Skipped with the reason where PostgreSQL is unreachable, except under CI, which has it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
import yaml

from nlpflow.pipeline.stages import STAGE_NAMES
from tests.conftest import PG_URL, _venv_env, fast_params, make_project

pytestmark = pytest.mark.slow
START_TIMEOUT = 300  # server start-ups on a busy 2-core machine (migrations included)
FLOW_TIMEOUT = 600


# ------------------------------------------------------------------ servers on PostgreSQL


@pytest.fixture(scope="module")
def pg_admin() -> Iterator[Any]:
    """An AUTOCOMMIT engine on the server's `postgres` database (CREATE/DROP DATABASE)."""
    import sqlalchemy as sa

    url = sa.make_url(PG_URL).set(database="postgres")
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        engine.connect().close()
    except sa.exc.OperationalError as exc:
        if os.environ.get("CI"):
            raise  # CI has PostgreSQL: its absence is a failure there
        pytest.skip(f"PostgreSQL at {url} is not reachable ({exc.orig}); set NLPFLOW_TEST_PG_URL")
    yield engine
    engine.dispose()


@contextmanager
def fresh_database(admin: Any, prefix: str, extensions: tuple[str, ...] = ()) -> Iterator[Any]:
    """A new database with a random name, dropped (connections and all) afterwards."""
    import sqlalchemy as sa

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name)
    try:
        if extensions:
            engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
            with engine.connect() as connection:
                for extension in extensions:
                    connection.execute(sa.text(f"CREATE EXTENSION IF NOT EXISTS {extension}"))
            engine.dispose()
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Server:
    """One server process group (mlflow and prefect both fork workers), its log in a file."""

    def __init__(self, name: str, cmd: list[str], *, env: dict[str, str], port: int, health: str,
                 folder: Path) -> None:  # fmt: skip
        self.name, self.cmd, self.env, self.port = name, cmd, env, port
        self.health = f"http://127.0.0.1:{port}{health}"
        self.folder = folder
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        import httpx

        self.starts += 1
        log = (self.folder / f"{self.name}-{self.starts}.log").open("wb")
        self.process = subprocess.Popen(
            self.cmd, env=self.env, cwd=self.folder, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start-up: {self.log_tail()}")
            try:
                if httpx.get(self.health, timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"{self.name} not up after {START_TIMEOUT}s: {self.log_tail()}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """The whole process group, at once: the server going away, not shutting down."""
        assert self.process is not None
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        deadline = time.monotonic() + 30
        while listening(self.port) and time.monotonic() < deadline:  # forked workers exit too
            time.sleep(0.2)

    def log_tail(self) -> str:
        return (self.folder / f"{self.name}-{self.starts}.log").read_text(errors="replace")[-3000:]


def _server_env(**extra: str) -> dict[str, str]:
    env = _venv_env()
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("PREFECT_API_URL", None)
    return env | extra


@pytest.fixture(scope="module")
def mlflow_server(pg_admin: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("mlflow-server")
    with fresh_database(pg_admin, "nlpflow_mlflow") as url:
        backend = url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        port = free_port()
        server = Server(
            "mlflow",
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend,
             "--artifacts-destination", str(folder / "artifacts"), "--serve-artifacts",
             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            env=_server_env(), port=port, health="/health", folder=folder,
        )  # fmt: skip
        server.start()
        try:
            yield server
        finally:
            server.kill(signal.SIGTERM)


def _prefect_server(name: str, folder: Path, *, database: str, **settings: str) -> Server:
    """A started `prefect server` on a free loopback port, its home and database given."""
    port = free_port()
    env = _server_env(
        PREFECT_HOME=str(folder / "home"), PREFECT_API_DATABASE_CONNECTION_URL=database,
        PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_UI_ENABLED="false", **settings,
    )  # fmt: skip
    server = Server(
        name,
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
         "--port", str(port)],
        env=env, port=port, health="/api/health", folder=folder,
    )  # fmt: skip
    server.start()
    return server


@pytest.fixture(scope="module")
def prefect_server(pg_admin: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("prefect-server")
    with fresh_database(pg_admin, "nlpflow_prefect", extensions=("pg_trgm",)) as url:
        database = url.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
        server = _prefect_server("prefect", folder, database=database)
        try:
            yield server
        finally:
            server.kill(signal.SIGTERM)


def mlflow_url(server: Server) -> str:
    return f"http://127.0.0.1:{server.port}"


def prefect_api(server: Server) -> str:
    return f"http://127.0.0.1:{server.port}/api"


# ------------------------------------------------------------------ projects and flow runs


def _params(experiment: str, *, family: str = "tfidf_logreg", **train: Any) -> str:
    tree = yaml.safe_load(fast_params(family=family, pretrained=train.pop("pretrained", None)))
    for key, value in train.items():  # a dict updates its section (train.tfidf) key by key
        tree["train"][key] = tree["train"][key] | value if isinstance(value, dict) else value
    tree["register"]["experiment"] = experiment
    # the gate is tested elsewhere (test_promotion); here the first version must be promotable
    tree["register"]["gate"].update({"beat_baseline": False, "min_behavioural_pass_rate": 0.0})
    # every run here must train: no skip because another test's data was the same
    tree.setdefault("schedule", {})["skip_unchanged_data"] = False
    return yaml.safe_dump(tree, sort_keys=False)


def _flow_env(root: Path, mlflow: Server, prefect: Server, model: str, **extra: str) -> dict:
    env = _server_env(
        NLPFLOW_PROJECT_DIR=str(root),
        NLPFLOW_TRACKING_URI=mlflow_url(mlflow),
        NLPFLOW_REGISTERED_MODEL=model,
        PREFECT_API_URL=prefect_api(prefect),
        PREFECT_HOME=str(root.parent / "prefect-home"),
    )
    return env | extra


class Flow:
    """`nlpflow run` in a project, its output in a file beside it (a pipe nobody reads while
    the test polls the servers would fill up and stall the flow)."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.log = root.parent / f"{root.name}-run.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                ["nlpflow", "run"], cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT
            )

    def running(self) -> bool:
        return self.process.poll() is None

    def finish(self) -> tuple[int, str]:
        self.process.wait(timeout=FLOW_TIMEOUT)
        return self.process.returncode, self.log.read_text(errors="replace")


def client_for(server: Server) -> Any:
    from mlflow import MlflowClient

    url = mlflow_url(server)
    return MlflowClient(tracking_uri=url, registry_uri=url)


def runs_of(client: Any, experiment: str) -> list[Any]:
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"experiment {experiment!r} missing"
    return list(client.search_runs([found.experiment_id], max_results=100))


def prefect_flow_run(prefect: Server, flow_run_id: str) -> tuple[Any, dict[str, str]]:
    """The flow run and {task name: final state type} of its task runs, from the server."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with (
        temporary_settings({PREFECT_API_URL: prefect_api(prefect)}),
        get_client(sync_client=True) as client,
    ):
        flow_run = client.read_flow_run(uuid.UUID(flow_run_id))
        tasks = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id]))
        )
    return flow_run, {t.name.rsplit("-", 1)[0]: t.state_type.value for t in tasks}


# ------------------------------------------------------------------ one run, both servers


def test_flow_run_is_recorded_by_both_servers(
    mlflow_server: Server, prefect_server: Server, tmp_path: Path
) -> None:
    root = make_project(tmp_path / "project", _params("team-stack"))
    env = _flow_env(root, mlflow_server, prefect_server, "team-stack-model")
    code, output = Flow(root, env).finish()
    assert code == 0, output

    client = client_for(mlflow_server)
    (run,) = runs_of(client, "team-stack")
    assert run.info.status == "FINISHED"
    assert run.data.params["train.family"] == "tfidf_logreg"
    metrics = json.loads((root / "reports/metrics.json").read_text())
    assert run.data.metrics["test/accuracy"] == pytest.approx(metrics["accuracy"])
    assert run.data.metrics["test/macro_f1"] == pytest.approx(metrics["macro_f1"])
    # artifacts went through the server's proxy into its --artifacts-destination
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")
    stored = mlflow_server.folder / "artifacts" / run.info.experiment_id / run.info.run_id
    assert (stored / "artifacts" / "evaluation" / "metrics.json").is_file()

    (version,) = client.search_model_versions("name='team-stack-model'")
    assert version.run_id == run.info.run_id
    assert version.tags["gate.decision"] == "promoted"
    assert client.get_model_version_by_alias("team-stack-model", "champion").version == "1"

    flow_run, tasks = prefect_flow_run(prefect_server, run.data.tags["prefect.flow_run_id"])
    assert flow_run.state_type.value == "COMPLETED"
    assert flow_run.name and flow_run.flow_id
    assert {name: tasks.get(name) for name in STAGE_NAMES} == dict.fromkeys(
        STAGE_NAMES, "COMPLETED"
    )


def test_two_flows_at_once_keep_their_own_runs_and_versions(
    mlflow_server: Server, prefect_server: Server, tmp_path: Path
) -> None:
    experiment, model = "team-stack-concurrent", "team-stack-concurrent-model"
    roots = {  # one train param differs, so each run's params are its own and checkable
        c: make_project(tmp_path / f"project-c{c}", _params(experiment, tfidf={"C": c}))
        for c in (0.5, 20.0)
    }
    flows = {c: Flow(root, _flow_env(root, mlflow_server, prefect_server, model))
             for c, root in roots.items()}  # fmt: skip
    outputs = {c: flow.finish() for c, flow in flows.items()}
    for c, (code, output) in outputs.items():
        assert code == 0, f"C={c}: {output}"

    client = client_for(mlflow_server)
    runs = runs_of(client, experiment)
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    by_c = {float(r.data.params["train.tfidf.C"]): r for r in runs}
    assert set(by_c) == set(roots)
    for c, root in roots.items():
        metrics = json.loads((root / "reports/metrics.json").read_text())
        assert by_c[c].data.metrics["test/macro_f1"] == pytest.approx(metrics["macro_f1"])
        registration = json.loads((root / "reports/registration.json").read_text())
        assert registration["run_id"] == by_c[c].info.run_id

    versions = client.search_model_versions(f"name='{model}'")
    assert sorted(int(v.version) for v in versions) == [1, 2]
    assert {v.run_id for v in versions} == {r.info.run_id for r in runs}
    champion = client.get_model_version_by_alias(model, "champion")
    assert champion.tags["gate.decision"] == "promoted"
    assert champion.run_id in {r.info.run_id for r in runs}
    promotions = client.get_experiment_by_name(f"{experiment}-promotions")
    left_running = client.search_runs(
        [r.info.experiment_id for r in runs[:1]]
        + ([promotions.experiment_id] if promotions else []),
        filter_string="attributes.status = 'RUNNING'",
    )
    assert left_running == []


# ------------------------------------------------------------------ the server going away


def _wait_for_training(client: Any, experiment: str, flow: Flow) -> str:
    """The run id, once its first training step is logged (train is then under way)."""
    deadline = time.monotonic() + FLOW_TIMEOUT
    while time.monotonic() < deadline:
        assert flow.running(), f"the flow ended before training: {flow.finish()[1]}"
        found = client.get_experiment_by_name(experiment)
        for run in client.search_runs([found.experiment_id]) if found else []:
            if client.get_metric_history(run.info.run_id, "step/loss"):
                return str(run.info.run_id)
        time.sleep(0.2)
    raise AssertionError("training never started")


def test_tracking_server_going_away_fails_the_run_clearly_and_marks_it_failed_later(
    mlflow_server: Server, prefect_server: Server, tiny_encoder: Path, tmp_path: Path
) -> None:
    experiment, model = "team-stack-outage", "team-stack-outage-model"
    params = _params(experiment, family="transformer", pretrained=tiny_encoder, epochs=30,
                     early_stopping_patience=100, log_every_steps=1)  # fmt: skip
    root = make_project(tmp_path / "project", params)
    # closing gives up at once: the status must wait in .nlpflow/ for the next command
    env = _flow_env(root, mlflow_server, prefect_server, model, NLPFLOW_TRACKING_CLOSE_SECONDS="0")
    flow = Flow(root, env)
    client = client_for(mlflow_server)
    run_id = _wait_for_training(client, experiment, flow)

    mlflow_server.kill()
    gone = time.monotonic()
    code, output = flow.finish()
    seconds = time.monotonic() - gone

    url = mlflow_url(mlflow_server)
    assert code == 2, output
    assert f"MLflow tracking server {url} is unreachable while logging metrics" in output
    assert "point NLPFLOW_TRACKING_URI at a running server" in output
    assert seconds < 60, f"{seconds:.0f}s from the server's death to the flow's exit"
    pending = json.loads((root / ".nlpflow/pending_runs.json").read_text())
    assert [(p["run_id"], p["status"], p["uri"]) for p in pending] == [(run_id, "FAILED", url)]

    mlflow_server.start()  # same port, same database
    assert client.get_run(run_id).info.status == "RUNNING"  # nothing has told it yet
    done = subprocess.run(
        ["nlpflow", "registry", "history"], cwd=root, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    run = client.get_run(run_id)
    assert run.info.status == "FAILED" and run.info.end_time is not None
    assert not (root / ".nlpflow/pending_runs.json").exists()
    assert client.search_model_versions(f"name='{model}'") == []  # nothing registered
    assert not (root / "reports/registration.json").exists()

    flow_run, tasks = prefect_flow_run(prefect_server, run.data.tags["prefect.flow_run_id"])
    assert flow_run.state_type.value == "FAILED"
    assert tasks["train"] == "FAILED" and "register" not in tasks  # it died in train


def test_closing_a_run_waits_for_the_server_to_come_back(
    mlflow_server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nlpflow.config.settings import Settings
    from nlpflow.tracking.tracker import PENDING, Tracker

    monkeypatch.setenv("NLPFLOW_TRACKING_URI", mlflow_url(mlflow_server))
    monkeypatch.setenv("NLPFLOW_PROJECT_DIR", str(tmp_path))
    monkeypatch.setenv("NLPFLOW_TRACKING_CLOSE_SECONDS", str(START_TIMEOUT))
    tracker = Tracker(Settings())
    run_id = tracker.start_run("team-stack-close", run_name=None, tags={})

    mlflow_server.kill()
    assert not listening(mlflow_server.port)
    closed: list[bool] = []
    closing = threading.Thread(target=lambda: closed.append(tracker.end_run(run_id, "FAILED")))
    closing.start()  # its first attempts are refused: nothing listens on the port
    mlflow_server.start()
    closing.join(timeout=START_TIMEOUT + 60)

    assert closed == [True]
    assert client_for(mlflow_server).get_run(run_id).info.status == "FAILED"
    assert not (tmp_path / PENDING).exists()


# ------------------------------------------------------------------ the Prefect auth string


def test_prefect_server_with_an_auth_string_refuses_clients_without_it(tmp_path: Path) -> None:
    """infra/docker-compose.yml sets PREFECT_SERVER_API_AUTH_STRING on the server and
    PREFECT_API_AUTH_STRING on its clients: without it a client gets 401, with it the API."""
    import httpx

    auth = f"nlpflow:{uuid.uuid4().hex}"
    database = f"sqlite+aiosqlite:///{tmp_path / 'prefect.db'}"
    # its health check answers without the string (probes need none)
    server = _prefect_server("prefect-auth", tmp_path, database=database,
                             PREFECT_SERVER_API_AUTH_STRING=auth)  # fmt: skip
    port = server.port
    try:
        api = f"http://127.0.0.1:{port}/api"
        anonymous = httpx.post(f"{api}/flows/filter", json={}, timeout=30)
        wrong = httpx.post(f"{api}/flows/filter", json={}, auth=("nlpflow", "guess"), timeout=30)
        assert (anonymous.status_code, wrong.status_code) == (401, 401)
        user, password = auth.split(":", 1)
        assert httpx.post(f"{api}/flows/filter", json={}, auth=(user, password),
                          timeout=30).status_code == 200  # fmt: skip
        # nlpflow's clients (worker, pipeline, `nlpflow run`) send it through Prefect's setting
        client_env = _server_env(PREFECT_API_URL=api, PREFECT_HOME=str(tmp_path / "client"))
        for sent, code in ((None, 1), (auth, 0)):
            env_used = client_env | ({"PREFECT_API_AUTH_STRING": sent} if sent else {})
            done = subprocess.run(
                [sys.executable, "-m", "prefect", "work-pool", "ls"], env=env_used,
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            assert done.returncode == code, done.stdout + done.stderr
    finally:
        server.kill(signal.SIGTERM)
