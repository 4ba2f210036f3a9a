"""gather: read labelled text from a local file or folder and write train/validation/test Parquet.

Formats: CSV, TSV, JSONL, Parquet, or a folder (one text file per label, or split files).
Splits the source already has (a `split` column, train/validation/test files, or files named in
data.split_files) are kept; otherwise a seeded split stratified by label is made.

    nlpflow stage gather        # what dvc.yaml runs
"""

from __future__ import annotations

import bz2
import codecs
import csv
import glob as globmod
import gzip
import hashlib
import io
import json
import lzma
import math
import random
import re
import stat
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel

from nlpflow.config.params import DataParams, SplitParams
from nlpflow.config.source_kinds import is_glob as is_glob
from nlpflow.data.text import normalize_text
from nlpflow.errors import DataSourceError, StageInputError

SPLITS = ("train", "validation", "test")
SPLIT_ALIASES = {
    "train": "train", "training": "train",
    "validation": "validation", "valid": "validation", "val": "validation", "dev": "validation",
    "test": "test", "testing": "test",
}  # fmt: skip
TABLE_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".parquet": "parquet"}
COMPRESSIONS = (".gz", ".bz2", ".zst", ".xz")  # read by the inner suffix: data.csv.gz is csv
DELIMITERS = ",;\t|"  # what sniffing considers
SPLIT_COLUMN = "split"
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_EXCEL_SEP = re.compile(r"sep=(.)[ \t]*(?=\r|\n|$)")  # Excel's first line naming the delimiter
_SPECIAL = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
)  # fmt: skip


class GatherReport(BaseModel):
    source: str
    format: str
    source_sha256: str
    rows: dict[str, int]
    labels: dict[str, int]
    split_from_source: bool
    duplicates_dropped: int = 0
    test_overlap_dropped: int = 0  # train/validation rows repeating a test text (test_overlap)
    replaced_characters: int = 0  # bytes that were not UTF-8 (data.decode_errors=replace)
    params: dict[str, Any] = {}
    files: list[dict[str, Any]] = []  # a glob source: each file's path, sha256 and rows read


