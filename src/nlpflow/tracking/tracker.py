"""The MLflow adapter: one MLflow run per pipeline run, whichever runner drives it.

The Prefect flow opens the run and hands its id to every task. `nlpflow stage NAME` (what
`dvc repro` calls) runs one stage per process, so the open run's id is kept in
`.nlpflow/active_run.json` until the last stage (register) closes it or a stage fails.

A tracking server that goes away fails the run with a TrackingError naming the server and the
fix (MLflow's request retries are cut to seconds: nlpflow.config.settings.MLFLOW_HTTP_DEFAULTS). Closing
the run retries for `NLPFLOW_TRACKING_CLOSE_SECONDS`; if the server is still away, the status
waits in `.nlpflow/pending_runs.json` and the next Tracker opened in the project sends it, so
the run does not stay RUNNING forever.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from nlpflow.config.settings import Settings, apply_mlflow_http_defaults
from nlpflow.errors import TrackingError

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.entities import Dataset

    from nlpflow.config.params import Params

ACTIVE_RUN = Path(".nlpflow") / "active_run.json"
PENDING = Path(".nlpflow") / "pending_runs.json"  # run statuses the server was away for
DATASET_CONTEXT = "mlflow.data.context"  # train | validation | test, as MLflow's UI reads it
DIGEST_CHARS = 32  # of a split's sha256: MLflow stores at most 36 characters of a digest
CLOSE_PAUSE_SECONDS = 3.0  # between attempts to close a run (each already retries ~7 s)
STOPPED_CLOSE_SECONDS = 2.0  # closing retries after a stop signal (nlpflow.shutdown)
log = logging.getLogger(__name__)
T = TypeVar("T")


class Tracker:
    """A thin wrapper over MlflowClient bound to one tracking URI (no global state)."""

    def __init__(self, settings: Settings) -> None:
        apply_mlflow_http_defaults()  # before the first request: MLflow reads them per request
        self.settings = settings
        self.uri = settings.resolved_tracking_uri
        self.client = open_client(self.uri, home=settings.home)
        flush_pending(self)

    def _call(self, doing: str, call: Callable[[], T]) -> T:
        """`call()`, with an unreachable server turned into a TrackingError that says so."""
        from mlflow.exceptions import MlflowException

        try:
            return call()
        except MlflowException as exc:
            if is_unreachable(exc):
                raise TrackingError(unreachable_message(self.uri, doing, exc)) from None
            raise

    def experiment_id(self, name: str, *, main_metric: str | None = None) -> str:
        """The experiment's id, created when missing; its tags open it in MLflow's
        model-training view with the runs table showing `test/<main_metric>`
        (nlpflow.tracking.links.experiment_tags): set where missing, and where they differ when the
        caller names its main metric (a pipeline run does; a lookup keeps what is there)."""
        from mlflow.exceptions import MlflowException

        from nlpflow.tracking.links import experiment_tags

        wanted = experiment_tags(main_metric or "macro_f1")
        try:
            found = self._call(
                "looking up the experiment", lambda: self.client.get_experiment_by_name(name)
            )
            if found is not None:
                for key, value in wanted.items():
                    have = found.tags.get(key)
                    if have is None or (have != value and main_metric is not None):
                        self._call(
                            "tagging the experiment",
                            partial(
                                self.client.set_experiment_tag, found.experiment_id, key, value
                            ),
                        )
                return str(found.experiment_id)
            root = self.settings.resolved_artifact_root
            created = self._call(
                "creating the experiment",
                lambda: self.client.create_experiment(name, artifact_location=root, tags=wanted),
            )
            return str(created)
        except MlflowException as exc:
            if "already exists" in str(exc):  # created by a concurrent run meanwhile
                return str(self.client.get_experiment_by_name(name).experiment_id)
            raise TrackingError(f"MLflow at {self.uri} failed: {exc}") from None

    def start_run(
        self,
        experiment: str,
        *,
        run_name: str | None,
        tags: dict[str, str],
        main_metric: str | None = None,
        owner: str | None = None,
    ) -> str:
        """A new RUNNING run, tagged with the process that owns it (`owner`: `<pid>@<start>`
        of the process that will close it, default this one): `close_stale_runs` closes it
        as KILLED should that process die first."""
        experiment_id = self.experiment_id(experiment, main_metric=main_metric)
        tags = owner_tags(self.settings.home, owner) | tags
        run = self._call(
            "starting a run",
            lambda: self.client.create_run(experiment_id, run_name=run_name, tags=tags),
        )
        return str(run.info.run_id)

    def run_status(self, run_id: str) -> str | None:
        """RUNNING, FINISHED, FAILED, ...; None for a run this store does not hold (deleted,
        or made against another tracking store)."""
        from mlflow.exceptions import MlflowException

        try:
            run = self._call("reading the open run", lambda: self.client.get_run(run_id))
        except MlflowException:
            return None
        return None if run.info.lifecycle_stage == "deleted" else str(run.info.status)

    def reopen_run(self, run_id: str) -> None:
        """A run a previous stage of the same `dvc repro` marked FINISHED goes on RUNNING."""
        self._call("reopening the run", lambda: self.client.update_run(run_id, status="RUNNING"))

    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in params.items()]

        def send(chunk: list[Param]) -> None:
            self.client.log_batch(run_id, params=chunk)

        for start in range(0, len(items), 100):  # MLflow's batch limit
            self._call("logging params", partial(send, items[start : start + 100]))

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        if batch:
            self._call("logging metrics", lambda: self.client.log_batch(run_id, metrics=batch))

    def set_tags(self, run_id: str, tags: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        batch = [RunTag(k, str(v)) for k, v in tags.items()]
        if batch:
            self._call("setting tags", lambda: self.client.log_batch(run_id, tags=batch))

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        doing = f"uploading {path.name}"
        if path.is_dir():
            self._call(doing, lambda: self.client.log_artifacts(run_id, str(path), artifact_path))
        elif path.exists():
            self._call(doing, lambda: self.client.log_artifact(run_id, str(path), artifact_path))

    def log_datasets(self, run_id: str, *, folder: Path, params: Params) -> None:
        """Log the train, validation and test splits in `folder` (processed parquet files) as
        the run's MLflow datasets: named `<dataset>-<split>`, with the digest of their rows
        (split_digest), the data source (password masked), a schema and a row count, each
        tagged with its context (train, validation, test). The runs table's Dataset column
        shows them, and the logged model's test metrics name the test one."""
        import pandas as pd
        from mlflow.entities import DatasetInput, InputTag

        from nlpflow.data.gather import SPLITS

        source_type, source = dataset_source(params, self.settings)
        inputs = []
        for split in SPLITS:
            frame = pd.read_parquet(folder / f"{split}.parquet")
            dataset = _dataset_entity(frame, name=split_dataset_name(params, split),
                                      source_type=source_type, source=source)  # fmt: skip
            inputs.append(DatasetInput(dataset, tags=[InputTag(DATASET_CONTEXT, split)]))
        self._call("logging datasets", lambda: self.client.log_inputs(run_id, datasets=inputs))

    def end_run(self, run_id: str, status: str) -> bool:
        """Mark the run FINISHED or FAILED, retrying for `settings.tracking_close_seconds` while
        the server is away. Never raises for an absent server (this runs while a failure is
        being reported, and must not hide it): the status is kept in `.nlpflow/pending_runs.json`
        for the next Tracker. Returns whether the server has the status now.

        After a stop signal (nlpflow.shutdown), FAILED becomes KILLED with the signal as the
        reason, and the retries fit in the few seconds a stopped process has left."""
        from mlflow.exceptions import MlflowException

        from nlpflow import shutdown

        close_seconds = self.settings.tracking_close_seconds
        reason = shutdown.stopped_by() if status == "FAILED" else None
        if reason is not None:
            status, close_seconds = "KILLED", min(close_seconds, STOPPED_CLOSE_SECONDS)
            with contextlib.suppress(TrackingError):  # the status matters more than the tags
                self.set_tags(run_id, shutdown.stop_tags(reason))
            shutdown.note_closed(run_id, status)
        deadline = time.monotonic() + close_seconds
        while True:
            try:
                self.client.set_terminated(run_id, status=status)
                return True
            except MlflowException as exc:
                if not is_unreachable(exc):
                    raise
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                time.sleep(min(CLOSE_PAUSE_SECONDS, left))
        save_pending(self.settings.root, uri=self.uri, run_id=run_id, status=status)
        log.warning(
            "MLflow tracking server %s is still unreachable: run %s stays RUNNING there until "
            "the next nlpflow command in %s marks it %s (kept in %s).",
            self.uri, run_id, self.settings.root, status, PENDING,
        )  # fmt: skip
        return False


