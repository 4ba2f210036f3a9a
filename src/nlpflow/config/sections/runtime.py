"""runtime: how much memory the data stages (gather, validate, preprocess) may use.

None of these knobs changes what a stage writes: the streaming path gives the same rows, the
same splits and the same validation results as the in-memory one (tests/data/test_streaming_*),
so no stage lists this section as a DVC param, and changing it re-runs nothing.
"""

from __future__ import annotations

from pydantic import Field

from nlpflow.config.sections.base import Section

MIN_MEMORY_MB = 256  # below this, the libraries a stage imports (GX, spaCy, pandas) fill it


class RuntimeParams(Section):
    """runtime: memory of the data stages; the outputs are the same with any value."""

    max_memory_mb: int | None = Field(
        default=None,
        ge=MIN_MEMORY_MB,
        description="Peak memory (RSS, MB) gather, validate and preprocess aim to stay under, "
        "their worker processes included: with a number they stream each split in chunks sized "
        "to fit (pyarrow reads and Parquet row groups; data-wide checks from merged counts and "
        "64-bit text hashes, about 40 bytes a row) and give the same outputs as the in-memory "
        "path: the same rows, the same splits (the seeded stratified split, reproduced "
        "exactly), the same validation results. null = read whole splits into memory, unless a "
        "split looks larger than half the memory available, which then streams too.",
    )
    chunk_rows: int | None = Field(
        default=None,
        ge=1,
        description="Rows per chunk of the streaming path, overriding the size max_memory_mb "
        "gives; with max_memory_mb null it turns streaming on by itself. For tests and tuning.",
    )

    @property
    def streaming(self) -> bool:
        """Whether the params ask for the streaming path (it may also start by itself)."""
        return self.max_memory_mb is not None or self.chunk_rows is not None