# ---------------------------------------------------------------- reading


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
            import zstandard

            with path.open("rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as fh:
                return fh.read()
        return path.read_bytes()
    except (OSError, EOFError, lzma.LZMAError) as exc:
        raise DataSourceError(_damaged(path, exc)) from None
    except Exception as exc:  # zstandard.ZstdError, imported only for .zst files
        if type(exc).__name__ != "ZstdError":
            raise
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
    records = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
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
        records.append(record)
    # Records as objects: pandas would turn int labels with one null into floats ("1.0").
    return pd.DataFrame(records, dtype=object)


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
    if "EOF inside string" in error:
        return " A quote opens and never closes: the file may be truncated."
    wide = _first_wide_line(text, sep=sep, quoting=quoting)
    if wide is not None:
        line, fields, header = wide
        return (
            f" Line {line} has {fields} fields, the header {header}: quote texts that contain "
            "the delimiter."
        )
    return ""


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


def _detect_format(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    if path.is_dir():
        return "folder"
    suffix = plain_name(path).suffix.lower()
    if suffix in TABLE_SUFFIXES:
        return TABLE_SUFFIXES[suffix]
    raise DataSourceError(
        f"cannot tell the format of {path.name}: set data.format to one of "
        "csv, tsv, jsonl, parquet, folder, labelled_lines (files may also be compressed: "
        f"{', '.join(COMPRESSIONS)} after the format's suffix, e.g. data.csv.gz)."
    )


def _select(df: pd.DataFrame, path: Path, params: DataParams) -> pd.DataFrame:
    if params.format == "labelled_lines":
        text_columns, label_column = ["text"], "label"
    else:
        text_columns = (
            [params.text_column]
            if isinstance(params.text_column, str)
            else list(params.text_column)
        )
        label_column = params.label_column
    missing = [c for c in (*text_columns, label_column) if c not in df.columns]
    if missing:
        hint = "Set data.text_column / data.label_column to the right names."
        other = sniff_delimiter(str(df.columns[0])) if len(df.columns) == 1 else None
        if other is not None:
            hint = f"This file looks {other!r}-separated: set data.delimiter: {other!r}."
        raise DataSourceError(
            f"{path}: column(s) {missing} not found; columns are {list(df.columns)}. {hint}"
        )

    def join(values: tuple[object, ...]) -> str | None:
        # One column: the value as it is (validate judges blanks). Several: the present parts.
        parts = [str(v) for v in values if not pd.isna(v)]
        return " ".join(parts) if parts else None

    out = pd.DataFrame(
        {
            "text": [join(values) for values in zip(*(df[c] for c in text_columns), strict=True)],
            "label": [_label(v, path, i) for i, v in enumerate(df[label_column])],
        }
    )
    if SPLIT_COLUMN in df.columns:
        out[SPLIT_COLUMN] = [_split_name(v, path) for v in df[SPLIT_COLUMN]]
    out["source_row"] = range(len(out))
    return out


def _label(value: object, path: Path, row: int) -> str | None:
    """One label as text. A whole float is its int ("1", not "1.0"): a number column with a
    gap is stored as floats, and 1.0 and 1 must be one class. A list is several labels."""
    if isinstance(value, list | tuple | set | dict) or getattr(value, "ndim", 0) > 0:
        kind = "an object" if isinstance(value, dict) else "a list"
        plain: Any = value.tolist() if hasattr(value, "tolist") else value  # Parquet: ndarray
        shown = str(plain if isinstance(plain, dict) else list(plain))[:60]
        raise DataSourceError(
            f"{path} row {row}: the label is {kind} ({shown}), not one label: nlpflow trains "
            "single-label classification, one label per row (split multi-label rows, or "
            "point data.label_column at a single-label column)."
        )
    if value is None or pd.isna(value):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _fraction(label: str) -> bool:
    try:
        number = float(label)
    except ValueError:
        return False
    return math.isfinite(number) and not number.is_integer()


def refuse_fractional_labels(labels: pd.Series, *, column: str) -> None:
    """Numbers with a fraction are scores or a regression target, not classes: each would
    become a class of its own, trained on and then judged."""
    fractions = sorted({v for v in labels.dropna().unique() if _fraction(str(v))}, key=float)
    if fractions:
        shown = ", ".join(fractions[:5]) + (", ..." if len(fractions) > 5 else "")
        raise DataSourceError(
            f"data.label_column {column!r} holds numbers with a fraction ({shown}): nlpflow "
            "trains a classifier over named classes. If these are classes, name them with "
            f"data.label_map, e.g. {{'{fractions[0]}': <class name>, ...}}; if they are scores, "
            "bin them into classes first, or point data.label_column at the class column."
        )


def _split_name(value: object, path: Path) -> str:
    name = SPLIT_ALIASES.get(str(value).strip().lower())
    if name is None:
        raise DataSourceError(
            f"{path}: split value {value!r} is not one of train/validation/test (or dev/val)."
        )
    return name


def _regular_files(paths: Iterable[Path]) -> list[Path]:
    """The files among `paths`, folders left out; a FIFO or device among them is refused,
    not skipped (a folder of pipes read as 'no data files' misleads)."""
    found = sorted(paths)
    for path in found:
        if not path.is_dir():
            refuse_special(path)
    return [p for p in found if p.is_file()]


def _table_suffix(path: Path) -> str:
    return plain_name(path).suffix.lower()


def _read_folder(folder: Path, params: DataParams) -> pd.DataFrame:
    files = _regular_files(
        p for p in folder.iterdir()
        if not p.name.startswith(".") and not plain_name(p).stem.lower().startswith("readme")
    )  # fmt: skip
    split_files = {
        SPLIT_ALIASES.get(plain_name(p).stem.lower()): p
        for p in files
        if _table_suffix(p) in TABLE_SUFFIXES
    }
    split_files.pop(None, None)
    if split_files:
        frames = []
        for split, path in split_files.items():
            fmt = TABLE_SUFFIXES[_table_suffix(path)]
            frame = _select(read_table(path, fmt, params), path, params)
            frame[SPLIT_COLUMN] = split
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)
    if not files:
        raise DataSourceError(f"{folder} holds no data files.")
    # One text file per label. Files sharing one stem (rt-polarity.pos / .neg) are labelled by
    # their suffix; otherwise (billing.txt, shipping.txt) by their stem.
    shared_stem = len({plain_name(p).stem for p in files}) == 1 and len(files) > 1
    rows: list[dict[str, object]] = []
    for path in files:
        plain = plain_name(path)
        label = plain.suffix.lstrip(".") if shared_stem else plain.stem
        # Only real line breaks: str.splitlines also splits on U+2028, form feeds and \x85.
        for i, line in enumerate(_LINE_BREAK.split(_decode(path, params.decode_errors))):
            if line.strip():
                rows.append({"text": line.strip(), "label": label, "source_row": i})
    return pd.DataFrame(rows)


def _read_split_files(folder: Path, params: DataParams) -> pd.DataFrame:
    """The files data.split_files names, each tagged with its split."""
    if not folder.is_dir():
        raise DataSourceError(
            f"data.split_files names files in a folder, but {folder} is not a folder: point "
            "data.source at the folder that holds them."
        )
    frames = []
    for name, split in (params.split_files or {}).items():
        path = folder / name
        if path.exists():
            refuse_special(path)
        if not path.is_file():
            raise DataSourceError(
                f"data.split_files names {name!r}, but {path} is not a file: check the name."
            )
        fmt = params.format if params.format not in ("auto", "folder") else "auto"
        frame = _select(read_table(path, _detect_format(path, fmt), params), path, params)
        frame[SPLIT_COLUMN] = _split_name(split, path)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def matching_files(path: Path) -> list[Path]:
    """The files a glob source names, in a stable order (a drop folder grows between runs)."""
    files = _regular_files(Path(p) for p in globmod.glob(str(path), recursive=True))
    if not files:
        raise DataSourceError(f"no file matches data.source {str(path)!r}: check the pattern.")
    return files


def _load_glob(path: Path, params: DataParams) -> tuple[pd.DataFrame, str]:
    frames, formats = [], set()
    for file in matching_files(path):
        frame, fmt = load_source(file, params)
        formats.add(fmt)
        frames.append(frame.assign(source_file=str(file.relative_to(_glob_root(path)))))
    if len(formats) > 1:
        raise DataSourceError(
            f"files matching {str(path)!r} have different formats {sorted(formats)}: "
            "narrow the pattern (e.g. *.csv) or set data.format."
        )
    return pd.concat(frames, ignore_index=True), formats.pop()


def _glob_root(path: Path) -> Path:
    parts = path.parts
    first = next(i for i, part in enumerate(parts) if is_glob(Path(part)))
    return Path(*parts[:first])


def load_source(path: Path, params: DataParams) -> tuple[pd.DataFrame, str]:
    """Read the source into columns text, label, source_row (and split when it has one).

    A glob (data/drops/*.csv) reads every matching file and records each row's `source_file`.
    """
    if is_glob(path):
        return _load_glob(path, params)
    if not path.exists():
        raise DataSourceError(f"data source {path} does not exist: check data.source.")
    refuse_special(path)  # before anything opens it: a FIFO blocks the first read forever
    fmt: str = params.format
    if params.split_files:
        frame = _read_split_files(path, params)
        fmt = "folder" if fmt == "auto" else fmt
    elif (fmt := _detect_format(path, fmt)) == "folder":
        if not path.is_dir():
            raise DataSourceError(f"data.format is folder but {path} is a file.")
        frame = _read_folder(path, params)
    else:
        frame = _select(read_table(path, fmt, params), path, params)
    if frame.empty:
        raise DataSourceError(f"{path} has a header but no rows.")
    return frame, fmt


# ---------------------------------------------------------------- splitting


def split_stratified(frame: pd.DataFrame, params: SplitParams) -> pd.DataFrame:
    """Assign each row to a split, per label, with a seeded shuffle.

    Written by hand (not sklearn's train_test_split) because that refuses classes with one
    member; here small classes still split and the validate stage reports them instead.
    """
    rng = random.Random(params.seed)
    # Units of assignment: single rows, or (group_duplicates) all rows sharing a normalised
    # text, labelled by their first row. Units keep the order of their first row.
    if params.group_duplicates:
        keys = [
            normalize_text(t) if isinstance(t, str) else f"\0{i}"
            for i, t in zip(frame.index, frame["text"], strict=True)
        ]
        unit_of = pd.Series(keys, index=frame.index)
    else:
        unit_of = pd.Series(frame.index, index=frame.index)
    first = ~unit_of.duplicated()
    unit_label = frame.loc[first, "label"].set_axis(unit_of[first])
    assigned: dict[object, str] = {}
    for _, units in unit_label.groupby(unit_label, dropna=False, sort=True):
        order = list(units.index)
        rng.shuffle(order)
        n_test = round(len(order) * params.test)
        n_val = round(len(order) * params.validation)
        assigned |= dict.fromkeys(order[:n_test], "test")
        assigned |= dict.fromkeys(order[n_test : n_test + n_val], "validation")
    out = frame.copy()
    out[SPLIT_COLUMN] = [assigned.get(u, "train") for u in unit_of]
    return out


def drop_test_overlap(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Drop non-test rows whose text repeats a test text: a given test set (a benchmark's
    official one) stays whole and comparable, and nothing leaks into it. Returns rows dropped."""
    keys = frame["text"].map(_normalized_or_none)
    is_test = frame[SPLIT_COLUMN] == "test"
    drop = ~is_test & keys.isin(set(keys[is_test].dropna()))
    return frame[~drop], int(drop.sum())


def _complete_splits(frame: pd.DataFrame, params: SplitParams) -> pd.DataFrame:
    """The source brought splits; carve validation out of train when it has none."""
    present = set(frame[SPLIT_COLUMN])
    if "train" not in present or "test" not in present:
        raise DataSourceError(
            f"the source's splits are {sorted(present)}: it needs at least train and test, "
            "or no split column at all (then nlpflow splits it)."
        )
    if "validation" in present or params.validation == 0:
        return frame
    train = frame[frame[SPLIT_COLUMN] == "train"]
    share = params.model_copy(update={"test": min(params.validation, 0.49)})
    carved = split_stratified(train.drop(columns=SPLIT_COLUMN), share)
    frame = frame.copy()
    frame.loc[carved.index[carved[SPLIT_COLUMN] == "test"], SPLIT_COLUMN] = "validation"
    return frame


# ---------------------------------------------------------------- stage


def sha256_of(path: Path) -> str:
    """A file's, or a folder's files', names and bytes."""
    return sha256_of_files(
        sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    )


def sha256_of_files(paths: Iterable[Path]) -> str:
    digest = hashlib.sha256()
    for p in paths:
        digest.update(p.name.encode())
        with p.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def shape(frame: pd.DataFrame, params: DataParams) -> tuple[pd.DataFrame, int]:
    """Rewrite labels (pattern, then map) and drop repeated texts; returns rows dropped."""
    labels = frame["label"]
    if params.label_pattern:
        pattern = re.compile(params.label_pattern)

        def pick(label: object) -> object:
            found = pattern.search(label) if isinstance(label, str) else None
            if found is None:
                return label
            return found.group(1) if found.groups() else found.group(0)

        labels = labels.map(pick)
    if params.label_map:
        mapping = params.label_map
        labels = labels.map(lambda v: mapping.get(v, v) if isinstance(v, str) else v)
    frame = frame.assign(label=labels)
    if params.dedupe == "none":
        return frame, 0
    text = frame["text"]
    key = text if params.dedupe == "exact" else text.map(_normalized_or_none)
    keep = ~key.duplicated() | key.isna()
    return frame[keep], int((~keep).sum())


def _normalized_or_none(text: object) -> str | None:
    return normalize_text(text) if isinstance(text, str) else None


def gather(*, source: Path, dst: Path, params: DataParams) -> GatherReport:
    """Read `source`, split it, write `dst/{train,validation,test}.parquet` and a manifest."""
    from nlpflow.config.secrets import redact, redact_tree  # the manifest is a file DVC pushes too

    frame, fmt = load_source(source, params)
    replaced = sum(t.count("\ufffd") for t in frame["text"] if isinstance(t, str))
    files, source_sha256 = [], ""
    if is_glob(source):
        # The files actually read (every one holds rows), not a second glob: a drop folder
        # may gain a file while gather runs.
        root = _glob_root(source)
        per_file = frame["source_file"].value_counts(sort=False)
        read = [root / name for name in per_file.index]
        files = [
            {"path": name, "sha256": sha256_of(root / name), "rows": int(count)}
            for name, count in per_file.items()
        ]
        source_sha256 = sha256_of_files(read)
    else:
        source_sha256 = sha256_of(source)
    from_source = SPLIT_COLUMN in frame.columns
    overlap_dropped = 0
    if from_source and params.test_overlap == "drop_from_train":
        # before dedupe, which keeps a text's first row and so could drop the test copy
        frame, overlap_dropped = drop_test_overlap(frame)
    frame, duplicates_dropped = shape(frame, params)
    refuse_fractional_labels(frame["label"], column=params.label_column)  # after label_map
    frame = (
        _complete_splits(frame, params.split)
        if from_source
        else split_stratified(frame, params.split)
    )
    dst.mkdir(parents=True, exist_ok=True)
    rows = {}
    for split in SPLITS:
        part = frame[frame[SPLIT_COLUMN] == split].drop(columns=SPLIT_COLUMN).reset_index(drop=True)
        part.to_parquet(dst / f"{split}.parquet", index=False)
        rows[split] = len(part)
    labels = frame["label"].value_counts(dropna=False).sort_index()
    report = GatherReport(
        source=redact(str(source)), format=fmt, source_sha256=source_sha256, rows=rows,
        labels={"<missing>" if pd.isna(k) else str(k): int(v) for k, v in labels.items()},
        split_from_source=from_source, duplicates_dropped=duplicates_dropped,
        test_overlap_dropped=overlap_dropped,
        replaced_characters=replaced, params=redact_tree(params.model_dump(mode="json")),
        files=files,
    )  # fmt: skip
    (dst / "manifest.json").write_text(json.dumps(report.model_dump(mode="json"), indent=2))
    return report


def load_splits(src: Path, splits: Iterable[str] = SPLITS) -> dict[str, pd.DataFrame]:
    """Read the Parquet files a stage wrote; a clear error when an earlier stage has not run."""
    out = {}
    for split in splits:
        path = src / f"{split}.parquet"
        if not path.exists():
            raise StageInputError(f"{path} is missing: run the earlier stages first (nlpflow run).")
        out[split] = pd.read_parquet(path)
    return out