def is_unreachable(exc: Exception) -> bool:
    """MLflow's REST client reports every transport failure (refused, reset, timed out, 5xx
    after its retries) as `API request to <url> failed with ...`."""
    return "API request to" in str(exc) and " failed with " in str(exc)


def unreachable_message(uri: str, doing: str, exc: Exception) -> str:
    text = str(exc)
    if "Connection refused" in text or "NewConnectionError" in text:
        cause = "connection refused: nothing is listening there"
    elif "timeout" in text.lower() or "timed out" in text.lower():
        cause = f"no answer within MLFLOW_HTTP_REQUEST_TIMEOUT={os.environ.get('MLFLOW_HTTP_REQUEST_TIMEOUT')}s"
    elif "too many 5" in text.lower() or "ResponseError" in text:
        cause = "it kept answering with server errors"
    else:
        cause = text[:300]
    retries = os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "7")
    return (
        f"MLflow tracking server {uri} is unreachable while {doing} ({cause}; retried "
        f"{retries} times). Start it again or fix the network, or point NLPFLOW_TRACKING_URI at "
        f"a running server, then rerun. An open run is marked FAILED once the server is back: "
        f"the next nlpflow command in this project sends the status if this one could not."
    )


# ------------------------------------------------------------------ the run's datasets


def split_dataset_name(params: Params, split: str) -> str:
    """`support_tickets-train`, `glue/sst2-test`: the data's name (nlpflow.config.naming) and split."""
    from nlpflow.config.naming import dataset_name

    data = params.data
    config = f"/{data.hf_config}" if data.source.startswith("hf:") and data.hf_config else ""
    return f"{dataset_name(data.source)}{config}-{split}"


