"""Where parallel work runs: a setting (`NLPFLOW_ENGINE`), never code or params.

    NLPFLOW_ENGINE=local              # this process (the default)
    NLPFLOW_ENGINE=processes          # NLPFLOW_WORKERS processes of this machine
    NLPFLOW_ENGINE=dask               # a local Dask cluster of NLPFLOW_WORKERS processes
    NLPFLOW_ENGINE=dask://host:8786   # an existing Dask scheduler
    NLPFLOW_ENGINE=ray                # a local Ray instance
    NLPFLOW_ENGINE=ray://host:10001   # an existing Ray cluster (Ray client address)

Batch inference scores its chunks there, and `sweep.runner: engine` trains trials there.
Prefect's task runners do the work (ProcessPoolTaskRunner, prefect-dask's DaskTaskRunner,
prefect-ray's RayTaskRunner: nlpflow.tasks.engine); this module only reads the setting.
Workers on a cluster need the project folder (and any input and output file) at the same path:
a shared file system.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

EngineKind = Literal["local", "processes", "dask", "ray"]
KINDS: tuple[EngineKind, ...] = ("local", "processes", "dask", "ray")
EXTRAS = {"dask": "prefect_dask", "ray": "prefect_ray"}  # engine -> the module it needs


@dataclass(frozen=True)
class Engine:
    kind: EngineKind
    address: str | None  # a cluster to join; None: start a local one (dask, ray)
    workers: int  # parallel workers: processes or cluster workers started here

    @property
    def parallel(self) -> bool:
        return self.kind != "local"

    @property
    def cluster(self) -> bool:
        """Dask or Ray: an optional extra, with a dashboard."""
        return self.kind in EXTRAS

    def describe(self) -> str:
        if self.kind == "local":
            return "local (this process)"
        if self.address:
            return f"{self.kind} at {self.address}"
        unit = "processes" if self.kind == "processes" else f"local {self.kind} workers"
        return f"{self.kind} ({self.workers} {unit})"


def default_workers() -> int:
    """The cores this process may use (a container's CPU set, not the host's)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def parse_engine(text: str, *, workers: int | None = None) -> Engine:
    """`local`, `processes`, `dask`, `dask://host:port`, `ray` or `ray://host:port`."""
    value = (text or "local").strip()
    count = workers if workers is not None else default_workers()
    if count < 1:
        raise ValueError(f"NLPFLOW_WORKERS={count}: give 1 or more workers")
    scheme, sep, rest = value.partition("://")
    kind = scheme.lower()
    if kind not in KINDS or (sep and kind not in {"dask", "ray"}) or (sep and not rest):
        raise ValueError(
            f"NLPFLOW_ENGINE={value!r} is not an engine: give local, processes, dask, "
            "dask://scheduler-host:8786, ray or ray://head-host:10001"
        )
    if not sep:
        return Engine(kind, None, count)  # checked against KINDS
    # Dask's scheduler speaks tcp://; Ray's client takes ray:// as given
    address = f"tcp://{rest}" if kind == "dask" else value
    return Engine(kind, address, count)
