"""Parquet a chunk at a time: sizes from the footer, batches in, row groups out.

for frame in iter_frames(Path("data/gathered/train.parquet"), rows=50_000):
    ...
with ParquetSink(Path("out.parquet"), schema) as sink:
    sink.write(batch)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa


def parquet_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)


def bytes_per_row(paths: Iterable[Path]) -> float:
    """Uncompressed bytes a row takes in these files (their footers: nothing is read)."""
    import pyarrow.parquet as pq

    size = rows = 0
    for path in paths:
        meta = pq.ParquetFile(path).metadata
        rows += meta.num_rows
        size += sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    return size / rows if rows else 0.0


def iter_batches(
    path: Path, rows: int, columns: list[str] | None = None
) -> Iterator[pa.RecordBatch]:
    """The file's rows, at most `rows` at a time, in order (page by page, not file by file)."""
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as file:
        yield from file.iter_batches(batch_size=rows, columns=columns, use_threads=False)


def iter_frames(path: Path, rows: int, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
    """As iter_batches, each batch as pandas reads it (pd.read_parquet's dtypes)."""
    for batch in iter_batches(path, rows, columns):
        yield batch.to_pandas()


class ParquetSink:
    """A Parquet file written a batch at a time, each batch a row group; an empty file with
    `schema` when nothing is written (a split may be empty)."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        import pyarrow.parquet as pq

        path.parent.mkdir(parents=True, exist_ok=True)
        self.schema = schema
        self.rows = 0
        self._writer = pq.ParquetWriter(path, schema)

    def write(self, data: pa.RecordBatch | pa.Table) -> None:
        import pyarrow as pa

        if data.num_rows:
            table = data if isinstance(data, pa.Table) else pa.Table.from_batches([data])
            self._writer.write_table(table.cast(self.schema))
            self.rows += data.num_rows

    def write_frame(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa

        self.write(pa.Table.from_pandas(frame, schema=self.schema, preserve_index=False))

    def __enter__(self) -> ParquetSink:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Any:
        self._writer.close()
        return None
