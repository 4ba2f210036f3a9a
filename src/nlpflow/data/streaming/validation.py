"""validate, chunk by chunk: the gathered splits never held whole (runtime.max_memory_mb).

    done = validate_chunks(src, suite=role, runner=checkpoint, checks=checks, rows=50_000, ...)

Two passes over the splits, per run of the suite. The first reads only text and label and
builds the TextSketch: label counts, 64-bit hashes of the texts (repeats, test texts in train),
token counts (the median, length drift); then train's texts are read again to find the
validation and test texts inside them (leak_subphrase). The second reads each chunk whole, builds its rows of
the suite's table from the sketch (the suite's stream_frame: the columns build_frame adds),
runs the GX suite on it, and merges the results (nlpflow.data.streaming.gx_merge). Offending
rows are counted per split, the first few kept as examples, and quarantined rows written to the
quarantine file as their chunk passes. When some were quarantined, both passes run again
without them: the in-memory path, too, validates what is left again, as a whole.

Each chunk runs GX's Validator, not the project's Checkpoint: a checkpoint stores results and
runs its actions (a user's Slack message) on every run, so once per chunk. The merged results
are written once, to `results/streamed.json` in the run's folder.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nlpflow.config.params import DataParams, ValidateParams
from nlpflow.data.check_results import (
    QUARANTINE_FILE,
    CheckResult,
    Evidence,
    check_results,
    emptied_split,
    example_rows,
    keyed_results,
    offending,
    quarantine_frame,
    quarantine_rows,
)
from nlpflow.data.checks import Check, result_format
from nlpflow.data.splits import SPLITS
from nlpflow.data.streaming import RowCost
from nlpflow.data.streaming.gx_merge import MergedResults
from nlpflow.data.streaming.parquet import ParquetSink, iter_batches, parquet_rows
from nlpflow.data.streaming.sketch import TextSketch
from nlpflow.data.suites import StreamingSuite

# Measured (bench/scale_data.py): a chunk in GX takes about 12x its Parquet bytes plus ~1 kB a
# row (the suite's table, GX's masks and unexpected lists); the sketch ~40 bytes a row, and
# about as much again while finish() sorts the hashes.
VALIDATE_COST = RowCost(factor=12.0, fixed=1024, state=80)


class Splits:
    """The gathered splits, read `rows` at a time, less the rows in `drop` (by position in
    train, validation, test order), numbered again from 0 as build_frame numbers them."""

    def __init__(self, src: Path, rows: int, drop: np.ndarray | None = None) -> None:
        self.paths = {s: src / f"{s}.parquet" for s in SPLITS}
        self.gathered = {s: parquet_rows(p) for s, p in self.paths.items()}
        self.rows = rows
        self.drop = drop

    def batches(self, split: str, columns: list[str] | None = None) -> Iterator[Any]:
        """(first kept row's new id, the batch, less dropped rows) of one split."""
        start = sum(self.gathered[s] for s in SPLITS[: SPLITS.index(split)])
        new_start = start - (int(self.drop[:start].sum()) if self.drop is not None else 0)
        for batch in iter_batches(self.paths[split], self.rows, columns):
            if self.drop is not None:
                keep = ~self.drop[start : start + batch.num_rows]
                start += batch.num_rows
                batch = batch.filter(keep)
            if batch.num_rows:
                yield new_start, batch
                new_start += batch.num_rows

    def frames(self, columns: list[str] | None = None) -> Iterator[tuple[str, int, pd.DataFrame]]:
        for split in SPLITS:
            for first, batch in self.batches(split, columns):
                yield split, first, batch.to_pandas()

    def kept(self) -> dict[str, int]:
        if self.drop is None:
            return dict(self.gathered)
        out, start = {}, 0
        for s in SPLITS:
            out[s] = self.gathered[s] - int(self.drop[start : start + self.gathered[s]].sum())
            start += self.gathered[s]
        return out


@dataclass
class StreamRun:
    """One run of the suite over all chunks."""

    results: dict[str, Any]
    evidence: Evidence
    chunks: int
    moved: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    quarantined: dict[str, int] = field(default_factory=dict)


def sketch_splits(splits: Splits) -> TextSketch:
    sketch = TextSketch()
    for split, _, frame in splits.frames(["text", "label"]):
        sketch.add(split, frame)
    sketch.finish()
    for _, batch in splits.batches("train", ["text"]):  # train again: sub-phrase leaks
        sketch.scan_train(batch.column("text").to_pandas())
    sketch.finish_scan()
    return sketch


@dataclass
class _Quarantine:
    """Quarantined rows, written to the file as their chunk passes."""

    path: Path
    empty: str | None = None  # what the in-memory path writes when no row is moved
    moved: list[np.ndarray] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, frame: pd.DataFrame, rows: dict[int, list[Check]], fh: Any) -> None:
        self.empty = self.empty if self.empty is not None else _json(quarantine_frame(frame, {}))
        if not rows:
            return
        fh.write(_json(quarantine_frame(frame, rows)))
        self.moved.append(np.fromiter(rows, dtype=np.int64, count=len(rows)))
        for row_checks in rows.values():
            for check in row_checks:
                self.counts[check.id] = self.counts.get(check.id, 0) + 1


