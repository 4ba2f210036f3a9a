"""A database that accepts the connection and never answers fails the read in bounded time
(libpq waits forever without connect_timeout), as an error the Prefect task retries."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from nlpflow.data import sources
from nlpflow.errors import SourceUnavailableError


def test_a_silent_database_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("psycopg")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.append(listener.accept()[0]), daemon=True).start()
    monkeypatch.setattr(sources, "CONNECT_TIMEOUT_S", 2)
    started = time.monotonic()
    try:
        with pytest.raises(SourceUnavailableError, match="unavailable"):
            sources.read_sql(f"postgresql://me@127.0.0.1:{port}/db", query="SELECT 1",
                             timestamp_column=None, cutoff=None)  # fmt: skip
    finally:
        listener.close()
        for connection in held:
            connection.close()
    assert time.monotonic() - started < 15
