"""One Tracker's connection to MLflow: the client, opened at first use, and what a failed
request means as nlpflow's errors.

    tracker = Tracker(settings)   # pure: no environment change, no request
    tracker.open()                # or the first call that needs the server

Opening sets MLflow's request retries and timeout where the user set none (MLflow reads them
from the environment per request: nlpflow.config.settings.MLFLOW_HTTP_DEFAULTS), builds a local
SQLite store under a lock, and sends the run statuses a server that was away could not take
(nlpflow.tracking.markers).

A failed request is one of: not found (the one answer read as "absent"), the server unreachable
(RegistryUnavailableError, retryable: nothing was decided), refused (permissions), or any other
failure, never taken for an absent model, version, alias or run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from nlpflow.errors import RegistryUnavailableError as RegistryUnavailableError
from nlpflow.errors import TrackingError
from nlpflow.tracking.markers import load_pending, write_pending

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from nlpflow.config.settings import Settings

T = TypeVar("T")
NOT_FOUND = "RESOURCE_DOES_NOT_EXIST"
ALREADY_EXISTS = "RESOURCE_ALREADY_EXISTS"
REFUSED = {"PERMISSION_DENIED", "UNAUTHENTICATED"}
log = logging.getLogger(__name__)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and every error behind it: chained ones, and those requests and urllib3 keep as
    an argument (requests' ConnectionError holds urllib3's MaxRetryError) or a `reason`."""
    todo: list[BaseException | None] = [exc]
    seen: set[int] = set()
    while todo:
        found = todo.pop()
        if found is None or id(found) in seen:
            continue
        seen.add(id(found))
        yield found
        behind = [found.__cause__, found.__context__, getattr(found, "reason", None), *found.args]
        todo += [e for e in behind if isinstance(e, BaseException)]


def is_unreachable(exc: BaseException) -> bool:
    """Whether a request failed in transport (refused, reset, timed out, 5xx after MLflow's
    retries): MLflow raises its own exception while handling the requests error, which stays
    in the chain."""
    import requests

    return any(
        isinstance(e, requests.RequestException)
        and not isinstance(e, requests.exceptions.InvalidURL)
        for e in _causes(exc)
    )


def _transport_cause(exc: BaseException) -> str:
    import requests
    import urllib3.exceptions as u3

    causes = list(_causes(exc))
    if any(isinstance(e, ConnectionRefusedError) for e in causes):
        return "connection refused: nothing is listening there"
    timed_out = (requests.Timeout, TimeoutError, u3.ReadTimeoutError)
    if any(isinstance(e, timed_out) and not isinstance(e, u3.NewConnectionError) for e in causes):
        timeout = os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT")
        return f"no answer within MLFLOW_HTTP_REQUEST_TIMEOUT={timeout}s"
    if any(isinstance(e, requests.exceptions.RetryError | u3.ResponseError) for e in causes):
        return "it kept answering with server errors"
    return str(exc)[:300]


def unreachable_message(uri: str, doing: str, exc: BaseException) -> str:
    retries = os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "7")
    return (
        f"MLflow tracking server {uri} is unreachable while {doing} ({_transport_cause(exc)}; "
        f"retried {retries} times). Start it again or fix the network, or point "
        "NLPFLOW_TRACKING_URI at a running server, then rerun. An open run is marked FAILED once "
        "the server is back: the next nlpflow command in this project sends the status if this "
        "one could not."
    )


def error_code(exc: BaseException) -> str:
    return str(getattr(exc, "error_code", type(exc).__name__))


def not_found(exc: BaseException) -> bool:
    return error_code(exc) == NOT_FOUND


def failure(uri: str, doing: str, exc: BaseException) -> TrackingError:
    """The error for a request that failed for any reason but "not found"."""
    if is_unreachable(exc):
        return RegistryUnavailableError(unreachable_message(uri, doing, exc))
    code = error_code(exc)
    first = (str(exc).splitlines() or [""])[0][:300]
    if code in REFUSED:
        return TrackingError(
            f"MLflow at {uri} refused {doing} ({code}: {first}): give the user in "
            "MLFLOW_TRACKING_USERNAME (or the token) read access to the registered model, "
            "then rerun. Nothing was decided."
        )
    return RegistryUnavailableError(
        f"MLflow at {uri} failed while {doing} ({code}: {first}). Nothing was decided: "
        "rerun once the tracking server (or its database) works again."
    )


class Connection:
    """The client of one tracking URI (no global state), opened at first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.uri = settings.resolved_tracking_uri
        self._client: MlflowClient | None = None

    def open(self) -> MlflowClient:
        """Connect now (see the module docstring); later calls return the same client."""
        if self._client is None:
            from nlpflow.config.settings import apply_mlflow_http_defaults

            apply_mlflow_http_defaults()  # before the first request: MLflow reads them per request
            self._client = open_client(self.uri, home=self.settings.home)
            flush_pending(self)
        return self._client

    @property
    def client(self) -> MlflowClient:
        """The raw MlflowClient: for nlpflow.tracking's own modules (and tests)."""
        return self.open()

    def _call(self, doing: str, call: Callable[[], T]) -> T:
        """`call()`, with an unreachable server turned into a TrackingError that says so."""
        from mlflow.exceptions import MlflowException

        try:
            return call()
        except MlflowException as exc:
            if is_unreachable(exc):
                raise TrackingError(unreachable_message(self.uri, doing, exc)) from None
            raise

    def _lookup(self, doing: str, call: Callable[[], T]) -> T | None:
        """`call()`; None only when MLflow answers "not found", any other failure raised
        (`failure`): read as "absent", a server that did not answer would pass for no model."""
        from mlflow.exceptions import MlflowException

        try:
            return call()
        except MlflowException as exc:
            if not_found(exc):
                return None
            raise failure(self.uri, doing, exc) from None

    def _read(self, doing: str, call: Callable[[], T]) -> T:
        """`call()`, any failure raised as `failure` says."""
        from mlflow.exceptions import MlflowException

        try:
            return call()
        except MlflowException as exc:
            raise failure(self.uri, doing, exc) from None


# ------------------------------------------------------- statuses the server was away for


def flush_pending(tracker: Connection) -> None:
    """Send the statuses kept for `tracker`'s server; keep them while it is still away, or
    fails otherwise. A run the store no longer holds is dropped; a run someone already ended
    keeps what it has: only RUNNING runs are closed."""
    from mlflow.exceptions import MlflowException

    root = tracker.settings.root
    entries = load_pending(root)
    done: set[str] = set()
    for entry in (e for e in entries if e["uri"] == tracker.uri):
        try:
            run = tracker.client.get_run(entry["run_id"])
            if run.info.status == "RUNNING":
                tracker.client.set_terminated(entry["run_id"], status=entry["status"])
                log.warning("marked MLflow run %s %s (pending since %s)",
                            entry["run_id"], entry["status"], entry["since"])  # fmt: skip
        except MlflowException as exc:
            if is_unreachable(exc):
                break  # still away: keep this one and the rest for the next command
            if not not_found(exc):
                log.warning("kept the pending status of run %s for the next command: %s",
                            entry["run_id"], str(exc).splitlines()[0][:300])  # fmt: skip
                continue
            log.warning("dropped the pending status of run %s: not in %s",
                        entry["run_id"], tracker.uri)  # fmt: skip
        done.add(entry["run_id"])
    if done:
        write_pending(root, [e for e in entries if e["run_id"] not in done])


# ------------------------------------------------------------ a fresh SQLite store, once

_STORES_READY: set[str] = set()


def open_client(uri: str, *, home: Path) -> MlflowClient:
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
