"""A local source as rows: a file, a folder (one file per label, or split files), or a glob
of files, read into columns text, label, source_row (and split when the source has one).

    frame, fmt = load_source(Path("data/drops/*.csv"), DataParams())
"""

from __future__ import annotations

import glob as globmod
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from nlpflow.config.params import DataParams
from nlpflow.config.source_kinds import is_glob
from nlpflow.data.reading import (
    _LINE_BREAK,
    COMPRESSIONS,
    TABLE_SUFFIXES,
    _decode,
    plain_name,
    read_table,
    refuse_special,
    sniff_delimiter,
)
from nlpflow.data.splits import SPLIT_ALIASES, SPLIT_COLUMN, split_name
from nlpflow.data.text import join_fields
from nlpflow.errors import DataSourceError


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


def _select(
    df: pd.DataFrame,
    path: Path,
    params: DataParams,
    *,
    offset: int = 0,
    years: bool | None = None,
    times: bool = True,
) -> pd.DataFrame:
    """The columns nlpflow reads, from a file's table: text, label, [time], [split],
    source_row. A chunk of a file (nlpflow.data.streaming.reading) starts at row `offset`;
    `years` is the whole file's verdict on a numeric time column (_times), and `times`
    False leaves the time column out."""
    label_column: str | None
    if params.format == "labelled_lines":
        text_columns, label_column = ["text"], "label"
    else:
        text_columns = (
            [params.text_column]
            if isinstance(params.text_column, str)
            else list(params.text_column)
        )
        label_column = params.label_column
    wanted = [*text_columns, *(c for c in (label_column, params.time_column) if c is not None)]
    missing = [c for c in wanted if c not in df.columns]
    if missing:
        hint = "Set data.text_column / data.label_column to the right names."
        if label_column in missing:
            hint += " Unlabelled text (task topic-modeling): data.label_column: null."
        other = sniff_delimiter(str(df.columns[0])) if len(df.columns) == 1 else None
        if other is not None:
            hint = f"This file looks {other!r}-separated: set data.delimiter: {other!r}."
        raise DataSourceError(
            f"{path}: column(s) {missing} not found; columns are {list(df.columns)}. {hint}"
        )

    out = pd.DataFrame(
        {
            "text": [
                join_fields(values) for values in zip(*(df[c] for c in text_columns), strict=True)
            ],
            "label": [None] * len(df)
            if label_column is None
            else [_label(v, path, i) for i, v in enumerate(df[label_column], start=offset)],
        }
    )
    if params.time_column is not None and times:
        out["time"] = _times(
            df[params.time_column], path=path, column=params.time_column, years=years, offset=offset
        )
    if SPLIT_COLUMN in df.columns:
        out[SPLIT_COLUMN] = [split_name(v, path) for v in df[SPLIT_COLUMN]]
    out["source_row"] = range(offset, offset + len(out))
    return out


def _times(
    values: pd.Series, *, path: Path, column: str, years: bool | None = None, offset: int = 0
) -> pd.Series:
    """data.time_column as timestamps (UTC); numbers are read as years when they all look like
    one (`years`: decided on the whole file, when these are a chunk of it), else as Unix
    seconds. DataSourceError naming the first value that is neither."""
    if pd.api.types.is_numeric_dtype(values):
        numbers = pd.to_numeric(values)
        if years is None:
            years = bool(numbers.dropna().between(1000, 9999).all())
        unit = None if years else "s"
        text = numbers.map(lambda v: None if pd.isna(v) else str(int(v))) if years else numbers
        return pd.to_datetime(
            text, utc=True, unit=unit, errors="raise", format="%Y" if years else None
        )
    parsed = pd.to_datetime(values, utc=True, errors="coerce", format="mixed")
    bad = parsed.isna() & values.notna()
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise DataSourceError(
            f"{path} row {offset + row}: data.time_column {column!r} holds {values.iloc[row]!r}, "
            "which is "
            "no date or time: use ISO 8601 text (2024-05-01, 2024-05-01T12:00:00Z) or Unix "
            "seconds, or set data.time_column: null."
        )
    return parsed


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


def folder_files(folder: Path) -> tuple[list[Path], dict[str, Path]]:
    """A folder source's data files (hidden files and READMEs left out), and those of them
    that name a split (train.csv, dev.jsonl...) by split: read whole or streamed alike."""
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
    return files, {str(split): path for split, path in split_files.items()}


def _read_folder(folder: Path, params: DataParams) -> pd.DataFrame:
    files, split_files = folder_files(folder)
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


def split_file_paths(folder: Path, params: DataParams) -> dict[str, Path]:
    """The files data.split_files names in `folder` (each a regular file, else the fix)."""
    if not folder.is_dir():
        raise DataSourceError(
            f"data.split_files names files in a folder, but {folder} is not a folder: point "
            "data.source at the folder that holds them."
        )
    paths = {}
    for name in params.split_files or {}:
        path = paths[name] = folder / name
        if path.exists():
            refuse_special(path)
        if not path.is_file():
            raise DataSourceError(
                f"data.split_files names {name!r}, but {path} is not a file: check the name."
            )
    return paths


def _read_split_files(folder: Path, params: DataParams) -> pd.DataFrame:
    """The files data.split_files names, each tagged with its split."""
    paths = split_file_paths(folder, params)
    frames = []
    for name, split in (params.split_files or {}).items():
        path = paths[name]
        fmt = params.format if params.format not in ("auto", "folder") else "auto"
        frame = _select(read_table(path, _detect_format(path, fmt), params), path, params)
        frame[SPLIT_COLUMN] = split_name(split, path)
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
        frames.append(frame.assign(source_file=str(file.relative_to(glob_root(path)))))
    if len(formats) > 1:
        raise DataSourceError(
            f"files matching {str(path)!r} have different formats {sorted(formats)}: "
            "narrow the pattern (e.g. *.csv) or set data.format."
        )
    return pd.concat(frames, ignore_index=True), formats.pop()


def glob_root(path: Path) -> Path:
    parts = path.parts
    first = next(i for i, part in enumerate(parts) if is_glob(Path(part)))
    return Path(*parts[:first])


def check_source_path(path: Path) -> None:
    """A source that is not there, or is a FIFO or device, stops gather before anything opens
    it (a FIFO blocks the first read forever)."""
    if not path.exists():
        raise DataSourceError(f"data source {path} does not exist: check data.source.")
    refuse_special(path)


def load_source(path: Path, params: DataParams) -> tuple[pd.DataFrame, str]:
    """Read the source into columns text, label, source_row (and split when it has one).

    A glob (data/drops/*.csv) reads every matching file and records each row's `source_file`.
    """
    if is_glob(path):
        return _load_glob(path, params)
    check_source_path(path)
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
