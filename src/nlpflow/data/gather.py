"""gather: read labelled text from a local file or folder and write train/validation/test Parquet.

Formats: CSV, TSV, JSONL, Parquet, or a folder (one text file per label, or split files).
Splits the source already has (a `split` column, train/validation/test files, or files named in
data.split_files) are kept; otherwise a seeded split stratified by label is made. What the rows
hold, and so how they are shaped and split, is the NLP task's (params `task`; nlpflow.data.nlp).

    nlpflow stage gather        # what dvc.yaml runs
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from nlpflow.config.nlp_tasks import DEFAULT_NLP_TASK
from nlpflow.config.params import DataParams, RuntimeParams
from nlpflow.config.source_kinds import is_glob as is_glob

# Where the pieces live (these names are imported from nlpflow.data.gather too):
# reading one file, a local source as rows, and the splits.
from nlpflow.data.local_source import glob_root
from nlpflow.data.nlp import data_role
from nlpflow.data.reading import plain_name as plain_name
from nlpflow.data.reading import read_table as read_table
from nlpflow.data.reading import sniff_delimiter as sniff_delimiter
from nlpflow.data.splits import SPLIT_ALIASES as SPLIT_ALIASES
from nlpflow.data.splits import SPLIT_COLUMN, SPLITS, drop_test_overlap
from nlpflow.data.splits import load_splits as load_splits


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
    # data.sample: the seed, and per sampled split the rows before and after; None: all rows
    sampled: dict[str, Any] | None = None
    # read in chunks (runtime.max_memory_mb): rows per chunk, chunks written
    streamed: dict[str, Any] | None = None


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


def gather(
    *,
    source: Path,
    dst: Path,
    params: DataParams,
    task: str = DEFAULT_NLP_TASK,
    runtime: RuntimeParams | None = None,
) -> GatherReport:
    """Read `source`, split it, write `dst/{train,validation,test}.parquet` and a manifest.
    NLP task `task` shapes the rows and assigns their splits (its Data module). With `runtime`
    asking for it (or a source too large for memory) the source is read in chunks, with the
    same outputs (nlpflow.data.streaming.gather)."""
    from nlpflow.data.streaming.gather import chunk_rows

    role = data_role(task)
    chunk = chunk_rows(source, params, runtime, role)
    if chunk is not None:
        return _gather_chunks(source, dst, params, role=role, rows=chunk)
    frame, fmt = role.read(source, params)
    replaced = sum(t.count("\ufffd") for t in frame["text"] if isinstance(t, str))
    files, source_sha256 = [], ""
    if is_glob(source):
        # The files actually read (every one holds rows), not a second glob: a drop folder
        # may gain a file while gather runs.
        root = glob_root(source)
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
    frame, duplicates_dropped = role.shape(frame, params)
    frame = role.assign_splits(frame, params.split, from_source=from_source)
    sampled = None
    if params.sample is not None:
        from nlpflow.data.sample import sample_frame

        frame, sampled = sample_frame(frame, params.sample)
    dst.mkdir(parents=True, exist_ok=True)
    rows = {}
    for split in SPLITS:
        part = frame[frame[SPLIT_COLUMN] == split].drop(columns=SPLIT_COLUMN).reset_index(drop=True)
        part.to_parquet(dst / f"{split}.parquet", index=False)
        rows[split] = len(part)
    return _manifest(
        dst, source=source, format=fmt, source_sha256=source_sha256, rows=rows,
        labels=role.target_counts(frame, missing=True),
        split_from_source=from_source, duplicates_dropped=duplicates_dropped,
        test_overlap_dropped=overlap_dropped, replaced_characters=replaced, params=params,
        files=files, sampled=sampled,
    )  # fmt: skip


def _manifest(dst: Path, *, source: Path, params: DataParams, **fields: Any) -> GatherReport:
    """The report, written as the manifest; passwords in URLs masked (DVC pushes it too)."""
    from nlpflow.config.secrets import redact, redact_tree

    report = GatherReport(
        source=redact(str(source)), params=redact_tree(params.model_dump(mode="json")), **fields
    )
    (dst / "manifest.json").write_text(json.dumps(report.model_dump(mode="json"), indent=2))
    return report


def _gather_chunks(
    source: Path, dst: Path, params: DataParams, *, role: Any, rows: int
) -> GatherReport:
    from nlpflow.data.streaming.gather import gather_chunks
    from nlpflow.data.streaming.reading import plan_source

    parts, fmt = plan_source(source, params)
    out = gather_chunks(parts, dst, params, rows=rows, role=role)
    files, source_sha256 = [], ""
    if is_glob(source):  # the files read, as gather in memory lists them
        root = glob_root(source)
        files = [
            {"path": name, "sha256": sha256_of(root / name), "rows": count}
            for name, count in out.files.items()
        ]
        source_sha256 = sha256_of_files(root / name for name in out.files)
    else:
        source_sha256 = sha256_of(source)
    return _manifest(
        dst, source=source, format=fmt, source_sha256=source_sha256, rows=out.rows,
        labels=out.labels, split_from_source=out.from_source,
        duplicates_dropped=out.duplicates_dropped, test_overlap_dropped=out.test_overlap_dropped,
        replaced_characters=out.replaced, params=params, files=files, sampled=out.sampled,
        streamed={"rows_per_chunk": rows, "chunks": out.chunks},
    )  # fmt: skip