def _json(frame: pd.DataFrame) -> str:
    return str(frame.to_json(orient="records", lines=True, force_ascii=False))


def run_suite(
    splits: Splits,
    sketch: TextSketch,
    *,
    suite: StreamingSuite,
    validate_chunk: Callable[[pd.DataFrame, dict[str, Any]], dict[str, Any]],
    checks: list[Check],
    params: ValidateParams,
    suite_params: dict[str, Any],
    quarantine: Path | None = None,
) -> StreamRun:
    """The second pass, on `sketch` of the same rows; with `quarantine`, quarantine-policy
    rows are written there (their ids in StreamRun.moved)."""
    merged, evidence, chunks = MergedResults(params.show_examples), Evidence(), 0
    moved = _Quarantine(quarantine) if quarantine is not None else None
    with _open(quarantine) as fh:
        for split, first, frame in splits.frames():
            table = suite.stream_frame(frame, split, first, sketch)
            results = validate_chunk(table, suite_params)
            merged.add(results)
            _collect(evidence, results, table, split, limit=params.show_examples)
            if moved is not None:
                moved.add(table, quarantine_rows(checks, results, params), fh)
            chunks += 1
    results = merged.finish(suite.stream_metrics(sketch))
    for check in checks:  # a failed check's own details, as Check.details gives them
        if check.details is not None and check.id in results and not results[check.id].success:
            details = suite.stream_details(check.id, sketch)
            if details is not None:
                evidence.details[check.id] = details
    run = StreamRun(results, evidence, chunks)
    if moved is not None:
        run.moved = np.concatenate(moved.moved) if moved.moved else run.moved
        run.quarantined = moved.counts
        if not moved.moved:  # the in-memory path's file for no rows
            assert quarantine is not None
            quarantine.write_text(moved.empty or "")
    return run


class _open:
    """The quarantine file opened for writing, or nothing."""

    def __init__(self, path: Path | None) -> None:
        self.path: Path | None = path
        self.fh: Any = None

    def __enter__(self) -> Any:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fh = self.path.open("w", encoding="utf-8")
        return self.fh

    def __exit__(self, *exc: object) -> None:
        if self.fh is not None:
            self.fh.close()


def _collect(
    evidence: Evidence, results: dict[str, Any], table: pd.DataFrame, split: str, *, limit: int
) -> None:
    """Offending rows per split, and the first `limit` of them, of one chunk."""
    for key, result in results.items():
        ids = offending(result)
        if not ids:
            evidence.by_split.setdefault(key, {})
            continue
        counts = evidence.by_split.setdefault(key, {})
        counts[split] = counts.get(split, 0) + len(ids)
        shown = evidence.examples.setdefault(key, [])
        if len(shown) < limit:
            shown += example_rows(table, ids[: limit - len(shown)])
    for key, counts in evidence.by_split.items():  # in SPLITS order, as the in-memory path
        evidence.by_split[key] = {s: counts[s] for s in SPLITS if s in counts}


