"""How many torch threads a CPU training takes when train.cpu_threads is null: the cores this
process may use, less those other processes keep busy right now.

    threads, why = choose_threads(None)      # e.g. (1, "2 cores, 1.7 busy with other work")

Why not simply every core: torch's threads wait for each other at every matrix multiply, so
one thread preempted by another process stalls them all. On this project's 2-core VM with
both cores busy elsewhere, 2 threads trained at 1.8 examples/s and 1 thread at 12
(`python bench/threads.py` measures the choice against fixed counts under load).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

SAMPLE_SECONDS = 0.5  # how long the machine's CPU use is sampled before training starts


def usable_cores() -> int:
    """Physical cores this process may run on: its CPU affinity (taskset, Kubernetes'
    cpuset), a cgroup CPU quota (docker --cpus, a pod's limit), hyper-threads not counted."""
    import psutil

    logical = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    logical = logical or psutil.cpu_count(logical=True) or 1
    physical = psutil.cpu_count(logical=False) or logical
    total = psutil.cpu_count(logical=True) or logical
    cores = max(1, logical * physical // total)  # the affinity's share of physical cores
    quota = _cgroup_quota()
    return max(1, min(cores, math.ceil(quota))) if quota else cores


def _cgroup_quota() -> float | None:
    """cgroup v2's cpu.max as cores (None: no limit, or no cgroup v2)."""
    try:
        limit, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    return None if limit == "max" else int(limit) / int(period)


def busy_elsewhere(seconds: float = SAMPLE_SECONDS) -> float:
    """Cores' worth of CPU that processes other than this one used over `seconds`."""
    import psutil

    me = psutil.Process()
    me.cpu_percent(None)
    total = psutil.cpu_percent(interval=seconds) / 100 * (psutil.cpu_count(logical=True) or 1)
    return max(0.0, total - me.cpu_percent(None) / 100)


def choose_threads(requested: int | None) -> tuple[int, str]:
    """(threads, why): `requested` as is, else the usable cores less the busy ones (at least
    one), rounded to the nearest."""
    if requested is not None:
        return requested, "train.cpu_threads"
    cores = usable_cores()
    busy = busy_elsewhere()
    threads = max(1, min(cores, math.floor(cores - busy + 0.5)))
    return threads, f"{cores} usable cores, {busy:.1f} busy with other work"