def split_digest(texts: Any, labels: Any) -> str:
    """The first DIGEST_CHARS hex digits of the sha256 of a split's rows (raw text, tab, label,
    newline, in order): the same rows give the same digest whatever file holds them, and the
    test split's is the start of its registered versions' `test_set_sha256` tag."""
    import hashlib

    digest = hashlib.sha256()
    for text, label in zip(texts, labels, strict=True):
        digest.update(f"{text}\t{label}\n".encode())
    return digest.hexdigest()[:DIGEST_CHARS]


def dataset_source(params: Params, settings: Settings) -> tuple[str, str]:
    """(source type, source JSON) of the data as MLflow's UI shows it: a Hugging Face dataset,
    a URL, a database (password masked) or a local path."""
    from nlpflow.data.sources import is_database_url, is_hf, is_url

    data = params.data
    public = str(params.public_dict()["data"]["source"])
    if is_hf(data.source):
        spec = {"path": public.removeprefix("hf:"), "config_name": data.hf_config,
                "revision": data.hf_revision}  # fmt: skip
        return "hugging_face", json.dumps(spec)
    if is_url(data.source):
        return "http", json.dumps({"url": public})
    if is_database_url(data.source):
        return "external", json.dumps({"url": public, "query": data.query})
    return "local", json.dumps({"uri": str(settings.resolve_data(data.source))})


