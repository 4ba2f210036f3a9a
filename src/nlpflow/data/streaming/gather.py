"""gather in bounded chunks: the same splits as gather in memory, never the whole source held.

    out = gather_chunks(parts, dst, DataParams(), rows=50_000, role=data_role(task))

Two passes over the source's files (nlpflow.data.streaming.reading lists them once). The first
reads each chunk, rewrites its labels (label_pattern, label_map), and keeps per row only what
the data-wide steps need: a 64-bit hash of the normalised text (and of the exact text for
data.dedupe: exact), whether the text is there, a label code, the source's split. Then, on
those arrays and in the in-memory order: test overlap (test_overlap: drop_from_train), repeats
(data.dedupe: first copy kept), labels with a fraction refused, and the split: the source's,
completed, or the seeded stratified split, reproduced exactly (split_codes). The second pass
reads the chunks again and writes each row to its split's Parquet file, a row group a chunk.

The outputs equal in-memory gather's, row for row and in the same order (tests/data/
test_streaming_gather.py): changing runtime.max_memory_mb never moves a row to another split.
Hashes stand for texts (64 bits: a collision in 3e-8 for a million rows, nlpflow.data.
streaming.sketch). Memory: about two chunks, and ~30 bytes a row of arrays (~60 while sorting).
"""

from __future__ import annotations

import array
import random
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nlpflow.config.params import DataParams, RuntimeParams, SplitParams
from nlpflow.data.local_source import refuse_fractional_labels
from nlpflow.data.splits import SPLIT_COLUMN, SPLITS
from nlpflow.data.streaming import RowCost
from nlpflow.data.streaming.parquet import ParquetSink
from nlpflow.data.streaming.reading import Part, PartState, iter_parts
from nlpflow.data.streaming.sketch import first_seen, normalized_hashes, text_hashes
from nlpflow.data.subphrase import PhraseIndex, Words
from nlpflow.errors import DataSourceError

# Measured (bench/scale_data.py): a chunk read from CSV takes ~8x its bytes plus ~600 bytes a
# row (pandas' strings, the selected frame, the rows being written); 64 bytes a row of arrays.
GATHER_COST = RowCost(factor=8.0, fixed=600, state=64)
TRAIN, VALIDATION, TEST = (SPLITS.index(s) for s in SPLITS)
NO_SPLIT = -1
MISSING = "<missing>"


