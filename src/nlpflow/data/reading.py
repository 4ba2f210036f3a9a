"""Reading one data file as a table: its compression, its encoding (checked byte by byte, with
the line and the fix in the error), and CSV/TSV/JSONL/Parquet parsing with hints when it fails.

    read_table(Path("data/tickets.csv.gz"), "csv", DataParams())
"""

from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import io
import json
import lzma
import re
import stat
import warnings
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from nlpflow.config.params import DataParams
from nlpflow.errors import DataSourceError

TABLE_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".parquet": "parquet"}
COMPRESSIONS = (".gz", ".bz2", ".zst", ".xz")  # read by the inner suffix: data.csv.gz is csv
DELIMITERS = ",;\t|"  # what sniffing considers
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_EXCEL_SEP = re.compile(r"sep=(.)[ \t]*(?=\r|\n|$)")  # Excel's first line naming the delimiter
_SPECIAL = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
)  # fmt: skip


def plain_name(path: Path) -> Path:
    """The path without its compression suffix (data/train.csv.gz -> data/train.csv)."""
    return path.with_suffix("") if path.suffix.lower() in COMPRESSIONS else path


def refuse_special(path: Path) -> None:
    """Refuse anything but a regular file or a folder, before opening it: reading a FIFO
    blocks until a writer comes (gather hung, deaf to SIGTERM), and a device never ends."""
    try:
        mode = path.stat().st_mode  # follows links: a link to a regular file is fine
    except OSError as exc:
        raise DataSourceError(f"{path} cannot be read: {exc.strerror}.") from None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return
    kind = next((name for is_kind, name in _SPECIAL if is_kind(mode)), "a special file")
    raise DataSourceError(
        f"{path} is {kind}, not a regular file: nlpflow reads data from regular files only "
        "(a pipe or device can block forever). Save the data to a file first, e.g. "
        f"`cat {path} > data.csv`, and point data.source at it."
    )


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, decompressed when its suffix says so."""
    refuse_special(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".gz":
            with gzip.open(path) as fh:
                return fh.read()
        if suffix == ".bz2":
            with bz2.open(path) as fh:
                return fh.read()
        if suffix == ".xz":
            with lzma.open(path) as fh:
                return fh.read()
        if suffix == ".zst":
            return _read_zstd(path)
        return path.read_bytes()
    except (OSError, EOFError, lzma.LZMAError) as exc:
        raise DataSourceError(_damaged(path, exc)) from None


def _read_zstd(path: Path) -> bytes:
    import zstandard  # only for .zst files

    try:
        with path.open("rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as fh:
            return bytes(fh.read())
    except zstandard.ZstdError as exc:
        raise DataSourceError(_damaged(path, exc)) from None


def _damaged(path: Path, exc: BaseException) -> str:
    return (
        f"{path} cannot be decompressed as {path.suffix} ({exc}): the file is damaged or "
        "truncated (download it again), or its suffix does not match its compression."
    )


def _decode(path: Path, errors: str = "strict") -> str:
    data = _read_bytes(path)
    if not data.strip():
        raise DataSourceError(f"{path} is empty: point data.source at a file with labelled rows.")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise DataSourceError(
            f"{path} is UTF-16 text: re-encode it as UTF-8, e.g. `iconv -f utf-16 -t utf-8 in > out`."
        )
    # Strip a BOM ourselves (not utf-8-sig) so error offsets count from the file's first byte.
    skip = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    nul = data.find(b"\x00", skip)
    if nul >= 0:  # valid UTF-8, but no text file holds NULs: binary, or a damaged export
        line = data[:nul].count(b"\n") + 1
        raise DataSourceError(
            f"{path} contains a NUL byte at offset {nul} (line {line}): "
            "it is binary or damaged, not text. Remove the NUL bytes, e.g. `tr -d '\\000' < in > out`."
        )
    try:
        return data[skip:].decode("utf-8", errors=errors)
    except UnicodeDecodeError as exc:
        offset = exc.start + skip
        line = data[:offset].count(b"\n") + 1
        raise DataSourceError(
            f"{path} is not valid UTF-8: byte 0x{data[offset]:02x} at offset {offset} "
            f"(line {line}). Re-encode the file, e.g. `iconv -f cp1252 -t utf-8 in > out`, or "
            "set data.decode_errors=replace to keep going with U+FFFD in its place."
        ) from None


def _check_header(path: Path, text: str, sep: str, quoting: Literal[0, 1, 2, 3]) -> None:
    """pandas renames a repeated column to `name.1` silently; a repeated name is ambiguous."""
    header = next(csv.reader(io.StringIO(text), delimiter=sep, quoting=quoting), [])
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise DataSourceError(
            f"{path}: the header names column(s) {repeated} more than once; rename them so "
            "data.text_column and data.label_column point at one column each."
        )


def read_table(path: Path, fmt: str, params: DataParams) -> pd.DataFrame:
    if fmt == "parquet":
        try:  # a compressed Parquet file is read from memory; a plain one straight from disk
            compressed = path.suffix.lower() in COMPRESSIONS
            return pd.read_parquet(io.BytesIO(_read_bytes(path)) if compressed else path)
        except DataSourceError:
            raise
        except Exception as exc:  # pyarrow raises several unrelated types for bad files
            raise DataSourceError(f"{path} is not a readable Parquet file: {exc}") from None
    text = _decode(path, params.decode_errors)
    if fmt == "labelled_lines":  # "LABEL the text", as TREC ships
        pairs = [line.strip().split(maxsplit=1) for line in _LINE_BREAK.split(text)]
        rows = [(p[1] if len(p) > 1 else None, p[0]) for p in pairs if p]
        return pd.DataFrame(rows, columns=["text", "label"], dtype=object)
    if fmt == "jsonl":
        return _read_jsonl(path, text)
    return _read_delimited(path, text, fmt, params)


_JSON_TYPES = {list: "an array", str: "a string", int: "a number", float: "a number",
               bool: "true/false", type(None): "null"}  # fmt: skip


def _read_jsonl(path: Path, text: str) -> pd.DataFrame:
    """One JSON object a line, parsed line by line so an error names the file's own line
    (json.loads of a chunk said line 1). Split on newlines only: JSON strings may hold U+2028."""
    records = [
        record
        for number, line in enumerate(text.split("\n"), start=1)
        if (record := jsonl_record(path, number, line)) is not None
    ]
    # Records as objects: pandas would turn int labels with one null into floats ("1.0").
    return pd.DataFrame(records, dtype=object)


def jsonl_record(path: Path, number: int, line: str) -> dict[str, Any] | None:
    """Line `number` of a JSONL file as its object (None for a blank line), or a
    DataSourceError naming the line and what is wrong with it."""
    if not line.strip():
        return None
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataSourceError(
            f"{path} line {number} is not valid JSON: {exc.msg} at column {exc.colno}. "
            "Fix or remove that line (JSONL holds one JSON object a line)."
        ) from None
    if not isinstance(record, dict):
        raise DataSourceError(
            f"{path} line {number} holds {_JSON_TYPES.get(type(record), 'a value')}, not "
            'an object: each line must be one object like {"text": "...", "label": "..."}.'
        )
    return record


def _read_delimited(path: Path, text: str, fmt: str, params: DataParams) -> pd.DataFrame:
    # Every field as a string: labels like 0/1 must not turn into floats, and TSV quotes
    # are literal characters (SMS data has unbalanced quotes).
    quoting: Literal[0, 1, 2, 3] = (
        csv.QUOTE_NONE
        if (params.quoting or ("none" if fmt == "tsv" else "minimal")) == "none"
        else csv.QUOTE_MINIMAL
    )
    excel = _EXCEL_SEP.match(text)
    if excel is not None:  # Excel's `sep=;` line: honoured, then blanked (pandas skips blank
        text = text[excel.end() :]  # lines, so the lines keep their numbers)
    names = params.columns
    sep = params.delimiter or (excel and excel.group(1)) or ("\t" if fmt == "tsv" else ",")
    header = ",".join(names) if names else text.lstrip("\r\n")
    _check_header(path, header, "," if names else sep, quoting)
    try:
        with warnings.catch_warnings():
            # Rows wider than the header: pandas made their extra leading fields an index, and
            # texts silently lost their start; with index_col=False it warns instead: an error.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(
                io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, na_values=[""],
                quoting=quoting, header=None if names else "infer", names=names,
                index_col=False,
            )  # fmt: skip
    except (ValueError, pd.errors.ParserError, pd.errors.ParserWarning) as exc:
        hint = _parse_hint(str(exc), text, sep=sep, quoting=quoting, given=params.delimiter)
        raise DataSourceError(f"{path} could not be parsed as {fmt}: {exc}.{hint}") from None


def _parse_hint(error: str, text: str, *, sep: str, quoting: int, given: str | None) -> str:
    """What to do about a parse error: the real delimiter, or where a quote opens."""
    sniffed = sniff_delimiter(text)
    if given is None and sniffed is not None and sniffed != sep:
        return f" This file looks {sniffed!r}-separated: set data.delimiter: {sniffed!r}."
    opened = _unclosed_quote_line(text, sep) if quoting != csv.QUOTE_NONE else None
    if opened is not None:
        return (
            f" The quote opened on line {opened} never closes (the file may be truncated): "
            "close it, or set data.quoting: none if quotes are plain characters in your texts."
        )
    if _pandas_says_unclosed_quote(error):
        return " A quote opens and never closes: the file may be truncated."
    wide = _first_wide_line(text, sep=sep, quoting=quoting)
    if wide is not None:
        line, fields, header = wide
        return (
            f" Line {line} has {fields} fields, the header {header}: quote texts that contain "
            "the delimiter."
        )
    return ""


def _pandas_says_unclosed_quote(error: str) -> bool:
    """pandas 3.1's C parser reports a quote open at the end of the file only in its text
    ("Error tokenizing data. C error: EOF inside string starting at row N"): ParserError has
    no code or attribute for it."""
    return "EOF inside string" in error


def _first_wide_line(text: str, *, sep: str, quoting: int) -> tuple[int, int, int] | None:
    """(line, its fields, the header's fields) of the first row wider than the header."""
    reader = csv.reader(io.StringIO(text), delimiter=sep, quoting=quoting)  # type: ignore[arg-type]
    header = 0
    for row in reader:
        if not header:
            header = len(row)
        elif len(row) > header:
            return reader.line_num, len(row), header
    return None


def sniff_delimiter(text: str) -> str | None:
    """The one of , ; tab | that splits the first lines into the same number of fields (two
    or more, as many as the header) most often; None when no candidate does for most lines.
    Counting beats csv.Sniffer here: texts full of commas made it pick ',' for ';' files."""
    lines = [line for line in _LINE_BREAK.split(text[:65536])[:50] if line.strip()]
    best, best_share = None, 0.5
    for candidate in DELIMITERS:
        widths = [len(row) for row in csv.reader(lines, delimiter=candidate)]
        if not widths or widths[0] < 2:
            continue
        share = sum(w == widths[0] for w in widths) / len(widths)
        if share > best_share:
            best, best_share = candidate, share
    return best


_QUOTE_TOKENS: dict[str, re.Pattern[str]] = {}


def _unclosed_quote_line(text: str, sep: str) -> int | None:
    """The line where a quoted field opens and never closes, by csv's rules: a quote opens a
    field only as its first character, and "" inside one is a quote, not its end."""
    tokens = _QUOTE_TOKENS.setdefault(sep, re.compile(f'"|\\r\\n?|\\n|{re.escape(sep)}'))
    line, field_start, opened, escaped = 1, 0, None, False
    for token in tokens.finditer(text):
        if escaped:  # the second quote of ""
            escaped = False
            continue
        if token.group() == '"':
            if opened is None:
                opened = line if token.start() == field_start else None
            elif text.startswith('"', token.end()):
                escaped = True
            else:
                opened, field_start = None, -1
            continue
        if token.group() != sep:  # a line break
            line += 1
        if opened is None:
            field_start = token.end()
    return opened