def gx_chunk_validator(runner: Any) -> Callable[[pd.DataFrame, dict[str, Any]], dict[str, Any]]:
    """Run the checkpoint's suite on one chunk with GX's Validator: results, stored nowhere."""
    from great_expectations.validator.v1_validator import Validator

    definition = runner.validation_definitions[0]

    def validate_chunk(table: pd.DataFrame, suite_params: dict[str, Any]) -> dict[str, Any]:
        validator = Validator(
            batch_definition=definition.batch_definition,
            batch_parameters={"dataframe": table},
            result_format=result_format(),
        )
        outcome = validator.validate_expectation_suite(definition.suite, suite_params)
        return keyed_results(outcome.results)

    return validate_chunk


@dataclass
class Streamed:
    """What validate reports and writes, from the streaming path."""

    # the fields of nlpflow.data.validation.Validated, the protocol this implements
    # pylint: disable=duplicate-code
    checks: list[CheckResult]
    results: dict[str, Any]  # merged GX results, by check id
    rows: dict[str, int]
    gathered: dict[str, int]
    label_counts: dict[str, dict[str, int]]
    allowed: list[str]
    quarantined: dict[str, int]
    quarantined_rows: int
    quarantine_file: Path
    # pylint: enable=duplicate-code
    profile: dict[str, Any]
    info: dict[str, Any]
    splits: Splits

    def write_accepted(self, folder: Path) -> None:
        write_kept(self.splits, folder)

    def save_results(self, folder: Path) -> Path:
        return save_merged(self.results, folder, self.info)


def validate_chunks(
    src: Path,
    *,
    rows: int,
    suite: StreamingSuite,
    runner: Any,
    checks: list[Check],
    params: ValidateParams,
    data: DataParams,
    reference: dict[str, Any] | None,
    quarantine: Path,
) -> Streamed:
    """validate's in-memory steps, chunk by chunk (the module's docstring says how)."""
    validate_chunk = gx_chunk_validator(runner)
    splits = Splits(src, rows)
    sketch = sketch_splits(splits)
    # computed once, before quarantine, as the in-memory path does: the rows left are judged
    # against the labels the data came with
    suite_params = suite.stream_suite_params(sketch, data, reference)
    allowed = suite.stream_allowed_labels(sketch, data)
    run_pass = partial(
        run_suite, suite=suite, validate_chunk=validate_chunk, checks=checks, params=params,
        suite_params=suite_params,
    )  # fmt: skip
    path = quarantine / QUARANTINE_FILE
    first = run_pass(splits, sketch, quarantine=path)
    run, passes = first, 1
    if len(first.moved):
        drop = np.zeros(sum(splits.gathered.values()), dtype=bool)
        drop[first.moved] = True
        splits = Splits(src, rows, drop)
        for name, kept in splits.kept().items():
            if splits.gathered[name] and not kept:
                raise emptied_split(name)
        sketch = sketch_splits(splits)
        run, passes = run_pass(splits, sketch), 2
    reported = check_results(
        checks, run.results, run.evidence, params=params, suite_params=suite_params
    )
    return Streamed(
        checks=reported,
        results=run.results, rows=splits.kept(), gathered=dict(splits.gathered),
        label_counts={s: dict(sorted(sketch.labels[s].items())) for s in SPLITS},
        allowed=allowed, quarantined=first.quarantined, quarantined_rows=len(first.moved),
        quarantine_file=path, profile=suite.stream_profile(sketch),
        info={"rows_per_chunk": rows, "chunks": run.chunks, "passes": passes},
        splits=splits,
    )  # fmt: skip


def write_kept(splits: Splits, folder: Path) -> None:
    """Each split's rows that passed, batch by batch, as the gathered file's schema has them."""
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        schema = pq.read_schema(splits.paths[split])
        with ParquetSink(folder / f"{split}.parquet", schema) as sink:
            for _, batch in splits.batches(split):
                sink.write(batch)


def save_merged(results: dict[str, Any], folder: Path, info: dict[str, Any]) -> Path:
    """The merged GX results of a streamed run, one file (the in-memory run's store holds one)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "streamed.json"
    out = {
        "success": all(r.success for r in results.values()),
        "streamed": info,
        "results": [r.to_json_dict() for r in results.values()],
    }
    path.write_text(json.dumps(out, indent=2, default=str))
    return path
