"""A full disk is a message naming the fix, found however deep the store wrapped it."""

from __future__ import annotations

import errno
import sqlite3

from nlpflow.errors import DiskFullError, disk_full


def _wrapped(inner: BaseException) -> Exception:
    try:
        try:
            raise inner
        except BaseException as exc:
            raise RuntimeError("the store failed") from exc
    except RuntimeError as outer:
        return outer


def test_enospc_and_sqlites_full_database_are_a_disk_full_error() -> None:
    full = disk_full(OSError(errno.ENOSPC, "No space left on device", "/p/models/x"), doing="train")
    assert isinstance(full, DiskFullError)
    assert "(/p/models/x) while train" in str(full) and "Free space" in str(full)
    deep = disk_full(_wrapped(sqlite3.OperationalError("database or disk is full")), doing="x")
    assert isinstance(deep, DiskFullError) and deep.code == "NLP009" and not deep.retryable


def test_other_errors_are_left_alone() -> None:
    assert disk_full(_wrapped(OSError(errno.EACCES, "Permission denied")), doing="x") is None
    assert disk_full(ValueError("bad"), doing="x") is None


def test_sqlites_own_error_code_is_read_not_only_its_message(tmp_path) -> None:
    connection = sqlite3.connect(tmp_path / "small.db")
    connection.execute("PRAGMA max_page_count=2")  # a database that fills up at once
    connection.execute("CREATE TABLE t(x)")
    try:
        connection.executemany("INSERT INTO t VALUES (?)", [("x" * 1000,)] * 100)
        raise AssertionError("the database did not fill up")
    except sqlite3.OperationalError as real:
        assert real.sqlite_errorcode == sqlite3.SQLITE_FULL
        real.args = ("worded otherwise by another SQLite",)  # the code decides, not the text
        assert isinstance(disk_full(_wrapped(real), doing="x"), DiskFullError)
    finally:
        connection.close()
    # a server's full disk reaches a client as text only (MLflow's REST, Prefect's API)
    said = RuntimeError("INTERNAL_ERROR: (sqlite3.OperationalError) database or disk is full")
    assert isinstance(disk_full(said, doing="x"), DiskFullError)
