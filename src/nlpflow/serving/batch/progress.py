"""Committing batch inference chunk by chunk, so that a run killed at any point resumes from its
last committed chunk and no row is ever scored twice into the output.

    job = open_job(plan, chunk_rows=50_000, resume=True)    # new, or the unfinished one
    summary = commit_chunk(plan, job=job.job, predictions=p, rejected=r, summary=s)
    written = finish_job(plan, job)                          # the output complete

A job is one scoring of one input into one output. Its identity (`input_key`) is the input
(a file's path, size and modification time; a database's table or query), the columns read,
on_invalid, the chunk size and the model's name: a rerun with the same identity continues the
unfinished job, and scores with the version that job began with (the alias may have moved).

- **Files**: the chunks go to the folder `<output>.parts/` beside the output: each chunk's
  predictions and rejected rows, in the output's format, then its counts (`chunk-N.json`,
  written last: it marks the chunk committed). `finish_job` joins the parts in input order into
  the output and the rejected file (each replaced whole, atomically), then removes the folder.
  A lock on the folder keeps a second run from writing the same output meanwhile.
- **Tables**: each chunk's predictions and rejected rows are appended in one transaction with
  its row in `<output>_progress` (primary key job and chunk): the rows and the mark commit
  together or not at all, and a chunk committed twice (a run beside this one) fails the key and
  rolls back. The job's row with chunk -2 says it started (a run started meanwhile joins
  it), the one with chunk -1 that it finished. A resumed table job reads the table in id
  order again: rows added since (with larger ids) are scored, but rows changed or inserted
  among those already committed shift the chunks; start over (inference.resume: false) then.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel

from nlpflow.data.sources import build_engine
from nlpflow.errors import DataSourceError, OutputBusyError, SourceUnavailableError
from nlpflow.serving.batch.plan import OUTPUT_FORMATS, InferencePlan, split_table


class ChunkSummary(BaseModel):
    """A committed chunk's counts: the run's report adds them up."""

    chunk: int
    first_row: int
    rows_read: int
    rows_valid: int
    rows_rejected: int
    rows_scored: int
    failed: dict[str, int]  # check id -> rows breaking it
    counted: str  # what `counts` counts (the task's Output.answer_counts)
    counts: dict[str, int]
    drift: dict[str, Any] | None  # the task's Output.answer_drift of this chunk
    model_version: int
    run_id: str  # the attempt (MLflow run) that scored it
    seconds: float
    worker: str  # host:pid


FINISHED = -1  # the chunk number of a table job's "finished" row ...
STARTED = -2  # ... and of its "started" row


class InferenceJob(BaseModel):
    job: str
    input_key: str
    chunk_rows: int
    model_version: int | None  # the version its committed chunks were scored with
    done: dict[int, ChunkSummary]  # chunks committed before this attempt
    resumed: bool


def input_key(plan: InferencePlan, *, chunk_rows: int) -> str:
    """The identity of a scoring of this input into this output (see the module's docstring)."""
    if plan.is_database:
        where: list[Any] = [plan.shown_source, plan.table, plan.query]
    else:
        stat = Path(plan.source).stat()
        where = [plan.source, stat.st_size, stat.st_mtime_ns]
    what = [plan.text_columns, plan.columns, plan.id_column, plan.on_invalid, chunk_rows, plan.model_name,
            plan.target.predictions]  # fmt: skip
    return hashlib.sha256(json.dumps(where + what, default=str).encode()).hexdigest()[:32]


def parts_folder(plan: InferencePlan) -> Path:
    return Path(plan.target.progress)


def progress_table(plan: InferencePlan) -> str:
    return plan.target.progress


def open_job(plan: InferencePlan, *, chunk_rows: int, resume: bool) -> tuple[InferenceJob, str]:
    """The job to run (the unfinished one of this identity, unless `resume` is off) and a line
    saying what was found."""
    key = input_key(plan, chunk_rows=chunk_rows)
    if plan.target.kind == "file":
        return _open_file_job(plan, key, chunk_rows=chunk_rows, resume=resume)
    return _open_table_job(plan, key, chunk_rows=chunk_rows, resume=resume)


def _new_job(key: str, chunk_rows: int) -> InferenceJob:
    job = datetime.now(UTC).strftime("%Y%m%dT%H%M%S-") + uuid.uuid4().hex[:8]
    return InferenceJob(job=job, input_key=key, chunk_rows=chunk_rows, model_version=None,
                        done={}, resumed=False)  # fmt: skip


def _described(job: InferenceJob, where: str) -> str:
    if not job.resumed:
        return f"new inference job {job.job}"
    if not job.done:
        return f"joining inference job {job.job} ({where}): started by another run, no chunk committed yet"
    rows = sum(s.rows_read for s in job.done.values())
    return (
        f"resuming inference job {job.job} ({where}): {len(job.done)} chunk(s), {rows} rows, "
        f"committed by an earlier attempt with version {job.model_version}"
    )


# ---------------------------------------------------------------------------------- files

_LOCKS: dict[str, int] = {}  # parts folder -> the open file descriptor holding its lock


def _lock(folder: Path) -> None:
    if str(folder) in _LOCKS:
        return
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise OutputBusyError(
            f"another inference run is writing {folder.name.removesuffix('.parts')} (it holds "
            f"{folder}/.lock): wait for it to end, or set inference.output to another file."
        ) from None
    _LOCKS[str(folder)] = fd  # released when this process ends, however it ends


def _unlock(folder: Path) -> None:
    fd = _LOCKS.pop(str(folder), None)
    if fd is not None:
        os.close(fd)


def _open_file_job(
    plan: InferencePlan, key: str, *, chunk_rows: int, resume: bool
) -> tuple[InferenceJob, str]:
    folder = parts_folder(plan)
    _lock(folder)
    meta = folder / "job.json"
    found = json.loads(meta.read_text()) if meta.is_file() else None
    if found is not None and found.get("input_key") == key and resume:
        done = {s.chunk: s for s in _file_summaries(folder)}
        versions = {s.model_version for s in done.values()}
        job = InferenceJob(job=found["job"], input_key=key, chunk_rows=chunk_rows,
                           model_version=min(versions) if versions else None, done=done,
                           resumed=bool(done))  # fmt: skip
        return job, _described(job, str(folder))
    stale = ""
    if found is not None or any(p.name != ".lock" for p in folder.iterdir()):
        why = "resume is off" if found and found.get("input_key") == key else "another input"
        stale = f" ({folder}'s parts of an unfinished job were dropped: {why})"
        for path in folder.iterdir():
            if path.name != ".lock":
                shutil.rmtree(path) if path.is_dir() else path.unlink()
    job = _new_job(key, chunk_rows)
    _write_atomic(meta, json.dumps({"job": job.job, "input_key": key}).encode())
    return job, _described(job, str(folder)) + stale


def _file_summaries(folder: Path) -> list[ChunkSummary]:
    return [
        ChunkSummary.model_validate_json(p.read_text()) for p in sorted(folder.glob("chunk-*.json"))
    ]


def _part(folder: Path, chunk: int, suffix: str, *, rejected: bool = False) -> Path:
    return folder / f"chunk-{chunk:06d}{'.rejected' if rejected else ''}{suffix}"


def _write_atomic(path: Path, data: bytes) -> None:
    handle, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(handle, "wb") as fh:
            fh.write(data)
        os.replace(partial, path)
    finally:
        Path(partial).unlink(missing_ok=True)


def write_frame(frame: pd.DataFrame, path: Path, *, fmt: str) -> None:
    """`frame` as the file `path` (csv with a header, jsonl, parquet), replaced atomically;
    created 0600 (mkstemp): predictions may be as private as their input."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    os.close(handle)
    try:
        if fmt == "parquet":
            frame.to_parquet(partial, index=False)
        elif fmt == "jsonl" and frame.empty:
            pass  # no rows, no lines: pandas writes "\n", and the parts joined held blank lines
        elif fmt == "jsonl":
            frame.to_json(
                partial, orient="records", lines=True, date_format="iso", force_ascii=False
            )
        else:
            frame.to_csv(partial, index=False)
        os.replace(partial, path)  # a reader never sees half a file
    finally:
        Path(partial).unlink(missing_ok=True)


def _commit_file_chunk(
    plan: InferencePlan, *, predictions: pd.DataFrame, rejected: pd.DataFrame,
    summary: ChunkSummary,
) -> ChunkSummary:  # fmt: skip
    folder = parts_folder(plan)
    fmt = OUTPUT_FORMATS[Path(plan.target.predictions).suffix.lower()]
    suffix = Path(plan.target.predictions).suffix.lower()
    write_frame(predictions, _part(folder, summary.chunk, suffix), fmt=fmt)
    write_frame(rejected, _part(folder, summary.chunk, suffix, rejected=True), fmt=fmt)
    # last: the chunk counts as committed once its summary is there
    _write_atomic(_part(folder, summary.chunk, ".json"), summary.model_dump_json().encode())
    return summary


def _join_parts(parts: list[Path], path: Path, *, fmt: str) -> None:
    """The parts, in order, as one file at `path` (replaced atomically)."""
    handle, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    os.close(handle)
    try:
        if fmt == "parquet":
            _join_parquet(parts, partial)
        else:
            with open(partial, "wb") as out:
                for number, part in enumerate(parts):
                    with part.open("rb") as fh:
                        if fmt == "csv" and number > 0:
                            fh.readline()  # every part has the header; the file has it once
                        shutil.copyfileobj(fh, out, 1 << 20)
        os.replace(partial, path)
    finally:
        Path(partial).unlink(missing_ok=True)


def _join_parquet(parts: list[Path], partial: str) -> None:
    """Row groups of every part under one schema: a column all null in one chunk (null type)
    takes the type the others give it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sizes = [pq.ParquetFile(p).metadata.num_rows for p in parts]
    # an empty part's columns say little of their type (pandas made them float or null)
    typed = [p for p, n in zip(parts, sizes, strict=True) if n] or parts[:1]
    schemas = [pq.read_schema(p).remove_metadata() for p in typed]
    schema = pa.unify_schemas(schemas, promote_options="permissive")
    with pq.ParquetWriter(partial, schema) as writer:
        for part, size in zip(parts, sizes, strict=True):
            if not size and part not in typed:
                continue
            table = pq.read_table(part).replace_schema_metadata(None)
            table = table.select([n for n in schema.names if n in table.column_names])
            for name in schema.names:
                if name not in table.column_names:
                    table = table.append_column(name, pa.nulls(len(table), schema.field(name).type))
            writer.write_table(table.select(schema.names).cast(schema))


def _finish_files(
    plan: InferencePlan, job: InferenceJob, summaries: list[ChunkSummary]
) -> dict[str, int]:
    folder = parts_folder(plan)
    target = Path(plan.target.predictions)
    suffix = target.suffix.lower()
    fmt = OUTPUT_FORMATS[suffix]
    chunks = sorted(s.chunk for s in summaries)
    _join_parts([_part(folder, c, suffix) for c in chunks], target, fmt=fmt)
    _join_parts([_part(folder, c, suffix, rejected=True) for c in chunks],
                Path(plan.target.rejected), fmt=fmt)  # fmt: skip
    _unlock(folder)
    shutil.rmtree(folder, ignore_errors=True)
    return {
        plan.target.predictions: sum(s.rows_scored for s in summaries),
        plan.target.rejected: sum(s.rows_rejected for s in summaries),
    }


# --------------------------------------------------------------------------------- tables


def _progress_meta(plan: InferencePlan) -> Any:
    import sqlalchemy as sa

    schema, table = split_table(progress_table(plan))
    meta = sa.MetaData(schema=schema)
    return sa.Table(
        table, meta,
        sa.Column("job", sa.String(40), primary_key=True),
        sa.Column("chunk", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("input_key", sa.String(64), nullable=False, index=True),
        sa.Column("rows_read", sa.Integer, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("committed_at", sa.DateTime(timezone=True), nullable=False),
    )  # fmt: skip


class _Database:
    """One engine for a task's statements, with the errors a user can act on."""

    def __init__(self, plan: InferencePlan) -> None:
        self.plan = plan
        self.engine = build_engine(plan.source)

    def __enter__(self) -> Any:
        return self.engine

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        self.engine.dispose()
        import sqlalchemy as sa

        if isinstance(exc, sa.exc.OperationalError):
            raise SourceUnavailableError(
                f"database {self.plan.shown_source} unavailable: {exc.orig}"
            ) from None
        if isinstance(exc, sa.exc.DBAPIError) and not isinstance(exc, sa.exc.IntegrityError):
            raise DataSourceError(
                f"writing predictions to {self.plan.shown_source} failed: {exc.orig}. "
                "This chunk was not written (its transaction rolled back)."
            ) from None


def _open_table_job(
    plan: InferencePlan, key: str, *, chunk_rows: int, resume: bool
) -> tuple[InferenceJob, str]:
    """The unfinished job of `key`, or a new one noted at once (its STARTED row): a second run
    started meanwhile joins it instead of scoring the rows again. On PostgreSQL a transaction
    lock on the key makes the look and the note one step."""
    import sqlalchemy as sa

    progress = _progress_meta(plan)
    with _Database(plan) as engine:
        try:
            progress.metadata.create_all(engine, checkfirst=True)
        except sa.exc.DBAPIError:  # created by a run beside this one meanwhile
            progress.metadata.create_all(engine, checkfirst=True)
        with engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                connection.execute(
                    sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key}
                )
            finished = sa.select(progress.c.job).where(progress.c.chunk == FINISHED)
            query = (
                sa.select(progress.c.job, progress.c.chunk, progress.c.summary)
                .where(progress.c.input_key == key, progress.c.job.not_in(finished))
                .order_by(progress.c.committed_at.desc())
            )
            rows = connection.execute(query).all() if resume else []
            if not rows:
                job = _new_job(key, chunk_rows)
                connection.execute(progress.insert().values(
                    job=job.job, chunk=STARTED, input_key=key, rows_read=0, summary="{}",
                    committed_at=datetime.now(UTC),
                ))  # fmt: skip
                off = " (inference.resume is off)" if not resume else ""
                return job, _described(job, progress_table(plan)) + off
    latest = rows[0][0]
    done = {
        s.chunk: s
        for s in (
            ChunkSummary.model_validate_json(r[2]) for r in rows if r[0] == latest and r[1] >= 0
        )
    }
    versions = {s.model_version for s in done.values()}
    job = InferenceJob(job=latest, input_key=key, chunk_rows=chunk_rows,
                       model_version=min(versions) if versions else None, done=done,
                       resumed=True)  # fmt: skip
    return job, _described(job, f"table {progress_table(plan)}")


def _check_columns(inspector: Any, name: str, frame: pd.DataFrame) -> None:
    schema, table = split_table(name)
    if inspector.has_table(table, schema=schema):
        have = {c["name"] for c in inspector.get_columns(table, schema=schema)}
        extra = [c for c in frame.columns if c not in have]
        if extra:
            raise DataSourceError(
                f"output table {name!r} exists without column(s) {extra} (a model with other "
                "labels, or another id column?): set inference.output to a new table, or add "
                "the columns."
            )


def _commit_table_chunk(
    plan: InferencePlan, *, job: str, input_key: str, predictions: pd.DataFrame, rejected: pd.DataFrame,
    summary: ChunkSummary,
) -> ChunkSummary:  # fmt: skip
    import sqlalchemy as sa

    progress = _progress_meta(plan)
    frames = {plan.target.predictions: predictions, plan.target.rejected: rejected}
    for attempt in range(3):
        try:
            with _Database(plan) as engine, engine.begin() as connection:
                # the mark first: a chunk another run committed fails here, before any row
                connection.execute(progress.insert().values(
                    job=job, chunk=summary.chunk, input_key=input_key,
                    rows_read=summary.rows_read, summary=summary.model_dump_json(),
                    committed_at=datetime.now(UTC),
                ))  # fmt: skip
                inspector = sa.inspect(connection)
                for name, frame in frames.items():
                    _check_columns(inspector, name, frame)
                    # the rejected table exists even when no row was rejected, as the
                    # `.rejected` file of a file output does: "none rejected" is readable,
                    # not told apart from "never written"
                    if len(frame) or name == plan.target.rejected:
                        schema, table = split_table(name)
                        frame.to_sql(table, connection, schema=schema, if_exists="append",
                                     index=False, chunksize=1000)  # fmt: skip
            return summary
        except sa.exc.IntegrityError:
            committed = _table_summary(plan, job, summary.chunk)
            if committed is not None:  # committed by a run beside this one: keep its rows
                return committed
            if attempt == 2:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _table_summary(plan: InferencePlan, job: str, chunk: int) -> ChunkSummary | None:
    import sqlalchemy as sa

    progress = _progress_meta(plan)
    with _Database(plan) as engine, engine.connect() as connection:
        found = connection.execute(
            sa.select(progress.c.summary).where(progress.c.job == job, progress.c.chunk == chunk)
        ).scalar()
    return None if found is None else ChunkSummary.model_validate_json(found)


def _finish_table(
    plan: InferencePlan, job: InferenceJob, summaries: list[ChunkSummary]
) -> dict[str, int]:
    import sqlalchemy as sa

    progress = _progress_meta(plan)
    try:
        with _Database(plan) as engine, engine.begin() as connection:
            connection.execute(progress.insert().values(
                job=job.job, chunk=FINISHED, input_key=job.input_key, rows_read=0,
                summary="{}", committed_at=datetime.now(UTC),
            ))  # fmt: skip
    except sa.exc.IntegrityError:
        pass  # a run beside this one finished the same job
    return {
        plan.target.predictions: sum(s.rows_scored for s in summaries),
        plan.target.rejected: sum(s.rows_rejected for s in summaries),
    }


# ------------------------------------------------------------------------------- both


def commit_chunk(
    plan: InferencePlan, *, job: str, input_key: str, predictions: pd.DataFrame, rejected: pd.DataFrame,
    summary: ChunkSummary,
) -> ChunkSummary:  # fmt: skip
    """Commit one chunk's rows and counts (see the module's docstring); the counts committed."""
    if plan.target.kind == "file":
        return _commit_file_chunk(plan, predictions=predictions, rejected=rejected, summary=summary)
    return _commit_table_chunk(
        plan,
        job=job,
        input_key=input_key,
        predictions=predictions,
        rejected=rejected,
        summary=summary,
    )


def finish_job(
    plan: InferencePlan, job: InferenceJob, summaries: list[ChunkSummary]
) -> dict[str, int]:
    """The job complete: files joined into the output, a table job marked finished; rows
    written per location (this attempt's and earlier attempts' chunks together)."""
    if plan.target.kind == "file":
        return _finish_files(plan, job, summaries)
    return _finish_table(plan, job, summaries)


def release(plan: InferencePlan) -> None:
    """Let go of the output's lock. A failed run's committed parts stay for the rerun to
    resume; a folder with none (a run that failed before scoring) goes."""
    if plan.target.kind == "file":
        folder = parts_folder(plan)
        if folder.is_dir() and not any(folder.glob("chunk-*.json")):
            shutil.rmtree(folder, ignore_errors=True)
        _unlock(folder)
