"""An http(s) source against a real HTTP server on 127.0.0.1: pin, cache, errors, retries."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from nlpflow.config.params import parse_params
from nlpflow.config.settings import Settings
from nlpflow.data.sources import fetch_http
from nlpflow.errors import DataSourceError, SourceUnavailableError
from nlpflow.pipeline.runs import make_context

DATA = (
    "text,label\n" + "".join(f"parcel {i} late,shipping\nrefund {i},billing\n" for i in range(10))
).encode()
SHA = hashlib.sha256(DATA).hexdigest()


class Server:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {"/tickets.csv": DATA}
        self.fail_next = 0
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                if server.fail_next:
                    server.fail_next -= 1
                    self.send_error(503, "Service Unavailable")
                    return
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    thread = threading.Thread(target=srv.httpd.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.httpd.shutdown()


def test_pinned_download_is_cached_and_reused_offline(server: Server, tmp_path: Path) -> None:
    url = f"{server.url}/tickets.csv"
    first = fetch_http(url, cache=tmp_path, sha256=SHA)
    assert first.read_bytes() == DATA and first.name == "tickets.csv"
    again = fetch_http(url, cache=tmp_path, sha256=SHA)
    assert again == first
    assert server.requests == ["/tickets.csv"]  # the second call never reached the server


def test_a_changed_file_breaks_the_pin(server: Server, tmp_path: Path) -> None:
    server.files["/tickets.csv"] = DATA + b"new row,billing\n"
    with pytest.raises(DataSourceError, match=f"data.sha256 pins {SHA}: the server's file changed"):
        fetch_http(f"{server.url}/tickets.csv", cache=tmp_path, sha256=SHA)
    assert not any(p.is_file() for p in tmp_path.rglob("*"))  # nothing half-written is kept


def test_client_and_server_errors_differ(server: Server, tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match="answered 404") as missing:
        fetch_http(f"{server.url}/nope.csv", cache=tmp_path)
    assert missing.value.retryable is False
    server.fail_next = 1
    with pytest.raises(SourceUnavailableError, match="answered 503") as down:
        fetch_http(f"{server.url}/tickets.csv", cache=tmp_path)
    assert down.value.retryable is True


def test_gather_task_retries_a_failing_server(
    server: Server, tmp_path: Path, prefect_api: str
) -> None:
    from prefect import flow

    from nlpflow.tasks.stages import STAGE_TASKS

    params = parse_params({"data": {"source": f"{server.url}/tickets.csv", "sha256": SHA}})
    ctx = make_context(tmp_path, params, Settings(project_dir=tmp_path), tracked=False)
    server.fail_next = 1  # the first attempt meets a 503

    @flow
    def gather_once() -> object:
        return STAGE_TASKS["gather"](ctx, "", return_state=True)

    state = gather_once()
    assert state.is_completed()
    assert server.requests == ["/tickets.csv", "/tickets.csv"]
    assert state.result().report.rows == {"train": 14, "validation": 2, "test": 4}
    assert (tmp_path / "data/gathered/train.parquet").exists()
