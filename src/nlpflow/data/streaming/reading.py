"""A local source's rows in chunks: load_source's frame (nlpflow.data.local_source), cut in
pieces of at most `rows` rows, without ever holding a whole file.

    parts, fmt = plan_source(Path("data/drops/*.csv"), DataParams())
    for frame in iter_parts(parts, DataParams(), rows=50_000):
        ...                      # columns text, label, source_row (split, source_file, time)

A source is a list of Parts (a file and what its place says: a split file's split, a label
file's label, a glob file's name), listed once, so both of gather's passes read the very same
files. Text is decoded block by block with read_table's checks (an empty file, UTF-16, a NUL
byte, bytes that are not UTF-8: the same messages, with the offset and line); CSV/TSV through
pandas' chunked reader with read_table's options; JSONL, TREC-style and label files line by
line; Parquet a batch at a time.

What differs from reading whole files: a CSV that fails to parse gets its hint from the file's
first 64 kB (the delimiter it seems to use) rather than from all of it; a file holding both a
NUL byte and bad UTF-8 reports whichever comes first, not the NUL.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import lzma
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any, Literal, NoReturn, cast

import pandas as pd

from nlpflow.config.params import DataParams
from nlpflow.config.source_kinds import is_glob
from nlpflow.data.local_source import (
    _detect_format,
    check_source_path,
    _select,
    _table_suffix,
    folder_files,
    glob_root,
    matching_files,
    split_file_paths,
)
from nlpflow.data.reading import (
    _EXCEL_SEP,
    _LINE_BREAK,
    COMPRESSIONS,
    TABLE_SUFFIXES,
    _check_header,
    _damaged,
    _parse_hint,
    plain_name,
    refuse_special,
)
from nlpflow.data.splits import SPLIT_COLUMN, split_name
from nlpflow.errors import DataSourceError

BLOCK = 1 << 20  # bytes read from a file at a time
HEAD = 1 << 16  # text a CSV's header, Excel line and parse hints are read from


# ---------------------------------------------------------------- text, decoded as it is read


def _open_binary(path: Path) -> IO[bytes]:
    """The file's bytes, decompressed as they are read when its suffix says so."""
    suffix = path.suffix.lower()
    if suffix == ".gz":
        return cast(IO[bytes], gzip.open(path))
    if suffix == ".bz2":
        return cast(IO[bytes], bz2.open(path))
    if suffix == ".xz":
        return cast(IO[bytes], lzma.open(path))
    if suffix == ".zst":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(path.open("rb"))
    return path.open("rb")


