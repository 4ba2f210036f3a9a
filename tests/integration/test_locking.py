"""The project lock (nlpflow.pipeline.locking) between real processes: a second run waits or refuses
naming the holder, kill -9 frees it, a `dvc repro` session keeps it between its stages."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from nlpflow.pipeline.locking import (
    ProjectBusyError,
    lock_path,
    lock_state,
    process_start,
    project_lock,
    read_holder,
)

HOLD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from nlpflow.pipeline.locking import note_run, project_lock
    session = sys.argv[2] or None
    with project_lock(Path(sys.argv[1]), session=session):
        note_run(Path(sys.argv[1]), "run-of-the-holder")
        print("held", flush=True)
        time.sleep(float(sys.argv[3]))
    """
)


def _holder(root: Path, *, seconds: float = 60, session: str = "") -> subprocess.Popen[str]:
    """A process that takes the lock, says so, and keeps it for `seconds`."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(root), session, str(seconds)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout is not None and process.stdout.readline().strip() == "held"
    return process


def test_second_run_refuses_naming_the_holder_and_kill_9_frees_the_lock(tmp_path: Path) -> None:
    holder = _holder(tmp_path)
    try:
        with pytest.raises(ProjectBusyError) as refused, project_lock(tmp_path, wait=False):
            pass
        message = str(refused.value)
        assert f"pid {holder.pid}" in message and "run-of-the-holder" in message
        assert "--wait" in message  # how to wait instead
        assert lock_state(tmp_path)[0] is True
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the kernel dropped the flock with the process: nobody cleans anything
    assert lock_state(tmp_path)[0] is False
    with project_lock(tmp_path, wait=False) as record:
        assert record["pid"] == os.getpid()
        assert read_holder(tmp_path)["pid"] == os.getpid()  # type: ignore[index]
    assert read_holder(tmp_path) is None  # released: the record is cleared


def test_a_waiting_run_says_whom_it_waits_for_once_then_runs(tmp_path: Path) -> None:
    holder = _holder(tmp_path, seconds=2)
    lines: list[str] = []
    started = time.monotonic()
    with project_lock(tmp_path, wait=True, say=lines.append):
        waited = time.monotonic() - started
    holder.wait()
    assert waited >= 1.0  # it did wait for the holder to end
    assert len(lines) == 1 and lines[0].startswith("waiting for ")
    assert f"pid {holder.pid}" in lines[0] and "NLPFLOW_LOCK=fail" in lines[0]


def test_a_wait_gives_up_after_the_timeout(tmp_path: Path) -> None:
    holder = _holder(tmp_path)
    try:
        started = time.monotonic()
        with (
            pytest.raises(ProjectBusyError, match="NLPFLOW_LOCK_TIMEOUT"),
            project_lock(tmp_path, wait=True, timeout=1, say=lambda _: None),
        ):
            pass
        assert 0.9 <= time.monotonic() - started < 10
    finally:
        holder.kill()
        holder.wait()


def test_reentrant_in_one_process(tmp_path: Path) -> None:
    with project_lock(tmp_path, wait=False), project_lock(tmp_path, wait=False):
        assert lock_state(tmp_path)[0] is True
    assert lock_state(tmp_path)[0] is False


def test_a_dvc_session_keeps_the_project_between_its_stages(tmp_path: Path) -> None:
    """One `dvc repro` runs a process per stage: between two of them, another run must not
    get in, while a later stage of the same dvc process must."""
    dvc = subprocess.Popen(["sleep", "60"])  # stands for the `dvc repro` process
    session = f"{dvc.pid}@{process_start(dvc.pid)}"
    try:
        stage = _holder(tmp_path, seconds=0, session=session)  # a stage that ran and ended
        stage.wait()
        record = json.loads(lock_path(tmp_path).read_text())
        assert record["session"] == session
        assert lock_state(tmp_path)[0] is True
        with (
            pytest.raises(ProjectBusyError, match=f"dvc process {dvc.pid}"),
            project_lock(tmp_path, wait=False),
        ):
            pass
        with project_lock(tmp_path, wait=False, session=session):  # its next stage
            pass
    finally:
        dvc.kill()
        dvc.wait()
    with project_lock(tmp_path, wait=False):  # the dvc process is gone: free
        pass
