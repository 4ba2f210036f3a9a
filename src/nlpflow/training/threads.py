"""How many torch threads a CPU training takes when train.cpu_threads is null: the cores this
process may use, less those other processes keep busy right now.

    threads, why = choose_threads(None)      # e.g. (1, "2 cores, 1.7 busy with other work")

NLPFLOW_CPU_THREADS, where set, is the count instead (a machine's fixed choice; `nlpflow
reproduce` sets it to the count the run it rebuilds trained with). "Other work" is what
processes outside this one's own family do: its parents (the nlpflow CLI, dvc) and children (the
temporary Prefect server of a flow run) are nlpflow's own orchestration, waiting on this
training, so `nlpflow run` and `dvc repro` of the same params choose alike on an idle machine.

The count is part of the result: torch sums a layer's gradients in per-thread pieces, so a
training on 1 thread and on 2 ends a few float rounding steps apart (the same scores to many
digits, other model bytes). The train stage tags it on the run (`device.cpu_threads`); a
bit-identical `dvc repro` whatever the machine's load needs train.cpu_threads or
NLPFLOW_CPU_THREADS set.

Why not simply every core: torch's threads wait for each other at every matrix multiply, so
one thread preempted by another process stalls them all. On this project's 2-core VM with
both cores busy elsewhere, 2 threads trained at 1.8 examples/s and 1 thread at 12
(`python bench/threads.py` measures the choice against fixed counts under load).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from nlpflow.errors import ParamsError

SAMPLE_SECONDS = 0.5  # how long the machine's CPU use is sampled before training starts
ENV_THREADS = "NLPFLOW_CPU_THREADS"


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


def _own_family() -> list[Any]:
    """This process, the processes it started (recursively) and those that started it."""
    import psutil

    me = psutil.Process()
    family = {p.pid: p for p in [me, *me.children(recursive=True), *me.parents()]}
    return list(family.values())


def _cpu_seconds(process: Any) -> float | None:
    import psutil

    try:
        times = process.cpu_times()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    return float(times.user + times.system)


def cpu_use(seconds: float = SAMPLE_SECONDS) -> tuple[float, float]:
    """(every process, this one's family): cores' worth of CPU used over `seconds`."""
    import psutil

    family = _own_family()
    before = {p.pid: _cpu_seconds(p) for p in family}
    total = psutil.cpu_percent(interval=seconds) / 100 * (psutil.cpu_count(logical=True) or 1)
    own = 0.0
    for process in family:
        start, end = before[process.pid], _cpu_seconds(process)
        if start is not None and end is not None:
            own += max(0.0, end - start)
    return total, own / seconds


def busy_elsewhere(seconds: float = SAMPLE_SECONDS) -> float:
    """Cores' worth of CPU that processes outside this one's family (module docstring) used
    over `seconds`."""
    total, own = cpu_use(seconds)
    return max(0.0, total - own)


def _from_environment() -> int | None:
    raw = os.environ.get(ENV_THREADS, "").strip()
    if not raw:
        return None
    try:
        threads = int(raw)
    except ValueError:
        threads = 0
    if threads < 1:
        raise ParamsError(
            f"{ENV_THREADS}={raw!r} is not a thread count: set a whole number of 1 or more, "
            "or unset it to let training choose from the cores other work leaves free."
        )
    return threads


def choose_threads(requested: int | None) -> tuple[int, str]:
    """(threads, why): `requested` as is, else NLPFLOW_CPU_THREADS, else the usable cores less
    the busy ones (at least one), rounded to the nearest."""
    if requested is not None:
        return requested, "train.cpu_threads"
    fixed = _from_environment()
    if fixed is not None:
        return fixed, ENV_THREADS
    cores = usable_cores()
    busy = busy_elsewhere()
    threads = max(1, min(cores, math.floor(cores - busy + 0.5)))
    return threads, f"{cores} usable cores, {busy:.1f} busy with other work"