def _dataset_entity(frame: pd.DataFrame, *, name: str, source_type: str, source: str) -> Dataset:
    from mlflow.entities import Dataset
    from mlflow.types import ColSpec, Schema, TensorSpec

    kinds = {"b": "boolean", "i": "long", "u": "long", "f": "double"}
    columns: list[ColSpec | TensorSpec] = [
        ColSpec(kinds.get(frame[c].dtype.kind, "string"), str(c)) for c in frame.columns
    ]
    texts = frame["raw_text"] if "raw_text" in frame.columns else frame["text"]
    return Dataset(
        name=name, digest=split_digest(texts.astype(str), frame["label"].astype(str)),
        source_type=source_type, source=source,
        schema=json.dumps({"mlflow_colspec": Schema(columns).to_dict()}),
        profile=json.dumps({"num_rows": len(frame), "num_elements": int(frame.size)}),
    )  # fmt: skip


def git_tags(root: Path) -> dict[str, str]:
    """The commit the code came from, whether tracked files differed from it, and the run's
    source as MLflow's UI shows it (its Source column): the project, the entry point that
    started the run, the commit, and the repository's URL when it has a remote."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    remote = _without_credentials(git("remote", "get-url", "origin") or "")
    source = _source_tags(root, remote)
    if commit is None:
        return {"git.commit": "none"} | source
    dirty = git("status", "--porcelain", "--untracked-files=no")
    branch = git("symbolic-ref", "--short", "-q", "HEAD")
    code = {"mlflow.source.git.commit": commit}
    code |= {"mlflow.source.git.repoURL": remote} if remote else {}
    code |= {"mlflow.source.git.branch": branch} if branch else {}
    return {"git.commit": commit, "git.dirty": str(bool(dirty)).lower()} | source | code


def entry_point() -> str:
    """What started this run: `dvc exp run` or `dvc repro` (DVC runs each stage command with
    DVC_EXP_NAME, or DVC_STAGE, set), else the nlpflow command (`nlpflow run`, `nlpflow
    sweep`), else the program (a Prefect worker running a deployment)."""
    import sys

    from nlpflow.config.dvcexp import experiment_name

    if experiment_name() is not None:
        return "dvc exp run"
    if os.environ.get("DVC_STAGE"):
        return "dvc repro"
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    if program == "nlpflow" and len(sys.argv) > 1:
        return f"nlpflow {sys.argv[1]}"
    return program


def _source_tags(root: Path, remote: str) -> dict[str, str]:
    """MLflow's source tags: type PROJECT, named for the repository (its remote URL, which the
    UI links to, else the project folder; a queued DVC experiment runs in a temporary copy,
    so DVC_ROOT names the user's project), with the entry point the UI prints beside it."""
    from nlpflow.config.dvcexp import dvc_root

    project = remote or str(dvc_root() or root)
    return {
        "mlflow.source.type": "PROJECT",
        "mlflow.source.name": project,
        "mlflow.project.entryPoint": entry_point(),
    }


def _without_credentials(url: str) -> str:
    """A remote URL without the user, password or token some clones keep in it (MLflow's UI
    links to it, so it is left out, not masked); nlpflow.config.secrets parses as git and libpq do."""
    from urllib.parse import urlsplit, urlunsplit

    from nlpflow.config.secrets import redact, without_secrets

    url = without_secrets(url)
    parts = urlsplit(url)
    if parts.scheme and "@" in parts.netloc:  # ssh://git@host: a user, not a secret, but noise
        url = urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
    return redact(url)  # whatever the parsers disagree on is masked, never written


def dvc_hash_tags(root: Path) -> dict[str, str]:
    """md5 of every out and dep recorded in dvc.lock, as `dvc.<path>` tags."""
    import yaml

    lock = root / "dvc.lock"
    if not lock.exists():
        return {}
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    tags = {}
    for stage in stages.values():
        for entry in [*stage.get("deps", []), *stage.get("outs", [])]:
            path = entry.get("path", "")
            if "md5" in entry and not path.endswith(".py"):  # data and models, not code
                tags[f"dvc.{path}"] = entry["md5"]
    return tags


# ------------------------------------------------------------ the CLI runner's open run


def read_active_run(root: Path) -> dict[str, Any] | None:
    """{"run_id", "owner"}: the pipeline run the CLI stages log to, and the `dvc` process whose
    stages share it (None: stages run by hand)."""
    marker = root / ACTIVE_RUN
    try:
        found = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    return {"run_id": str(found["run_id"]), "owner": found.get("owner")}