def _joined(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


@dataclass
class RowKeys:
    """Per-row arrays of the first pass, chunk by chunk."""

    params: DataParams
    labels: dict[str, int] = field(default_factory=dict)  # label -> code (in first-seen order)
    from_source: bool = False  # some chunk had a split column
    parts: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def _put(self, name: str, values: np.ndarray) -> None:
        self.parts.setdefault(name, []).append(values)

    def add(self, frame: pd.DataFrame) -> None:
        text = frame["text"]
        self._put("notnull", text.notna().to_numpy())
        p = self.params
        if p.split.group_duplicates or p.dedupe == "normalized" or p.test_overlap != "keep":
            self._put("normal", normalized_hashes(text))
        if p.dedupe == "exact":
            self._put("exact", text_hashes(text))
        if p.split.group_subphrases:  # each text's key, looked for in the others by a scan
            phrases = PhraseIndex.of(text, min_tokens=1, strict=True)
            self._put("phrase_key", phrases.keys)
            self._put("phrase_len", phrases.lengths)
        codes, uniques = pd.factorize(frame["label"])  # a missing label: -1
        known = np.array(
            [self.labels.setdefault(str(u), len(self.labels)) for u in uniques] + [-1], np.int32
        )
        self._put("label", known[codes])  # -1 indexes the -1 appended: missing stays missing
        if SPLIT_COLUMN in frame.columns:
            self.from_source = True
            split = frame[SPLIT_COLUMN].map({s: i for i, s in enumerate(SPLITS)})
            self._put("split", split.fillna(NO_SPLIT).to_numpy(dtype=np.int8))
        else:
            self._put("split", np.full(len(frame), NO_SPLIT, np.int8))

    def array(self, name: str, dtype: Any) -> np.ndarray:
        return _joined(self.parts.pop(name, []), dtype)


@dataclass
class Decided:
    """Where each row goes: kept or not, and its split; the counts the manifest reports."""

    keep: np.ndarray
    split: np.ndarray
    label: np.ndarray
    names: list[str]  # label code -> label
    duplicates_dropped: int = 0
    test_overlap_dropped: int = 0
    any_text: bool = True
    any_label: bool = True


def _drop_test_overlap(
    keep: np.ndarray, split: np.ndarray, normal: np.ndarray, notnull: np.ndarray
) -> int:
    """splits.drop_test_overlap on the arrays: non-test rows whose text is a test text."""
    is_test = split == TEST
    drop = ~is_test & notnull & np.isin(normal, normal[is_test & notnull])
    keep &= ~drop
    return int(drop.sum())


def _dedupe(keep: np.ndarray, key: np.ndarray, notnull: np.ndarray) -> int:
    """Repeats among the kept rows dropped, the first copy kept (a missing text is no repeat)."""
    rows = np.flatnonzero(keep & notnull)
    repeats = rows[~first_seen(key[rows])]
    keep[repeats] = False
    return len(repeats)


def split_codes(
    rows: np.ndarray,
    *,
    labels: np.ndarray,
    names: list[str],
    units: np.ndarray | None,
    notnull: np.ndarray,
    params: SplitParams,
) -> np.ndarray:
    """splits.split_stratified on arrays: the split (0 train, 1 validation, 2 test) of each of
    `rows`, drawn with the same seeded shuffles in the same order, so the same rows land in
    the same splits. `units`: the normalised-text hash of every row (group_duplicates), or
    None for each row its own unit."""
    n = len(rows)
    if units is not None:  # a missing text is a unit of its own, as f"\\0{i}" in memory
        present = notnull[rows]
        unit = np.empty(n, dtype=np.int64)
        keys = units[rows[present]]
        _, first_of, inverse = np.unique(keys, return_index=True, return_inverse=True)
        unit[present] = inverse
        unit[~present] = len(first_of) + np.arange(int((~present).sum()))
        first_row = np.concatenate([np.flatnonzero(present)[first_of], np.flatnonzero(~present)])
    else:
        unit, first_row = np.arange(n), np.arange(n)
    order = np.argsort(first_row, kind="stable")  # units in the order of their first row
    unit_label = labels[rows[first_row]][order]
    unit_split = np.zeros(len(first_row), dtype=np.int8)
    rng = random.Random(params.seed)
    # groups by label, sorted as pandas sorts them, rows without a label last
    by_name = sorted((name, code) for code, name in enumerate(names))
    for code in [c for _, c in by_name] + [-1]:
        members = order[unit_label == code]
        if not len(members):
            continue
        # random.shuffle depends only on the length: shuffling positions shuffles the units
        shuffled = array.array("q", range(len(members)))
        rng.shuffle(shuffled)
        picked = members[np.frombuffer(shuffled, dtype=np.int64)]
        n_test = round(len(members) * params.test)
        n_val = round(len(members) * params.validation)
        unit_split[picked[:n_test]] = TEST
        unit_split[picked[n_test : n_test + n_val]] = VALIDATION
    return unit_split[unit]


Containers = Callable[[np.ndarray], np.ndarray]


def follow_units(
    rows: np.ndarray, units: np.ndarray | None, parent: np.ndarray, size: int
) -> np.ndarray:
    """splits.follow_containers on arrays: each of `rows` takes the unit (the normalised hash,
    or with `units` None its row) of the outermost text holding it; `parent` is each row's
    first container (a row of `rows`, or -1). A key per row of the source, as split_codes
    reads `units`."""
    root = np.arange(len(rows))
    step_of = np.where(parent >= 0, np.searchsorted(rows, parent), -1)
    while True:  # a step up a round, as in memory
        step = step_of[root]
        if not (step >= 0).any():
            break
        root = np.where(step >= 0, step, root)
    out = np.zeros(size, dtype=np.uint64)
    out[rows] = units[rows[root]] if units is not None else rows[root].astype(np.uint64)
    return out


def decide(keys: RowKeys, params: DataParams, containers: Containers | None = None) -> Decided:
    """Which rows gather keeps and their splits, from the first pass's arrays, step by step as
    gather in memory takes them (drop_test_overlap, shape, assign_splits). `containers`:
    for split.group_subphrases, each of some rows' first container among them (a scan)."""
    notnull = keys.array("notnull", np.bool_)
    normal = keys.array("normal", np.uint64)
    exact = keys.array("exact", np.uint64)
    labels = keys.array("label", np.int32)
    source_split = keys.array("split", np.int8)
    names = list(keys.labels)
    keep = np.ones(len(notnull), dtype=bool)
    out = Decided(keep, source_split, labels, names, any_text=bool(notnull.any()),
                  any_label=bool((labels >= 0).any()))  # fmt: skip
    if keys.from_source and params.test_overlap == "drop_from_train":
        out.test_overlap_dropped = _drop_test_overlap(keep, source_split, normal, notnull)
    if params.dedupe != "none":
        key = exact if params.dedupe == "exact" else normal
        out.duplicates_dropped = _dedupe(keep, key, notnull)
    if params.label_column is not None:
        present = [names[c] for c in np.unique(labels[keep & (labels >= 0)])]
        refuse_fractional_labels(pd.Series(present, dtype=object), column=params.label_column)
    units = normal if params.split.group_duplicates else None

    def stratified(rows: np.ndarray, *, params: SplitParams) -> np.ndarray:
        grouped = units
        if params.group_subphrases:
            assert containers is not None, "group_subphrases needs a scan of the source"
            grouped = follow_units(rows, units, containers(rows), len(notnull))
        return split_codes(
            rows, labels=labels, names=names, units=grouped, notnull=notnull, params=params
        )

    if not keys.from_source:
        rows = np.flatnonzero(keep)
        out.split = np.full(len(keep), NO_SPLIT, np.int8)
        out.split[rows] = stratified(rows, params=params.split)
        return out
    present_splits = {SPLITS[c] for c in np.unique(source_split[keep]) if c >= 0}
    if "train" not in present_splits or "test" not in present_splits:
        raise DataSourceError(
            f"the source's splits are {sorted(present_splits)}: it needs at least train and "
            "test, or no split column at all (then nlpflow splits it)."
        )
    if "validation" not in present_splits and params.split.validation > 0:
        # complete_splits: carve validation out of train; only the carving's test moves
        share = params.split.model_copy(update={"test": min(params.split.validation, 0.49)})
        rows = np.flatnonzero(keep & (source_split == TRAIN))
        carved = stratified(rows, params=share)
        out.split = source_split.copy()
        out.split[rows[carved == TEST]] = VALIDATION
    return out


@dataclass
class Gathered:
    rows: dict[str, int]
    labels: dict[str, int]
    replaced: int
    duplicates_dropped: int
    test_overlap_dropped: int
    from_source: bool
    files: Counter[str]  # a glob's rows read per file
    chunks: int
    sampled: dict[str, Any] | None = None


def _first_pass(
    parts: list[Part], states: list[PartState], params: DataParams, rows: int, role: Any
) -> tuple[RowKeys, int, Counter[str]]:
    keys, replaced, files = RowKeys(params), 0, Counter[str]()
    for part, frame in iter_parts(parts, states, params, rows, first=True):
        replaced += int(frame["text"].dropna().astype(str).str.count("\ufffd").sum())
        if part.source_file is not None:
            files[part.source_file] += len(frame)
        keys.add(role.rewrite_labels(frame, params))
    _refuse_empty(parts, states)
    return keys, replaced, files


def _refuse_empty(parts: list[Part], states: list[PartState]) -> None:
    """load_source's "has a header but no rows", for each file or folder it would read."""
    held: dict[Path, int] = {}
    for part, state in zip(parts, states, strict=True):
        where = part.empty_path or part.path
        held[where] = held.get(where, 0) + state.rows
    for where, count in held.items():
        if not count:
            raise DataSourceError(f"{where} has a header but no rows.")


def _schema(frame: pd.DataFrame, decided: Decided) -> Any:
    """The output's Arrow schema: text and label are strings when any row has one (an
    all-missing column is null-typed, as pandas writes a column of None)."""
    import pyarrow as pa

    schema = pa.Schema.from_pandas(frame.iloc[:0], preserve_index=False).remove_metadata()
    for name, any_value in (("text", decided.any_text), ("label", decided.any_label)):
        i = schema.get_field_index(name)
        schema = schema.set(i, pa.field(name, pa.string() if any_value else pa.null()))
    return schema


def _second_pass(
    chunks: Iterator[pd.DataFrame], dst: Path, decided: Decided
) -> tuple[dict[str, int], int]:
    """Each row to its split's file, chunk by chunk; the rows written per split."""
    from contextlib import ExitStack

    sinks: dict[int, ParquetSink] = {}
    start = count = 0
    with ExitStack() as stack:
        for frame in chunks:
            count += 1
            end = start + len(frame)
            keep, split = decided.keep[start:end], decided.split[start:end]
            start = end
            out = frame.drop(columns=SPLIT_COLUMN, errors="ignore")
            if not sinks:
                schema = _schema(out, decided)
                for i, name in enumerate(SPLITS):
                    sinks[i] = stack.enter_context(ParquetSink(dst / f"{name}.parquet", schema))
            for i, sink in sinks.items():
                chosen = keep & (split == i)
                if chosen.any():
                    sink.write_frame(out[chosen].reset_index(drop=True))
        rows = {name: sinks[i].rows for i, name in enumerate(SPLITS)}
    return rows, count


def gather_chunks(
    parts: list[Part], dst: Path, params: DataParams, *, rows: int, role: Any
) -> Gathered:
    """gather's splits from `parts`, `rows` rows at a time (the module's docstring says how)."""
    states = [PartState() for _ in parts]
    keys, replaced, files = _first_pass(parts, states, params, rows, role)
    from_source = keys.from_source
    containers = None
    if params.split.group_subphrases:
        phrases = (keys.array("phrase_key", np.uint64), keys.array("phrase_len", np.int64))
        texts = partial(iter_parts, parts, states, params, rows, first=False)
        containers = partial(first_containers, phrases, texts)
    decided = decide(keys, params, containers)
    sampled = _sample(decided, params)
    dst.mkdir(parents=True, exist_ok=True)

    def chunks() -> Iterator[pd.DataFrame]:
        for _, frame in iter_parts(parts, states, params, rows, first=False):
            yield role.rewrite_labels(frame, params)

    written, count = _second_pass(chunks(), dst, decided)
    if sum(written.values()) != int((decided.keep & (decided.split >= 0)).sum()):
        raise DataSourceError(
            "the source changed while gather read it (its rows differ between two reads): "
            "gather again once it is complete."
        )
    return Gathered(
        rows=written, labels=_label_counts(decided), replaced=replaced,
        duplicates_dropped=decided.duplicates_dropped,
        test_overlap_dropped=decided.test_overlap_dropped, from_source=from_source,
        files=files, chunks=count, sampled=sampled,
    )  # fmt: skip


def first_containers(
    phrases: tuple[np.ndarray, np.ndarray], texts: Callable[[], Any], rows: np.ndarray
) -> np.ndarray:
    """subphrase.first_container among `rows` of the source, by one more read of it: each
    row's first container (a row), or -1. Per chunk, the earliest container of each key
    found; merged across chunks, the earliest overall."""
    keys, lengths = phrases
    index = PhraseIndex(keys[rows], lengths[rows], min_tokens=1, strict=True)
    member = np.zeros(len(keys), dtype=bool)
    member[rows] = True
    best_key, best_row, start = np.zeros(0, np.uint64), np.zeros(0, np.int64), 0
    for _, frame in texts():
        found, where = index.matches(Words.of(frame["text"]))
        where = where + start
        start += len(frame)
        chosen = member[where]
        best_key = np.concatenate([best_key, found[chosen]])
        best_row = np.concatenate([best_row, where[chosen]])
        order = np.lexsort((best_row, best_key))
        best_key, best_row = best_key[order], best_row[order]
        first = np.ones(len(best_key), dtype=bool)
        first[1:] = best_key[1:] != best_key[:-1]
        best_key, best_row = best_key[first], best_row[first]
    out = np.full(len(rows), -1, dtype=np.int64)
    if len(best_key):
        at = np.searchsorted(best_key, index.keys).clip(max=len(best_key) - 1)
        hit = (index.lengths >= 1) & (best_key[at] == index.keys)
        out[hit] = best_row[at[hit]]
    return out


def _sample(decided: Decided, params: DataParams) -> dict[str, Any] | None:
    """data.sample on the arrays: the rows sample_frame keeps in memory (the kept rows in
    order, their labels ranked as sorted text), left out of decided.keep."""
    if params.sample is None:
        return None
    from nlpflow.data.sample import sample_splits

    rows = np.flatnonzero(decided.keep & (decided.split >= 0))
    ranks = np.full(len(decided.names) + 1, -1, dtype=np.int64)  # the last: a missing label
    ranks[np.argsort(np.array(decided.names, dtype=object), kind="stable")] = np.arange(
        len(decided.names)
    )
    keep, info = sample_splits(
        ranks[decided.label[rows]], decided.split[rows].astype(np.int64), params.sample
    )
    decided.keep[rows[~keep]] = False
    return info


def _label_counts(decided: Decided) -> dict[str, int]:
    """target_counts(frame, missing=True) of the rows written."""
    written = decided.keep & (decided.split >= 0)
    codes = decided.label[written]
    counts = np.bincount(codes[codes >= 0], minlength=len(decided.names))
    out = {decided.names[c]: int(n) for c, n in enumerate(counts) if n}
    absent = int((codes < 0).sum())
    return dict(sorted(out.items())) | ({MISSING: absent} if absent else {})


# ---------------------------------------------------------------- how large a chunk

AUTO_FACTOR = 10  # a source file's bytes -> bytes in memory, read whole (pandas' strings)
SAMPLE = 1 << 16  # bytes of a text file read to tell its bytes per row


def _source_bytes(source: Path) -> int:
    """The bytes of a local source's files, to tell whether it fits in memory; 0 when it
    cannot be told (the in-memory path then says what is wrong)."""
    import glob as globmod

    from nlpflow.config.source_kinds import is_glob

    try:
        if is_glob(source):
            files = [Path(p) for p in globmod.glob(str(source), recursive=True)]
        elif source.is_dir():
            files = list(source.rglob("*"))
        else:
            files = [source]
        return sum(f.stat().st_size for f in files if f.is_file())
    except OSError:
        return 0


def estimate_rows(parts: list[Part]) -> tuple[int, float]:
    """About how many rows the parts hold, and bytes a row: Parquet footers, else the file's
    size over the bytes a line takes in its first 64 kB (decompressed)."""
    from nlpflow.data.reading import COMPRESSIONS
    from nlpflow.data.streaming.parquet import bytes_per_row, parquet_rows
    from nlpflow.data.streaming.reading import _open_binary

    rows, size = 0, 0.0
    for part in parts:
        compressed = part.path.suffix.lower() in COMPRESSIONS
        if part.fmt == "parquet" and not compressed:
            count = parquet_rows(part.path)
            rows, size = rows + count, size + count * bytes_per_row([part.path])
            continue
        with _open_binary(part.path) as fh:
            sample = fh.read(SAMPLE)
        per_line = len(sample) / max(sample.count(b"\n"), 1)
        total = part.path.stat().st_size * (4 if compressed else 1)
        rows, size = rows + int(total / max(per_line, 1)) + 1, size + total
    return rows, size / max(rows, 1)


def chunk_rows(
    source: Path, params: DataParams, runtime: RuntimeParams | None, role: Any
) -> int | None:
    """Rows per chunk, or None for the in-memory path: no limit asked for and a source that
    fits, or an NLP task whose data is read whole (token classification's sentences)."""
    from nlpflow.data.streaming import MB, available_mb, log, plan_chunks
    from nlpflow.data.streaming.reading import plan_source

    if not hasattr(role, "rewrite_labels"):
        if runtime is not None and runtime.streaming:
            log.warning("gather: this task's data is read whole (runtime is ignored)")
        return None
    if runtime is None or not runtime.streaming:
        free = available_mb()
        if free is None or _source_bytes(source) * AUTO_FACTOR / MB <= free / 2:
            return None
    parts, _ = plan_source(source, params)
    rows, per_row = estimate_rows(parts)
    plan = plan_chunks(runtime, stage="gather", rows=rows, bytes_per_row=per_row, cost=GATHER_COST)
    return None if plan is None else plan.rows


SQL_ROW_BYTES = 1024  # a query's rows are sized only once fetched: a generous guess


def sql_chunk_rows(runtime: RuntimeParams | None) -> int | None:
    """Rows a query's snapshot is fetched and written at a time; None: all at once (no limit
    asked for: a query's size is unknown until it has run)."""
    import sys

    from nlpflow.data.streaming import plan_chunks

    if runtime is None or not runtime.streaming:
        return None
    cost = RowCost(GATHER_COST.factor, GATHER_COST.fixed, state=0)
    plan = plan_chunks(
        runtime, stage="gather", rows=sys.maxsize, bytes_per_row=SQL_ROW_BYTES, cost=cost
    )
    return None if plan is None else plan.rows
