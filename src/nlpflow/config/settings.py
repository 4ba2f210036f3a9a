"""Where things are: read from the environment (never from params.yaml).

| variable                      | default                          | meaning                              |
|-------------------------------|----------------------------------|--------------------------------------|
| NLPFLOW_PROJECT_DIR           | current directory                | folder with params.yaml and dvc.yaml |
| NLPFLOW_DATA_ROOT             | the project dir                  | relative `data.source` paths resolve here |
| NLPFLOW_TRACKING_URI          | MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the project (for a queued `dvc exp run`: the project it was queued in) |
| NLPFLOW_ARTIFACT_ROOT         | `mlartifacts/` beside the SQLite file (local stores only) |
| NLPFLOW_REGISTERED_MODEL      | unset: params register.model_name, else `nlpflow-` + the data's name | registry model name; set, it wins over params (nlpflow.config.naming.registered_model_name) |
| NLPFLOW_TELEMETRY             | 0                                | 1 leaves the libraries' telemetry as they default |
| NLPFLOW_DVC_REMOTE            | the project's default DVC remote, else ~/.local/share/nlpflow/dvc-remote | where the flow pushes data and models: a folder or s3:// URL (nlpflow.pipeline.remote) |
| NLPFLOW_TRACKING_CLOSE_SECONDS | 60                              | how long closing a run retries while the tracking server is away; then its status waits in `.nlpflow/pending_runs.json` for the next nlpflow command |
| NLPFLOW_PROGRESS_SECONDS      | 30                               | seconds between training progress lines where no progress bar shows (not a terminal: `dvc repro` into a log, a Prefect worker); epoch ends are always logged |
| NLPFLOW_LOCK                  | wait                             | a run started while another holds the project (`.nlpflow/run.lock`): `wait` for it, or `fail` naming the holder (`nlpflow run --wait/--no-wait`) |
| NLPFLOW_LOCK_TIMEOUT          | unset: as long as it takes       | seconds a waiting run waits for the lock before it gives up |
| NLPFLOW_DB_SECRET             | unset: libpq's PGPASSWORD, ~/.pgpass | name of a Prefect Secret block holding the password of a database `data.source`/`inference.source` (read by flow runs, tasks/credentials.py; never in params) |
| NLPFLOW_ENGINE                | local                            | where parallel work runs: local, processes, dask, dask://host:8786, ray, ray://host:10001 (nlpflow.config.engine) |
| NLPFLOW_WORKERS               | the cores this process may use   | processes (or local cluster workers) of NLPFLOW_ENGINE |
| NLPFLOW_WORKER_THREADS        | the cores / NLPFLOW_WORKERS      | torch threads of each batch inference worker process |
| NLPFLOW_CPU_THREADS           | unset: the usable cores less those other work keeps busy | torch threads of a CPU training whose params leave train.cpu_threads null (nlpflow.training.threads); `nlpflow reproduce` sets the run's |
| NLPFLOW_SWEEP_ADDRESS         | unset: a local cluster           | the older name of the Dask scheduler / Ray address of `sweep.runner: dask/ray`; an address in NLPFLOW_ENGINE for that engine wins (tasks/sweep.py) |
| NLPFLOW_CHECKPOINT_DIR        | <project>/.nlpflow/checkpoints   | checkpoints of unfinished trainings; with train.distributed.nnodes > 1 a folder every node mounts (the nodes meet there too) |
| NLPFLOW_RDZV_ENDPOINT         | MASTER_ADDR:MASTER_PORT when both are set (a PyTorchJob's), else unset | host:port of the lead node's c10d rendezvous (train.distributed.nnodes > 1) |
| NLPFLOW_RDZV_ID               | nlpflow                          | the multi-node job's name: nodes with the same one train together (one job at a time per name and checkpoint folder) |
| NLPFLOW_RDZV_TIMEOUT          | 900                              | seconds a node waits for the others to join (and `nlpflow train-node` for the lead) |
| MLFLOW_HTTP_REQUEST_MAX_RETRIES | 3 (MLflow: 7)                  | retries of one MLflow request (connection refused, 5xx, 429) |
| MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR | 1 (MLflow: 2)               | waits of 0, 2, 4 s between them: a dead server fails a request in ~7 s, not ~4 min |
| MLFLOW_HTTP_REQUEST_TIMEOUT   | 60 (MLflow: 120)                 | seconds one MLflow request may wait on a silent server |
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from nlpflow.config.engine import Engine

# Telemetry switches of every library we drive. Set before those libraries are imported.
TELEMETRY_OFF = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DVC_NO_ANALYTICS": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "GX_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
}

# Prefect's temporary server migrates a fresh SQLite database on first use; on a slow 2-core
# machine that takes longer than Prefect's 20 s default start-up timeout.
PREFECT_DEFAULTS = {
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "600",
    # Progress bars of libraries are noise in scheduled, non-interactive runs.
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    # MLflow prints "View experiment at <uri>/#/experiments/<id>" at each run's end: a link
    # that opens in GenAI mode; nlpflow's summary prints the right one (nlpflow.tracking.links)
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TOKENIZERS_PARALLELISM": "false",
    # nlpflow's own log lines (training progress) reach the Prefect flow run's log too
    "PREFECT_LOGGING_EXTRA_LOGGERS": "nlpflow",
    # ... and outside a flow run (the stages `dvc repro` runs, the CLI), on purpose: Prefect's
    # "attempted to send logs to the API without a flow run id" warning is noise there
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
}

# MLflow's own defaults (7 retries, backoff factor 2, 120 s timeout) turn a tracking server that
# went away into a ~4 minute hang per request, and a training run logs hundreds of them. Three
# quick retries ride out a server restart; beyond that the run fails with a message saying so.
# Hosted backends that rate-limit for minutes want MLflow's defaults back: export them.
MLFLOW_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
}


class Settings(BaseSettings):
    """Locations and names, from `NLPFLOW_*` environment variables."""

    model_config = SettingsConfigDict(env_prefix="NLPFLOW_", extra="ignore")

    project_dir: Path = Field(default_factory=Path.cwd)
    data_root: Path | None = None
    tracking_uri: str | None = Field(
        default=None, validation_alias=AliasChoices("NLPFLOW_TRACKING_URI", "MLFLOW_TRACKING_URI")
    )
    artifact_root: str | None = None
    # None: params register.model_name, else derived from data.source (config.naming)
    registered_model: str | None = None
    telemetry: bool = False
    dvc_remote: str | None = None  # a folder or s3:// URL; None: see nlpflow.pipeline.remote
    # a Prefect Secret block holding the database password (tasks/credentials.py); params
    # refuse passwords, and libpq reads PGPASSWORD and ~/.pgpass without nlpflow's help
    db_secret: str | None = None
    # seconds closing an MLflow run keeps retrying while the server is away (nlpflow.tracking.tracker)
    tracking_close_seconds: float = Field(default=60.0, ge=0)
    # seconds between training progress log lines when no bar shows (nlpflow.training.progress)
    progress_seconds: float = Field(default=30.0, ge=0)
    # a second run in the project while one holds it (nlpflow.pipeline.locking): wait, or fail naming
    # the holder; and the longest wait in seconds (None: as long as it takes)
    lock: Literal["wait", "fail"] = "wait"
    lock_timeout: float | None = Field(default=None, ge=0)
    # where parallel work runs (nlpflow.config.engine): batch inference's chunks, sweep trials
    engine: str = "local"
    workers: int | None = Field(default=None, ge=1)
    worker_threads: int | None = Field(default=None, ge=1)
    # the older setting of sweep.runner: dask/ray's cluster, before NLPFLOW_ENGINE had addresses
    sweep_address: str | None = None
    # multi-node training (nlpflow.training.distributed): the shared checkpoint folder (None:
    # the project's .nlpflow/checkpoints), the lead node's rendezvous, the job's name, the wait
    checkpoint_dir: Path | None = None
    rdzv_endpoint: str | None = None
    rdzv_id: str = Field(default="nlpflow", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    rdzv_timeout: float = Field(default=900.0, gt=0)

    @field_validator("rdzv_endpoint")
    @classmethod
    def _host_and_port(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        host, _, port = value.strip().rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(
                f"{value!r} is not host:port: the lead node's address and a free port, "
                "e.g. 10.0.0.1:29400"
            )
        return value.strip()

    @property
    def resolved_rdzv_endpoint(self) -> str | None:
        """NLPFLOW_RDZV_ENDPOINT, else MASTER_ADDR:MASTER_PORT, which the Kubeflow training
        operator sets in every pod of a PyTorchJob (the Master's service and port)."""
        if self.rdzv_endpoint:
            return self.rdzv_endpoint
        addr, port = os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT")
        return f"{addr}:{port}" if addr and port else None

    def resolved_checkpoint_dir(self, default: Path) -> Path:
        """NLPFLOW_CHECKPOINT_DIR (relative: under the project folder), else `default`."""
        if self.checkpoint_dir is None:
            return default
        path = self.checkpoint_dir.expanduser()
        return path if path.is_absolute() else self.root / path

    @field_validator("engine")
    @classmethod
    def _known_engine(cls, value: str) -> str:
        from nlpflow.config.engine import parse_engine

        parse_engine(value, workers=1)  # a ValueError naming the forms it takes
        return value.strip() or "local"

    @property
    def resolved_engine(self) -> Engine:
        from nlpflow.config.engine import parse_engine

        return parse_engine(self.engine, workers=self.workers)

    @property
    def root(self) -> Path:
        return self.project_dir.resolve()

    @property
    def home(self) -> Path:
        """The user's project: `root`, except in a queued DVC experiment, whose stages run in a
        temporary copy of the repository that is deleted afterwards (nlpflow.config.dvcexp)."""
        from nlpflow.config.dvcexp import user_project

        return user_project(self.root)

    @property
    def resolved_tracking_uri(self) -> str:
        # the user's project, not a queued experiment's copy: its runs must outlive the copy
        return self.tracking_uri or f"sqlite:///{self.home / 'mlflow.db'}"

    @property
    def resolved_artifact_root(self) -> str | None:
        """Artifacts sit beside a local SQLite store; servers choose their own."""
        if self.artifact_root:
            return self.artifact_root
        uri = self.resolved_tracking_uri
        if uri.startswith("sqlite:///"):
            return (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").as_uri()
        return None

    def resolve_data(self, source: str | Path) -> Path:
        path = Path(source).expanduser()
        if path.is_absolute():
            return path
        return (self.data_root or self.root) / path


def apply_environment_defaults() -> None:
    """Turn telemetry off (unless NLPFLOW_TELEMETRY=1) and set safe Prefect defaults.

    Values the user already exported win: we only fill in what is unset.
    """
    defaults = dict(PREFECT_DEFAULTS) | MLFLOW_HTTP_DEFAULTS
    if os.environ.get("NLPFLOW_TELEMETRY", "0").lower() not in {"1", "true", "yes"}:
        defaults.update(TELEMETRY_OFF)
    for key, value in defaults.items():
        os.environ.setdefault(key, value)


PREFECT_HOME_DIR = Path(".nlpflow") / "prefect"  # a project's own Prefect home, under .nlpflow


def apply_prefect_home(root: Path) -> Path | None:
    """Give the project its own Prefect home (database, profiles) when no Prefect server is
    configured, so `nlpflow run` here lists this project's flow runs, not every project's
    on the machine. A PREFECT_HOME or PREFECT_API_URL of the user's (exported, or in the
    active profile of ~/.prefect/profiles.toml) wins. Returns the home set, if any."""
    if "PREFECT_HOME" in os.environ or "PREFECT_API_URL" in os.environ or profile_api_url():
        return None
    home = root / PREFECT_HOME_DIR
    try:  # Prefect makes the home itself, but not its parents (.nlpflow in a fresh clone)
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        return None  # a read-only project: Prefect's default home still works
    os.environ["PREFECT_HOME"] = str(home)
    return home


def profile_api_url() -> str | None:
    """PREFECT_API_URL of the active Prefect profile, read as Prefect reads it."""
    import tomllib

    path = Path(
        os.environ.get("PREFECT_PROFILES_PATH") or Path.home() / ".prefect" / "profiles.toml"
    ).expanduser()
    try:
        profiles = tomllib.loads(path.read_text())
    except (OSError, ValueError):
        return None
    active = os.environ.get("PREFECT_PROFILE") or profiles.get("active") or "ephemeral"
    url = profiles.get("profiles", {}).get(active, {}).get("PREFECT_API_URL")
    return str(url) if url else None


def apply_mlflow_http_defaults() -> None:
    """MLflow's request retries and timeout as nlpflow wants them, where the user set none.

    The Tracker calls this too: a flow run started by a Prefect worker never passes through
    the CLI's `apply_environment_defaults`.
    """
    for key, value in MLFLOW_HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)


def load_settings() -> Settings:
    """The settings, or a ParamsError naming the variable that is wrong and what it takes."""
    from pydantic import ValidationError

    from nlpflow.errors import ParamsError

    try:
        return Settings()
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = f"NLPFLOW_{'_'.join(str(p) for p in error['loc']).upper()}"
            message = error["msg"].removeprefix("Value error, ")
            # parse_engine's message names the variable itself (it serves other callers too)
            problems.append(message if message.startswith(name) else f"{name}: {message}")
        raise ParamsError(f"environment settings are wrong: {'; '.join(problems)}") from None