class CheckedText:
    """A text file decoded block by block with reading._decode's checks and messages.

    `read(size)` is what pandas' CSV reader calls; `blocks()` gives the rest of the text."""

    def __init__(self, path: Path, errors: str = "strict") -> None:
        refuse_special(path)
        self.path = path
        self._raw = _open_binary(path)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors=errors)
        self._offset = self._lines = 0  # bytes and line breaks read so far
        self._first = True
        self._done = False
        self._buffer = ""
        self._prefetch()

    def _read_raw(self) -> bytes:
        try:
            return self._raw.read(BLOCK)
        except (OSError, EOFError, lzma.LZMAError) as exc:
            raise DataSourceError(_damaged(self.path, exc)) from None
        except Exception as exc:  # zstandard's ZstdError
            if type(exc).__name__ == "ZstdError":
                raise DataSourceError(_damaged(self.path, exc)) from None
            raise

    def _decode_next(self) -> str | None:
        """The next block's text; None at the end of the file."""
        if self._done:
            return None
        data = self._read_raw()
        if self._first:
            self._first = False
            if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                raise DataSourceError(
                    f"{self.path} is UTF-16 text: re-encode it as UTF-8, e.g. "
                    "`iconv -f utf-16 -t utf-8 in > out`."
                )
            if data.startswith(codecs.BOM_UTF8):
                self._offset = len(codecs.BOM_UTF8)
                data = data[len(codecs.BOM_UTF8) :]
        if not data:
            self._done = True
            self._raw.close()
            try:
                return self._decoder.decode(b"", final=True) or None
            except UnicodeDecodeError as exc:  # the file ends inside a character
                self._bad_byte(exc.object, exc.start, len(exc.object))
        self._check_nul(data)
        held: bytes = self._decoder.getstate()[0]  # a character's first bytes, from the last block
        try:
            text = self._decoder.decode(data)
        except UnicodeDecodeError as exc:
            self._bad_byte(held + data, exc.start, len(held))
        self._lines += data.count(b"\n")
        self._offset += len(data)
        return text

    def _check_nul(self, data: bytes) -> None:
        nul = data.find(b"\x00")
        if nul >= 0:  # valid UTF-8, but no text file holds NULs: binary, or a damaged export
            line = self._lines + data[:nul].count(b"\n") + 1
            raise DataSourceError(
                f"{self.path} contains a NUL byte at offset {self._offset + nul} (line {line}): "
                "it is binary or damaged, not text. Remove the NUL bytes, e.g. "
                "`tr -d '\\000' < in > out`."
            )

    def _bad_byte(self, data: bytes, start: int, pending: int) -> NoReturn:
        offset = self._offset - pending + start
        line = self._lines + data[:start].count(b"\n") + 1
        raise DataSourceError(
            f"{self.path} is not valid UTF-8: byte 0x{data[start]:02x} at offset {offset} "
            f"(line {line}). Re-encode the file, e.g. `iconv -f cp1252 -t utf-8 in > out`, or "
            "set data.decode_errors=replace to keep going with U+FFFD in its place."
        ) from None

    def _prefetch(self) -> None:
        """Read until some text that is not blank, or the end: an empty file is refused first."""
        while not self._buffer.strip():
            text = self._decode_next()
            if text is None:
                raise DataSourceError(
                    f"{self.path} is empty: point data.source at a file with labelled rows."
                )
            self._buffer += text
        while len(self._buffer) < HEAD and (text := self._decode_next()) is not None:
            self._buffer += text

    def head(self) -> str:
        """The first 64 kB of text (or all of it), not consumed."""
        return self._buffer[:HEAD]

    def skip(self, chars: int) -> None:
        self._buffer = self._buffer[chars:]

    def read(self, size: int = -1) -> str:
        while (size < 0 or len(self._buffer) < size) and (text := self._decode_next()) is not None:
            self._buffer += text
        size = len(self._buffer) if size < 0 else size
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out

    def blocks(self) -> Iterator[str]:
        if self._buffer:
            yield self._buffer
            self._buffer = ""
        while (text := self._decode_next()) is not None:
            yield text


def split_lines(blocks: Iterator[str], *, universal: bool) -> Iterator[str]:
    """The text's lines, as `_LINE_BREAK.split(text)` (universal) or `text.split("\\n")` gives
    them, the last piece after the last break included."""
    breaks = _LINE_BREAK if universal else re.compile("\n")
    rest = ""
    for block in blocks:
        text = rest + block
        carry = ""
        if universal and text.endswith("\r"):  # may be half of a \r\n
            text, carry = text[:-1], "\r"
        parts = breaks.split(text)
        rest = parts.pop() + carry
        yield from parts
    yield from breaks.split(rest)


# ---------------------------------------------------------------- raw tables, a chunk at a time


