"""One pipeline run at a time per project: an exclusive lock on `<project>/.nlpflow/run.lock`.

    with project_lock(root, wait=True):      # what `nlpflow run`, the sweep and `nlpflow stage` do
        ...                                  # nobody else trains, registers or writes dvc.lock

The lock is `fcntl.flock` on that file: the kernel drops it when its holder exits, however it
exits (kill -9 too), so there is never a stale lock to clean by hand. The file records the
holder (pid, host, when, the command, its MLflow run once known), so a second run can say whom
it waits for, or name the holder when it refuses (settings `lock`, `lock_timeout`: NLPFLOW_LOCK,
NLPFLOW_LOCK_TIMEOUT; `nlpflow run --wait/--no-wait`).

Re-entrant within a process (a flow that runs stages that would take it again). `dvc repro`
runs one `nlpflow stage` process per stage: each takes the lock for its stage and leaves the
record naming the `dvc` process (its session), and until that process exits the lock counts
as held by it between its stages too; so a second `dvc repro` (or `nlpflow run`) never runs
a stage between two of the first's. A queued DVC experiment runs in its own copy of the
repository (`.dvc/tmp/exps/...`): another project root, another lock, no deadlock with the
user's project.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nlpflow.errors import ProjectBusyError as ProjectBusyError
from nlpflow.processes import command_line, process_start, session_alive, this_host
from nlpflow.processes import process_info as process_info  # pipeline.runs imports it from here

LOCK_FILE = Path(".nlpflow") / "run.lock"
POLL_SECONDS = 0.5  # between tries while waiting: short next to any pipeline run


# ------------------------------------------------------------------ the holder record


def lock_path(root: Path) -> Path:
    return root / LOCK_FILE


def read_holder(root: Path) -> dict[str, Any] | None:
    """What the lock file says about its last holder; None when empty or unreadable (a
    holder writing it this instant)."""
    try:
        found = json.loads(lock_path(root).read_text() or "null")
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) and found.get("pid") else None


def describe(holder: dict[str, Any] | None) -> str:
    """`nlpflow run --force` (pid 1234 on host h, started 2024-05-01 10:00:03, MLflow run x)."""
    if holder is None:
        return "another nlpflow process (it has not written who it is yet)"
    where = f"pid {holder['pid']} on {holder.get('host', '?')}"
    parts = [where, f"started {holder.get('since', '?')}"]
    if holder.get("run_id"):
        parts.append(f"MLflow run {holder['run_id']}")
    if holder.get("session"):
        parts.append(f"for dvc process {holder['session'].partition('@')[0]}")
    return f"`{holder.get('command', '?')}` ({', '.join(parts)})"


def _record(session: str | None, run_id: str | None) -> dict[str, Any]:
    return {
        "pid": os.getpid(), "pid_start": process_start(os.getpid()), "host": this_host(),
        "since": time.strftime("%Y-%m-%d %H:%M:%S"), "command": command_line(),
        "run_id": run_id, "session": session,
    }  # fmt: skip


def _write(fd: int, record: dict[str, Any] | None) -> None:
    data = json.dumps(record).encode() if record else b""
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)


# ------------------------------------------------------------------ taking it


class _Held:
    def __init__(self, fd: int, record: dict[str, Any]) -> None:
        self.fd, self.record, self.depth = fd, record, 1


_HELD: dict[Path, _Held] = {}
_GUARD = threading.Lock()


def _try_take(path: Path, session: str | None) -> tuple[int | None, dict[str, Any] | None]:
    """(fd holding the lock, None) or (None, the holder who has it)."""
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None, read_holder(path.parents[1])
    last = read_holder(path.parents[1])
    other_session = last is not None and last.get("session") not in (None, session)
    if other_session and last is not None and session_alive(last.get("session")):
        os.close(fd)  # closing drops the flock: the other dvc process is between two stages
        return None, last
    return fd, None


@contextmanager
def project_lock(
    root: Path,
    *,
    wait: bool = True,
    timeout: float | None = None,
    session: str | None = None,
    say: Callable[[str], None] = print,
) -> Iterator[dict[str, Any]]:
    """Hold the project's lock for the block; yields the holder record (note_run adds the
    MLflow run to it). `wait`: wait for the holder (up to `timeout` seconds, None: as long as
    it takes) with one line saying whom for; else raise ProjectBusyError naming the holder.
    `session`: the `dvc` process this stage belongs to (its other stages may take it too)."""
    path = lock_path(root.resolve())
    with _GUARD:
        held = _HELD.get(path)
        if held is not None:
            held.depth += 1
    if held is not None:  # this process has it already: a nested run
        try:
            yield held.record
        finally:
            with _GUARD:
                held.depth -= 1
        return
    fd = _acquire(path, wait=wait, timeout=timeout, session=session, say=say)
    held = _Held(fd, _record(session, None))
    _write(fd, held.record)
    with _GUARD:
        _HELD[path] = held
    try:
        yield held.record
    finally:
        with _GUARD:
            del _HELD[path]
        # a dvc session's record stays: it holds the project between its stages
        _write(fd, held.record if session else None)
        os.close(fd)


def _acquire(
    path: Path, *, wait: bool, timeout: float | None, session: str | None,
    say: Callable[[str], None],
) -> int:  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = None if timeout is None else time.monotonic() + timeout
    told: str | None = None
    while True:
        fd, holder = _try_take(path, session)
        if fd is not None:
            return fd
        who = describe(holder)
        if not wait:
            raise ProjectBusyError(
                f"another run is using project {path.parents[1]}: {who}. Wait for it with "
                "`nlpflow run --wait` (or NLPFLOW_LOCK=wait; NLPFLOW_LOCK_TIMEOUT=SECONDS caps "
                "the wait), or stop that process first."
            )
        if deadline is not None and time.monotonic() >= deadline:
            raise ProjectBusyError(
                f"waited {timeout:g} s for {who} to finish with project {path.parents[1]}; it "
                "still runs. Raise NLPFLOW_LOCK_TIMEOUT (unset: wait as long as it takes), or "
                "stop that process."
            )
        if who != told:
            say(
                f"waiting for {who} to finish; NLPFLOW_LOCK=fail (or --no-wait) refuses "
                "instead of waiting"
            )
            told = who
        time.sleep(POLL_SECONDS)


def note_run(root: Path, run_id: str) -> None:
    """Add the MLflow run to this process's holder record (who waits sees which run)."""
    held = _HELD.get(lock_path(root.resolve()))
    if held is not None and held.record.get("run_id") is None:
        held.record["run_id"] = run_id
        _write(held.fd, held.record)


def lock_state(root: Path) -> tuple[bool, dict[str, Any] | None]:
    """(whether someone holds the lock now, the holder record) without taking it: for
    `nlpflow doctor`. A dvc session between two stages counts as holding it."""
    import fcntl

    path = lock_path(root.resolve())
    if not path.exists():
        return False, None
    if path in _HELD:
        return True, _HELD[path].record
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True, read_holder(root)
    finally:
        os.close(fd)
    holder = read_holder(root)
    return bool(holder and session_alive(holder.get("session"))), holder
