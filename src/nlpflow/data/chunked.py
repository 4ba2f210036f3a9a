"""Reading a table file in bounded chunks of rows, never whole: CSV/TSV (pandas' C parser with
a chunk size), JSONL (line by line), Parquet (pyarrow record batches); compressed files
(.gz, .bz2, .xz, .zst) are decompressed as a stream.

    for frame in iter_file_chunks(Path("big.csv.gz"), "csv", rows=50_000):
        ...

Values are read as the whole-file reader (nlpflow.data.reading.read_table) reads them: every
delimited field a string (an empty one missing), JSON records as objects. Its detailed messages
(the wrong delimiter, where a quote opens) need the whole text; a file small enough to read
whole is read by it instead (`whole_below_bytes`), so small files behave exactly as before.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import io
import json
import lzma
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pandas as pd

from nlpflow.errors import DataSourceError

WHOLE_BELOW_BYTES = 32 * 1024 * 1024  # a file this small is read whole, by read_table


def iter_file_chunks(
    path: Path, fmt: str, *, rows: int, whole_below_bytes: int = WHOLE_BELOW_BYTES
) -> Iterator[pd.DataFrame]:
    """The file's rows, `rows` at a time (the last chunk shorter), in file order."""
    from nlpflow.config.params import DataParams
    from nlpflow.data.reading import refuse_special

    refuse_special(path)
    if path.stat().st_size < whole_below_bytes:
        from nlpflow.data.reading import read_table

        frame = read_table(path, fmt, DataParams())
        for start in range(0, max(len(frame), 1), rows):
            yield frame.iloc[start : start + rows].reset_index(drop=True)
        return
    if fmt == "parquet":
        yield from _parquet_chunks(path, rows)
    elif fmt == "jsonl":
        yield from _jsonl_chunks(path, rows)
    else:
        yield from _delimited_chunks(path, fmt, rows)


def _parquet_chunks(path: Path, rows: int) -> Iterator[pd.DataFrame]:
    import pyarrow.parquet as pq

    if path.suffix.lower() != ".parquet":  # compressed Parquet: pyarrow needs to seek
        raise DataSourceError(
            f"{path} is a compressed Parquet file too large to read whole: Parquet compresses "
            "its own columns; store it as plain .parquet (e.g. `gunzip` it)."
        )
    try:
        with pq.ParquetFile(path) as parquet:
            for batch in parquet.iter_batches(batch_size=rows):
                yield batch.to_pandas()
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise DataSourceError(f"{path} is not a readable Parquet file: {exc}") from None


def open_text(path: Path) -> IO[str]:
    """The file as UTF-8 text (a BOM skipped), decompressed as it is read."""
    suffix = path.suffix.lower()
    raw: Any  # a binary stream, closed with the text wrapper returned, which owns it
    if suffix == ".gz":
        raw = gzip.open(path, "rb")  # noqa: SIM115
    elif suffix == ".bz2":
        raw = bz2.open(path, "rb")  # noqa: SIM115
    elif suffix == ".xz":
        raw = lzma.open(path, "rb")  # noqa: SIM115
    elif suffix == ".zst":
        import zstandard

        raw = zstandard.ZstdDecompressor().stream_reader(path.open("rb"), closefd=True)
    else:
        raw = path.open("rb")
    buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw)
    if buffered.peek(3)[:3] == codecs.BOM_UTF8:
        buffered.read(3)
    return io.TextIOWrapper(buffered, encoding="utf-8", errors="strict", newline="")


def _delimited_chunks(path: Path, fmt: str, rows: int) -> Iterator[pd.DataFrame]:
    sep = "\t" if fmt == "tsv" else ","
    quoting = csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL
    try:
        with open_text(path) as text:
            reader = pd.read_csv(
                text, sep=sep, dtype=str, keep_default_na=False, na_values=[""],
                quoting=quoting, index_col=False, chunksize=rows,
            )  # fmt: skip
            yield from reader
    except UnicodeDecodeError as exc:
        raise DataSourceError(
            f"{path} is not valid UTF-8 ({exc.reason} at a byte 0x{exc.object[exc.start]:02x}): "
            "re-encode the file, e.g. `iconv -f cp1252 -t utf-8 in > out`."
        ) from None
    except (ValueError, pd.errors.ParserError, OSError, EOFError, lzma.LZMAError) as exc:
        raise DataSourceError(f"{path} could not be read as {fmt}: {exc}") from None


def _jsonl_chunks(path: Path, rows: int) -> Iterator[pd.DataFrame]:
    records: list[dict[str, Any]] = []
    try:
        with open_text(path) as text:
            for number, line in enumerate(text, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataSourceError(
                        f"{path} line {number} is not valid JSON: {exc.msg} at column "
                        f"{exc.colno}. Fix or remove that line (one JSON object a line)."
                    ) from None
                if not isinstance(record, dict):
                    raise DataSourceError(
                        f"{path} line {number} is not a JSON object: each line must be one "
                        'object like {"text": "..."}.'
                    )
                records.append(record)
                if len(records) == rows:
                    yield pd.DataFrame(records, dtype=object)
                    records = []
    except UnicodeDecodeError as exc:
        raise DataSourceError(f"{path} is not valid UTF-8 ({exc.reason}).") from None
    except (OSError, EOFError, lzma.LZMAError) as exc:
        raise DataSourceError(f"{path} could not be read: {exc}") from None
    if records:
        yield pd.DataFrame(records, dtype=object)
