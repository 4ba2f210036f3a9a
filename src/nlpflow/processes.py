"""Processes by pid: whether one still runs (a reused pid does not count), this host, this
process's command line. Standard library only, for every layer: the project lock
(nlpflow.pipeline.locking) and the tracking adapter's owner of a run (nlpflow.tracking) use it.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path


def process_info(pid: int) -> tuple[int, str, list[str]] | None:
    """(parent pid, start time, argv) of `pid`, None when there is no such process: from /proc
    on Linux (start time in clock ticks since boot), else from `ps`."""
    proc = Path("/proc") / str(pid)
    try:
        stat = (proc / "stat").read_text()
        argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
        fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        return int(fields[1]), fields[19], [a for a in argv if a]
    except (OSError, IndexError, ValueError):
        if Path("/proc/self").exists():
            return None  # Linux: no such process
    import subprocess

    try:
        done = subprocess.run(["ps", "-o", "ppid=,lstart=,command=", "-p", str(pid)],
                              capture_output=True, text=True, timeout=5)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    parts = done.stdout.split()
    if done.returncode != 0 or len(parts) < 7:
        return None
    return int(parts[0]), " ".join(parts[1:6]), parts[6:]


def process_start(pid: int) -> str | None:
    found = process_info(pid)
    return found[1] if found else None


def process_alive(pid: int, start: str | None) -> bool:
    """Whether `pid` still runs the process that started at `start` (a reused pid does not)."""
    found = process_start(pid)
    return found is not None and (start is None or found == start)


def session_alive(session: str | None) -> bool:
    """Whether a `<pid>@<start>` session (nlpflow.pipeline.runs.invoking_dvc) still runs."""
    if not session or "@" not in session:
        return False
    pid, _, start = session.partition("@")
    return pid.isdigit() and process_alive(int(pid), start)


def this_host() -> str:
    return socket.gethostname()


def command_line() -> str:
    """This process's command, as a person typed it: `nlpflow run --force`."""
    argv = list(sys.argv) or ["python"]
    argv[0] = Path(argv[0]).name
    return " ".join(argv)[:300]
