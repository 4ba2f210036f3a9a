"""Remote sources gather reads from: http(s) downloads with a sha256 pin and a local cache,
and SQL queries through SQLAlchemy with a reproducible timestamp cut-off.

A download goes to `<cache>/<sha256 of the URL>/<file name>`. With a pin, a cached file that
matches is used without touching the network; a download that does not match is an error (the
server's file changed). Server failures (5xx, timeouts) raise SourceUnavailableError, which the
Prefect gather task retries with backoff; 4xx answers are the user's to fix and are not retried.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

from nlpflow.errors import DataSourceError, SourceUnavailableError

TIMEOUT_S = 60


def is_url(source: str) -> bool:
    return urlparse(source).scheme in {"http", "https"}


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_http(url: str, *, cache: Path, sha256: str | None = None) -> Path:
    """The local copy of `url`, downloaded unless a pinned copy is already cached."""
    name = PurePosixPath(urlparse(url).path).name or "download"
    target = cache / hashlib.sha256(url.encode()).hexdigest()[:16] / name
    if sha256 is not None and target.exists() and _digest(target) == sha256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=target.parent, prefix=".partial-")
    try:
        with (
            os.fdopen(handle, "wb") as out,
            urllib.request.urlopen(url, timeout=TIMEOUT_S) as answer,
        ):
            for block in iter(lambda: answer.read(1 << 20), b""):
                out.write(block)
        got = _digest(Path(partial))
        if sha256 is not None and got != sha256:
            raise DataSourceError(
                f"{url} has sha256 {got}, but data.sha256 pins {sha256}: the server's file "
                "changed. Check it, then update the pin (or remove it to accept any content)."
            )
        os.replace(partial, target)  # a reader never sees half a file
    except urllib.error.HTTPError as exc:
        if exc.code >= 500:
            raise SourceUnavailableError(
                f"{url} answered {exc.code} {exc.reason}; will retry."
            ) from None
        raise DataSourceError(
            f"{url} answered {exc.code} {exc.reason}: check data.source."
        ) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SourceUnavailableError(
            f"{url} could not be reached ({reason}); will retry."
        ) from None
    finally:
        Path(partial).unlink(missing_ok=True)
    return target


DATABASE_SCHEMES = ("postgresql", "postgres", "mysql", "mariadb", "sqlite", "mssql", "oracle")


def is_database_url(source: str) -> bool:
    return urlparse(source).scheme.split("+")[0] in DATABASE_SCHEMES


def dvc_can_track(source: str) -> bool:
    """DVC takes files, folders and http(s) URLs as dependencies; not globs or databases."""
    from nlpflow.data import is_glob

    return not is_database_url(source) and not is_glob(Path(source))


def read_sql(
    url: str, *, query: str | None, timestamp_column: str | None, cutoff: str | None
) -> tuple[Any, str | None]:
    """Run `query`; with a timestamp column keep rows up to the cut-off, oldest first.

    Returns the rows and the cut-off used (the current time when none was given), so the
    manifest can record it and a later run can gather the very same snapshot.
    """
    import pandas as pd
    import sqlalchemy as sa

    if not query:
        raise DataSourceError(f"data.source {url!r} is a database: set data.query to the SQL.")
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    sql, bind = query, {}
    if timestamp_column:
        cutoff = cutoff or datetime.now(UTC).isoformat(timespec="seconds")
        column = engine.dialect.identifier_preparer.quote(timestamp_column)
        sql = (
            f"SELECT * FROM ({query}) AS nlpflow_source WHERE {column} <= :cutoff ORDER BY {column}"
        )
        bind = {"cutoff": datetime.fromisoformat(cutoff)}
    try:
        with engine.connect() as connection:
            frame = pd.read_sql_query(sa.text(sql), connection, params=bind, dtype=object)
    except sa.exc.OperationalError as exc:  # cannot connect, server gone: worth a retry
        raise SourceUnavailableError(f"database {engine.url!r} unavailable: {exc.orig}") from None
    except (sa.exc.DBAPIError, pd.errors.DatabaseError) as exc:  # the SQL is wrong: user's to fix
        detail = getattr(exc, "orig", None) or getattr(exc.__cause__, "orig", None) or exc
        raise DataSourceError(f"data.query failed on {engine.url!r}: {detail}") from None
    finally:
        engine.dispose()
    return frame, cutoff
