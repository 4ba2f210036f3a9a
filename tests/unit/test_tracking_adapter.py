"""The MLflow adapter without a store: building a Tracker touches nothing, and a failed request
is told apart by the errors in its chain, not by MLflow's wording."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest
import requests
import urllib3.exceptions

from nlpflow.config.settings import Settings
from nlpflow.tracking.connection import is_unreachable, not_found, unreachable_message
from nlpflow.tracking.tracker import Tracker


def _dead_port() -> int:
    with socket.socket() as sock:  # a port nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_building_a_tracker_sets_no_environment_and_opens_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
        monkeypatch.delenv(key)
    monkeypatch.delenv("NLPFLOW_TRACKING_URI", raising=False)
    before = dict(os.environ)
    local = Tracker(Settings(project_dir=tmp_path))
    assert dict(os.environ) == before  # MLflow's HTTP defaults wait for open()
    monkeypatch.setenv("NLPFLOW_TRACKING_URI", f"http://127.0.0.1:{_dead_port()}")
    before = dict(os.environ)
    started = time.monotonic()
    away = Tracker(Settings(project_dir=tmp_path))
    assert time.monotonic() - started < 1.0  # no request, no retries
    assert dict(os.environ) == before
    assert list(tmp_path.iterdir()) == []  # no SQLite store, no .nlpflow/
    assert local.uri == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert away.uri.startswith("http://127.0.0.1:")


class _MlflowLike(Exception):
    """Stands for MlflowException: raised while handling the transport error, as MLflow does."""

    def __init__(self, message: str, error_code: str = "INTERNAL_ERROR") -> None:
        super().__init__(message)
        self.error_code = error_code


def _raised_while_handling(cause: BaseException) -> BaseException:
    try:
        try:
            raise cause
        except Exception:
            raise _MlflowLike("API request to http://x/api failed with exception ...") from None
    except _MlflowLike as exc:
        return exc


def _refused() -> BaseException:
    refused = ConnectionRefusedError(111, "Connection refused")
    new = urllib3.exceptions.NewConnectionError(None, f"Failed to establish: {refused}")  # type: ignore[arg-type]
    new.__cause__ = refused
    retries = urllib3.exceptions.MaxRetryError(None, "/api", reason=new)  # type: ignore[arg-type]
    return requests.ConnectionError(retries)


@pytest.mark.parametrize(
    ("cause", "says"),
    [
        (_refused(), "connection refused: nothing is listening there"),
        (requests.ReadTimeout("read timed out"), "no answer within MLFLOW_HTTP_REQUEST_TIMEOUT"),
        (requests.exceptions.RetryError("too many 503"), "kept answering with server errors"),
    ],
)
def test_transport_failures_are_found_by_type(cause: BaseException, says: str) -> None:
    exc = _raised_while_handling(cause)
    assert is_unreachable(exc) and not not_found(exc)
    assert says in unreachable_message("http://x", "logging metrics", exc)


def test_answers_of_a_server_are_not_transport_failures() -> None:
    missing = _MlflowLike("Run 'x' not found", error_code="RESOURCE_DOES_NOT_EXIST")
    assert not_found(missing) and not is_unreachable(missing)
    # MLflow's words alone mean nothing: only the chained requests error does
    worded = _MlflowLike("API request to http://x failed with exception boom")
    assert not is_unreachable(worded)
    bad_url = _raised_while_handling(requests.exceptions.InvalidURL("no host"))
    assert not is_unreachable(bad_url)  # a configuration error: retrying cannot help