def write_active_run(root: Path, run_id: str, owner: str | None = None) -> None:
    marker = root / ACTIVE_RUN
    marker.parent.mkdir(parents=True, exist_ok=True)
    (marker.parent / ".gitignore").write_text("*\n")
    marker.write_text(json.dumps({"run_id": run_id, "owner": owner}))


def clear_active_run(root: Path) -> None:
    (root / ACTIVE_RUN).unlink(missing_ok=True)


# ------------------------------------------------------- statuses the server was away for


def load_pending(root: Path) -> list[dict[str, str]]:
    try:
        return list(json.loads((root / PENDING).read_text()))
    except FileNotFoundError:
        return []
    except ValueError as exc:
        raise TrackingError(
            f"{root / PENDING} is not valid JSON ({exc}); delete it (its runs then stay "
            f"RUNNING in MLflow) or fix it by hand."
        ) from None


def _write_pending(root: Path, entries: list[dict[str, str]]) -> None:
    path = root / PENDING
    if not entries:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_suffix(f".{os.getpid()}.tmp")
    scratch.write_text(json.dumps(entries, indent=1))
    scratch.replace(path)  # atomic: a reader never sees half a file


def save_pending(root: Path, *, uri: str, run_id: str, status: str) -> None:
    entries = [e for e in load_pending(root) if e["run_id"] != run_id]
    since = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    _write_pending(
        root, [*entries, {"uri": uri, "run_id": run_id, "status": status, "since": since}]
    )


def flush_pending(tracker: Tracker) -> None:
    """Send the statuses kept for `tracker`'s server; keep them while it is still away.

    A run someone already ended (or deleted) keeps what it has: only RUNNING runs are closed.
    """
    from mlflow.exceptions import MlflowException

    root = tracker.settings.root
    entries = load_pending(root)
    mine = [e for e in entries if e["uri"] == tracker.uri]
    done: set[str] = set()
    for entry in mine:
        try:
            run = tracker.client.get_run(entry["run_id"])
            if run.info.status == "RUNNING":
                tracker.client.set_terminated(entry["run_id"], status=entry["status"])
                log.warning("marked MLflow run %s %s (pending since %s)",
                            entry["run_id"], entry["status"], entry["since"])  # fmt: skip
        except MlflowException as exc:
            if is_unreachable(exc):
                break  # still away: keep this one and the rest for the next command
            log.warning("dropped the pending status of run %s: %s", entry["run_id"], exc)
        done.add(entry["run_id"])
    if done:
        _write_pending(root, [e for e in entries if e["run_id"] not in done])


# ------------------------------------------------------------ a fresh SQLite store, once

_STORES_READY: set[str] = set()


def open_client(uri: str, *, home: Path) -> Any:
    """An MlflowClient of `uri`. A local SQLite store is created (migrated) under a file lock:
    MLflow builds the tables of a fresh store when a client first opens it, with alembic, and
    two processes doing it at once (two first runs in a fresh project) collide ("duplicate
    column name", "Online migration expected to match one row"). Servers migrate their own."""
    from mlflow import MlflowClient

    if not uri.startswith("sqlite:///") or uri in _STORES_READY:
        return MlflowClient(tracking_uri=uri, registry_uri=uri)
    import fcntl

    db = Path(uri.removeprefix("sqlite:///"))
    guard = home / ".nlpflow" / "tracking-store.lock" if db.parent == home else Path(f"{db}.lock")
    try:
        guard.parent.mkdir(parents=True, exist_ok=True)
        with guard.open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)  # held for the migration only: seconds at most
            client = MlflowClient(tracking_uri=uri, registry_uri=uri)
            client.search_registered_models(max_results=1)  # the registry's store too
    except OSError as exc:
        raise TrackingError(
            f"cannot open the MLflow store {db} ({exc}): check that its folder exists and is "
            "writable, or point NLPFLOW_TRACKING_URI elsewhere."
        ) from None
    except Exception as exc:
        if type(exc).__module__.split(".")[0] not in {"sqlalchemy", "alembic", "mlflow"}:
            raise
        raise TrackingError(
            f"the MLflow store {db} could not be created or upgraded ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:300]}). If another tool opened it at the same time, "
            "rerun; if a newer MLflow made it, upgrade mlflow; if it is damaged, move it away "
            "(its runs go with it) and rerun."
        ) from None
    _STORES_READY.add(uri)
    return client


