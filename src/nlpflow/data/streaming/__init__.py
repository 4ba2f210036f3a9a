"""The streaming data path: gather, validate and preprocess in chunks, with bounded memory.

    plan = plan_chunks(runtime, stage="validate", rows=n, bytes_per_row=b, cost=VALIDATE_COST)
    if plan is not None:            # None: the in-memory path
        ...read plan.rows rows at a time...

`runtime.max_memory_mb` is the peak RSS a stage aims for. A chunk gets what is left once the
process itself (its imported libraries, measured on the spot) and the data-wide state (the
exact counts and 64-bit text hashes behind duplicates, leaks and splits: a few dozen bytes a
row) are paid for; `RowCost` turns the bytes a row takes in Parquet into the bytes it takes
while the stage works on it (measured: bench/scale_data.py). The outputs never depend on the
chunk size: each streaming path is tested to give what the in-memory path gives.
"""

from __future__ import annotations

import logging
import os
import resource
from dataclasses import dataclass
from pathlib import Path

from nlpflow.config.params import RuntimeParams
from nlpflow.errors import ParamsError

log = logging.getLogger("nlpflow.streaming")

MB = 1 << 20
MIN_CHUNK_ROWS = 256  # smaller chunks cost more in per-chunk overhead than they save
MIN_CHUNK_MB = 16  # what a chunk must be left at least, else the budget is too small


@dataclass(frozen=True)
class RowCost:
    """Memory a row takes while a stage works on it: `factor` times its bytes in Parquet
    (uncompressed) plus `fixed` bytes (Python objects, masks, GX's per-row lists); and
    `state` bytes a row of the data-wide state takes for the whole run."""

    factor: float
    fixed: int
    state: int

    def chunk_bytes(self, rows: int, bytes_per_row: float) -> float:
        return rows * (self.factor * bytes_per_row + self.fixed)


@dataclass(frozen=True)
class ChunkPlan:
    rows: int  # rows per chunk
    why: str  # what turned streaming on, for the report and the log


def rss_mb() -> float:
    """This process's resident memory now, in MB (Linux /proc; elsewhere its peak so far)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / MB
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def available_mb() -> float | None:
    """Memory the system can give without swapping (MemAvailable), in MB; None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def plan_chunks(
    runtime: RuntimeParams | None,
    *,
    stage: str,
    rows: int,
    bytes_per_row: float,
    cost: RowCost,
) -> ChunkPlan | None:
    """Rows per chunk for `rows` rows of about `bytes_per_row` bytes, or None for the
    in-memory path (no limit asked for, and the whole data fits in half the free memory)."""
    runtime = runtime or RuntimeParams()
    if runtime.chunk_rows is not None:
        return ChunkPlan(runtime.chunk_rows, f"runtime.chunk_rows={runtime.chunk_rows}")
    if runtime.max_memory_mb is not None:
        budget, why = float(runtime.max_memory_mb), f"runtime.max_memory_mb={runtime.max_memory_mb}"
    else:
        free = available_mb()
        whole = rss_mb() + (cost.chunk_bytes(rows, bytes_per_row) + rows * cost.state) / MB
        if free is None or whole <= free / 2:
            return None
        budget = rss_mb() + free / 2
        why = f"{stage} needs ~{whole:.0f} MB in memory, {free:.0f} MB free"
        log.warning("%s: streaming in chunks (%s); set runtime.max_memory_mb to choose", stage, why)
    left = budget - rss_mb() - rows * cost.state / MB
    if left < MIN_CHUNK_MB:
        need = budget - left + MIN_CHUNK_MB + cost.chunk_bytes(MIN_CHUNK_ROWS, bytes_per_row) / MB
        raise ParamsError(
            f"runtime.max_memory_mb={budget:.0f} is too small for {stage}: the process takes "
            f"{rss_mb():.0f} MB before reading data, and the data-wide state of {rows:,} rows "
            f"~{rows * cost.state / MB:.0f} MB. Set runtime.max_memory_mb to at least {need:.0f}."
        )
    per_row = cost.factor * bytes_per_row + cost.fixed
    chunk = max(MIN_CHUNK_ROWS, min(rows, int(left * MB / per_row)))
    return ChunkPlan(max(chunk, 1), why)