def _chunks(rows: Iterator[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def iter_delimited(path: Path, fmt: str, params: DataParams, rows: int) -> Iterator[pd.DataFrame]:
    """reading._read_delimited's frame, `rows` rows at a time."""
    stream = CheckedText(path, params.decode_errors)
    quoting: Literal[0, 1, 2, 3] = (
        csv.QUOTE_NONE
        if (params.quoting or ("none" if fmt == "tsv" else "minimal")) == "none"
        else csv.QUOTE_MINIMAL
    )
    head = stream.head()
    excel = _EXCEL_SEP.match(head)
    if excel is not None:  # Excel's `sep=;` line: honoured, then dropped
        stream.skip(excel.end())
        head = head[excel.end() :]
    names = params.columns
    sep = params.delimiter or (excel and excel.group(1)) or ("\t" if fmt == "tsv" else ",")
    header = ",".join(names) if names else head.lstrip("\r\n")
    _check_header(path, header, "," if names else sep, quoting)
    reader = pd.read_csv(
        stream, sep=sep, dtype=str, keep_default_na=False, na_values=[""], quoting=quoting,
        header=None if names else "infer", names=names, index_col=False, chunksize=rows,
    )  # fmt: skip
    while True:
        with warnings.catch_warnings():
            # rows wider than the header: an error, as reading whole files makes it
            warnings.simplefilter("error", pd.errors.ParserWarning)
            try:
                chunk = next(reader)
            except StopIteration:
                return
            except (ValueError, pd.errors.ParserError, pd.errors.ParserWarning) as exc:
                hint = _parse_hint(str(exc), head, sep=sep, quoting=quoting, given=params.delimiter)
                message = f"{path} could not be parsed as {fmt}: {exc}.{hint}"
                raise DataSourceError(message) from None
        yield chunk


def iter_jsonl(path: Path, params: DataParams, rows: int) -> Iterator[pd.DataFrame]:
    """reading._read_jsonl's frame, `rows` records at a time."""
    from nlpflow.data.reading import jsonl_record

    def records() -> Iterator[dict[str, Any]]:
        lines = split_lines(CheckedText(path, params.decode_errors).blocks(), universal=False)
        for number, line in enumerate(lines, start=1):
            record = jsonl_record(path, number, line)
            if record is not None:
                yield record

    for batch in _chunks(records(), rows):
        yield pd.DataFrame(batch, dtype=object)


def iter_labelled_lines(path: Path, params: DataParams, rows: int) -> Iterator[pd.DataFrame]:
    """TREC's "LABEL the text" lines, as read_table reads them, `rows` at a time."""
    lines = split_lines(CheckedText(path, params.decode_errors).blocks(), universal=True)
    pairs = (line.strip().split(maxsplit=1) for line in lines)
    found = ((p[1] if len(p) > 1 else None, p[0]) for p in pairs if p)
    for batch in _chunks(found, rows):
        yield pd.DataFrame(batch, columns=["text", "label"], dtype=object)


def iter_parquet(path: Path, rows: int) -> Iterator[pd.DataFrame]:
    """A Parquet file's rows a batch at a time (a compressed one is unpacked to a temporary
    file first, as it is read: never whole in memory)."""
    import pyarrow.parquet as pq

    refuse_special(path)
    with tempfile.TemporaryDirectory(prefix="nlpflow-parquet-") as tmp:
        if path.suffix.lower() in COMPRESSIONS:
            plain = Path(tmp) / "data.parquet"
            with _open_binary(path) as src, plain.open("wb") as dst:
                try:
                    shutil.copyfileobj(src, dst, BLOCK)
                except (OSError, EOFError, lzma.LZMAError) as exc:
                    raise DataSourceError(_damaged(path, exc)) from None
            path_read = plain
        else:
            path_read = path
        try:
            file = pq.ParquetFile(path_read)
            batches = file.iter_batches(batch_size=rows, use_threads=False)
            for batch in batches:
                yield batch.to_pandas()
        except DataSourceError:
            raise
        except Exception as exc:  # pyarrow raises several unrelated types for bad files
            raise DataSourceError(f"{path} is not a readable Parquet file: {exc}") from None


def iter_table(path: Path, fmt: str, params: DataParams, rows: int) -> Iterator[pd.DataFrame]:
    """read_table's frame of one file, `rows` rows at a time."""
    if fmt == "parquet":
        return iter_parquet(path, rows)
    if fmt == "labelled_lines":
        return iter_labelled_lines(path, params, rows)
    if fmt == "jsonl":
        return iter_jsonl(path, params, rows)
    return iter_delimited(path, fmt, params, rows)


def iter_label_file(
    path: Path, label: str, params: DataParams, rows: int
) -> Iterator[pd.DataFrame]:
    """A folder's file of one label: one text a line (blank lines skipped), as _read_folder."""
    lines = split_lines(CheckedText(path, params.decode_errors).blocks(), universal=True)
    found = (
        {"text": line.strip(), "label": label, "source_row": i}
        for i, line in enumerate(lines)
        if line.strip()
    )
    for batch in _chunks(found, rows):
        yield pd.DataFrame(batch)


# ---------------------------------------------------------------- sources as parts


@dataclass(frozen=True)
class Part:
    """One file of a source, and what its place in the source says about its rows."""

    path: Path
    fmt: str  # a table format, or "label_file" (a folder's file of one label)
    split: str | None = None  # a split file's split
    label: str | None = None  # a label file's label
    source_file: str | None = None  # a glob's file, relative to the glob's root
    empty_path: Path | None = None  # the path named when the whole source holds no rows
    # a file of a Parquet dataset: its rows continue the previous file's (source_row counts on)
    continued: bool = False


@dataclass
class PartState:
    """What gather's first pass learns of a part, which its second pass needs."""

    rows: int = 0  # rows the part holds (after the first pass)
    read: int = 0  # rows read so far in this pass: the next chunk's first source_row
    chunks: int = 0
    columns: list[str] = field(default_factory=list)  # JSONL: every key, in first-seen order
    split_chunks: int = 0  # chunks holding a split column
    years: bool = True  # a numeric time column holds only years (local_source._times)


def plan_source(path: Path, params: DataParams) -> tuple[list[Part], str]:
    """The files of `path` and the format, as load_source reads them (its checks included)."""
    if is_glob(path):
        return _plan_glob(path, params)
    check_source_path(path)
    fmt: str = params.format
    if params.split_files:
        paths = split_file_paths(path, params)
        file_fmt = params.format if params.format not in ("auto", "folder") else "auto"
        parts = [
            Part(p, _detect_format(p, file_fmt), split=split_name(split, p))
            for p, split in ((paths[name], split) for name, split in params.split_files.items())
        ]
        fmt = "folder" if fmt == "auto" else fmt
    elif (fmt := _detect_format(path, fmt)) == "folder":
        if not path.is_dir():
            raise DataSourceError(f"data.format is folder but {path} is a file.")
        parts = _plan_folder(path)
    elif fmt == "parquet" and path.is_dir():  # a Parquet dataset (a streamed SQL snapshot)
        files = parquet_dataset_files(path)
        parts = [Part(p, "parquet", continued=i > 0) for i, p in enumerate(files)]
    else:
        parts = [Part(path, fmt)]
    return [replace(p, empty_path=path) for p in parts], fmt


def parquet_dataset_files(folder: Path) -> list[Path]:
    """The files pyarrow (and pd.read_parquet) read as the dataset `folder`, in order."""
    import pyarrow.dataset as ds

    return sorted(Path(f) for f in ds.dataset(folder, format="parquet").files)


def _plan_folder(folder: Path) -> list[Part]:
    """_read_folder's files: split files when there are some, else one file per label."""
    files, split_files = folder_files(folder)
    if split_files:
        return [
            Part(p, TABLE_SUFFIXES[_table_suffix(p)], split=str(split))
            for split, p in split_files.items()
        ]
    if not files:
        raise DataSourceError(f"{folder} holds no data files.")
    # files sharing one stem (rt-polarity.pos / .neg) are labelled by their suffix
    shared_stem = len({plain_name(p).stem for p in files}) == 1 and len(files) > 1
    return [
        Part(p, "label_file", label=(plain.suffix.lstrip(".") if shared_stem else plain.stem))
        for p, plain in ((p, plain_name(p)) for p in files)
    ]


def _plan_glob(path: Path, params: DataParams) -> tuple[list[Part], str]:
    parts, formats = [], set()
    root = glob_root(path)
    for file in matching_files(path):
        found, fmt = plan_source(file, params)
        formats.add(fmt)
        name = str(file.relative_to(root))
        parts += [replace(p, source_file=name, empty_path=file) for p in found]
    if len(formats) > 1:
        raise DataSourceError(
            f"files matching {str(path)!r} have different formats {sorted(formats)}: "
            "narrow the pattern (e.g. *.csv) or set data.format."
        )
    return parts, formats.pop()


def _raw_chunks(part: Part, params: DataParams, rows: int) -> Iterator[pd.DataFrame]:
    if part.fmt == "label_file":
        assert part.label is not None
        return iter_label_file(part.path, part.label, params, rows)
    return iter_table(part.path, part.fmt, params, rows)


def iter_part(
    part: Part, params: DataParams, rows: int, state: PartState, *, first: bool, offset: int = 0
) -> Iterator[pd.DataFrame]:
    """The part's rows as load_source gives them, `rows` at a time, source_row counted from
    `offset`. The first pass (`first`) fills `state` and leaves the time column out; the
    second converts it, as _times would on the whole file."""
    state.read = offset
    for raw in _raw_chunks(part, params, rows):
        frame = _selected(raw, part, params, state, first=first)
        state.read += len(frame)
        if first:
            state.chunks += 1
        yield frame
    if first:
        state.rows = state.read - offset
        _check_part(part, params, state)


def iter_parts(
    parts: list[Part], states: list[PartState], params: DataParams, rows: int, *, first: bool
) -> Iterator[tuple[Part, pd.DataFrame]]:
    """iter_part of each part in turn (a dataset's files counting source_row on)."""
    offset = 0
    for part, state in zip(parts, states, strict=True):
        offset = offset if part.continued else 0
        for frame in iter_part(part, params, rows, state, first=first, offset=offset):
            yield part, frame
        offset += state.rows


def _selected(
    raw: pd.DataFrame, part: Part, params: DataParams, state: PartState, *, first: bool
) -> pd.DataFrame:
    if part.fmt == "label_file":
        frame = raw
    else:
        if part.fmt == "jsonl":
            raw = _with_known_columns(raw, params, state)
        if first and SPLIT_COLUMN in raw.columns:
            state.split_chunks += 1
        time = params.time_column
        if first and time is not None and time in raw.columns:
            state.years = state.years and _only_years(raw[time])
        frame = _select(
            raw, part.path, params, offset=state.read, years=state.years, times=not first
        )
    if part.split is not None:
        frame[SPLIT_COLUMN] = part.split
    if part.source_file is not None:
        frame["source_file"] = part.source_file
    return frame


def _wanted(params: DataParams) -> list[str]:
    if params.format == "labelled_lines":
        return ["text", "label"]
    column = params.text_column
    texts = [column] if isinstance(column, str) else list(column)
    return [*texts, *(c for c in (params.label_column, params.time_column) if c is not None)]


def _with_known_columns(raw: pd.DataFrame, params: DataParams, state: PartState) -> pd.DataFrame:
    """A JSONL chunk with the columns records elsewhere in the file have: pandas gives a key
    missing from a record NaN, so the whole file's frame has every key of any record."""
    state.columns += [c for c in raw.columns if c not in state.columns]
    missing = [c for c in _wanted(params) if c not in raw.columns]
    return raw.assign(**dict.fromkeys(missing, float("nan"))) if missing else raw


def _only_years(values: pd.Series) -> bool:
    if not pd.api.types.is_numeric_dtype(values):
        return True  # text: parsed as dates, whatever this says
    return bool(pd.to_numeric(values).dropna().between(1000, 9999).all())


def _check_part(part: Part, params: DataParams, state: PartState) -> None:
    """What reading the part whole would have refused, known once it has all been read."""
    if part.fmt == "jsonl" and any(c not in state.columns for c in _wanted(params)):
        _select(pd.DataFrame(columns=state.columns), part.path, params)  # raises its message
    if 0 < state.split_chunks < state.chunks:  # some records have no split: NaN, refused
        split_name(float("nan"), part.path)