# ------------------------------------------------ runs whose process is gone (kill -9)

OWNER_PID = "nlpflow.pid"
OWNER_START = "nlpflow.pid_start"
OWNER_HOST = "nlpflow.host"
OWNER_PROJECT = "nlpflow.project"
CLOSED_REASON = "nlpflow.closed_reason"


def owner_tags(project: Path, owner: str | None = None) -> dict[str, str]:
    """The process that will close a run: `owner` (`<pid>@<start>`, a `dvc repro` whose stage
    processes share the run) or this process; its host; the project."""
    from nlpflow.pipeline.locking import process_start, this_host

    if owner and "@" in owner:
        pid, _, start = owner.partition("@")
    else:
        pid, start = str(os.getpid()), process_start(os.getpid()) or ""
    return {OWNER_PID: pid, OWNER_START: start, OWNER_HOST: this_host(),
            OWNER_PROJECT: str(project)}  # fmt: skip


class OpenRun:
    """A RUNNING run of this project, and whether its owner still runs."""

    def __init__(self, run: Any, *, state: str, why: str) -> None:
        self.run_id: str = run.info.run_id
        self.name: str = run.info.run_name or ""
        self.tags: dict[str, str] = dict(run.data.tags)
        self.state = state  # live | gone | other-host | unowned
        self.why = why


def find_open_runs(tracker: Tracker) -> list[OpenRun]:
    """Every RUNNING run of this project (runs of other projects on a shared server are left
    out), each judged: live (its process runs), gone (its process on this host is gone, or
    the pid now belongs to another process), other-host, or unowned (no owner recorded)."""
    from nlpflow.pipeline.locking import process_alive, this_host

    project, host = str(tracker.settings.home), this_host()
    listed = tracker._call("listing experiments", tracker.client.search_experiments)
    experiments = [e.experiment_id for e in listed]
    found: list[OpenRun] = []
    for start in range(0, len(experiments), 100):  # MLflow's limit of experiments per search
        runs = tracker._call("looking for open runs", partial(
            tracker.client.search_runs, experiments[start : start + 100],
            filter_string="attributes.status = 'RUNNING'",
        ))  # fmt: skip
        for run in runs:
            tags = run.data.tags
            if tags.get(OWNER_PROJECT, project) != project:
                continue
            pid, owner_host = tags.get(OWNER_PID), tags.get(OWNER_HOST)
            if pid is None or not pid.isdigit():
                found.append(OpenRun(run, state="unowned", why="no owner process recorded"))
            elif owner_host != host:
                found.append(OpenRun(run, state="other-host", why=f"process {pid} on {owner_host}"))
            elif process_alive(int(pid), tags.get(OWNER_START) or None):
                found.append(OpenRun(run, state="live", why=f"process {pid} still runs"))
            else:
                found.append(OpenRun(run, state="gone", why=f"process {pid} on {host} is gone"))
    return found


def close_stale_runs(tracker: Tracker, *, by: str, dry_run: bool = False) -> list[OpenRun]:
    """Close this project's RUNNING runs whose process on this host is gone as KILLED, with
    the reason as tag `nlpflow.closed_reason`; returns them. Never a live run, never a run of
    another host (`find_open_runs` reports those)."""
    stale = [run for run in find_open_runs(tracker) if run.state == "gone"]
    if dry_run:
        return stale
    when = time.strftime("%Y-%m-%d %H:%M:%S%z")
    for run in stale:
        reason = f"{run.why}; closed by {by} at {when}"
        tracker.set_tags(run.run_id, {CLOSED_REASON: reason})
        tracker.client.set_terminated(run.run_id, status="KILLED")
        log.warning("closed MLflow run %s (%s) as KILLED: %s", run.run_id, run.name, reason)
    return stale
