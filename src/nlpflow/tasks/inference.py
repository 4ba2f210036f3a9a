"""Prefect tasks of batch inference: each calls one step of `nlpflow.serving.batch`.

The input is read in chunks of `inference.chunk_rows` rows; each chunk is one `score-chunk`
task run, on the workers NLPFLOW_ENGINE names (this process, local processes, a Dask or Ray
cluster: nlpflow.tasks.engine), and commits its rows itself (nlpflow.serving.batch.progress).
At most two chunks per worker are read ahead: memory stays bounded whatever the input's size.

Resolving, loading and finishing retry (I/O; commits are idempotent, so a retry never doubles
rows); checks and scoring do not. User errors are never retried (see `nlpflow_task`).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from prefect import Task, get_run_logger
from prefect.artifacts import create_markdown_artifact

from nlpflow.config.engine import Engine, default_workers
from nlpflow.config.params import Params
from nlpflow.config.settings import Settings
from nlpflow.errors import DataValidationError, WorkerLostError
from nlpflow.serving import batch as lib
from nlpflow.serving.batch import chunks, progress
from nlpflow.tasks.engine import running
from nlpflow.tasks.stages import nlpflow_task
from nlpflow.tracking.refs import ModelRef, resolve_model
from nlpflow.tracking.tracker import Tracker


@nlpflow_task("plan-inference", retries=0)
def plan(params: Params, settings: Settings) -> lib.InferencePlan:
    """What the run will read, score and write: bad params fail here, before anything loads."""
    return lib.plan_inference(params, settings)


@nlpflow_task("open-inference-job", retries=2)
def open_job(plan: lib.InferencePlan, params: Params) -> progress.InferenceJob:
    """This input's unfinished job (resumed), or a new one."""
    job, found = progress.open_job(
        plan, chunk_rows=params.inference.chunk_rows, resume=params.inference.resume
    )
    get_run_logger().info(found)
    return job


@nlpflow_task("resolve-model", retries=2)
def resolve(settings: Settings, plan: lib.InferencePlan, job: progress.InferenceJob) -> ModelRef:
    """The alias resolved to one version now; a resumed job keeps the version it began with."""
    tracker = Tracker(settings)
    ref = resolve_model(
        tracker, plan.model_name, alias=plan.model_alias, option="inference.model_alias"
    )
    if job.model_version is not None and job.model_version != ref.version:
        get_run_logger().warning(
            "%r now names version %d; the resumed job goes on with version %d, which scored "
            "its first chunks (inference.resume=false starts over)",
            plan.model_alias, ref.version, job.model_version,
        )  # fmt: skip
        ref = ModelRef(ref.name, job.model_version, None)
    return ref


@nlpflow_task("describe-model", retries=2)
def describe(settings: Settings, ref: ModelRef, plan: lib.InferencePlan) -> chunks.ModelInfo:
    """Load the version (on a worker, which keeps it) and bring back its serving limits."""
    return chunks.describe_model(settings, ref, max_chars=plan.max_chars, max_batch=plan.max_batch)


@nlpflow_task("shape-input", retries=0)
def shape_input(plan: lib.InferencePlan, model: chunks.ModelInfo) -> lib.InferencePlan:
    """The rows shaped as the version's training data was (its recorded columns, fields
    joined, label rewriting), unless inference.text_column / inference.columns say otherwise."""
    shaped = plan.shaped(model.served_config)
    shape = shaped.input_shape
    get_run_logger().info(
        "text: %s%s", shape.describe(),
        f"; headerless columns [{', '.join(shape.columns)}]" if shape.columns else "",
    )  # fmt: skip
    return shaped


@nlpflow_task("start-inference-tracking", retries=2)
def start_tracking(
    settings: Settings, plan: lib.InferencePlan, ref: ModelRef, params: Params,
    job: progress.InferenceJob,
) -> str:  # fmt: skip
    """This attempt's MLflow run; the runs of the attempts it resumes, killed before they
    could close, are closed KILLED, naming it."""
    from prefect.runtime import flow_run

    from nlpflow.tracking.stale import close_stale_runs

    tracker = Tracker(settings)
    tags = {"prefect.flow_run_id": str(flow_run.id), "inference.job": job.job}
    run_id = lib.start_inference_run(tracker, plan, ref, params, tags=tags)
    earlier = {s.run_id for s in job.done.values()}
    if earlier:
        close_stale_runs(tracker, by=f"inference run {run_id}, which resumed it", only=earlier)
    return run_id


@nlpflow_task("end-inference-tracking", retries=2)
def end_tracking(settings: Settings, run_id: str, failed: bool) -> None:
    Tracker(settings).end_run(run_id, "FAILED" if failed else "FINISHED")


@nlpflow_task("check-ids", retries=2)
def check_ids(plan: lib.InferencePlan, chunk_rows: int) -> np.ndarray | None:
    """The ids repeated anywhere in the input (read once, the id column only): a repeated id
    is rejected in every chunk that holds it, as one check of the whole input would."""
    if plan.id_column is None:
        return None
    hashes = [
        lib.id_hashes(frame[plan.id_column])
        for frame in lib.iter_chunks(plan, rows=chunk_rows, columns=[plan.id_column])
        if plan.id_column in frame
    ]
    repeated = lib.repeated_ids(hashes)
    get_run_logger().info("ids: %d values repeated", len(repeated))
    return repeated


@nlpflow_task("check-rows", retries=0)
def check_rows(
    plan: lib.InferencePlan, model: chunks.ModelInfo, chunk_rows: int, repeated: np.ndarray | None
) -> None:
    """on_invalid=fail: every row checked before any is written; a DataValidationError naming
    the checks broken, with a few rows of each, when any row breaks one."""
    import pandas as pd

    rows, broken, examples = 0, 0, []
    failed: dict[str, int] = {}
    for frame in lib.iter_chunks(plan, rows=chunk_rows):
        checked = lib.validate_rows(
            lib.shape_rows(frame, plan.input_shape), text_column=plan.text_column, id_column=plan.id_column,
            max_chars=model.max_chars, on_invalid="skip", first_row=rows, repeated=repeated,
        )  # fmt: skip
        rows += checked.rows_read
        broken += len(checked.rejected)
        for key, value in checked.failed.items():
            failed[key] = failed.get(key, 0) + value
        if len(checked.rejected):
            examples.append(lib.invalid_examples(checked.rejected))
    if broken:
        _, row_checks = lib.build_row_checks(
            plan.text_column, plan.id_column, max_chars=model.max_chars
        )
        raise DataValidationError(
            lib.invalid_message(
                lib.invalid_examples(pd.concat(examples, ignore_index=True)), rows=rows,
                broken=broken, failed=failed, checks=row_checks, text_column=plan.text_column,
                id_column=plan.id_column,
            )  # fmt: skip
        )


@nlpflow_task("score-chunk", retries=2)  # its commit is idempotent: a retry never doubles rows
def score_chunk(job: chunks.ChunkJob) -> progress.ChunkSummary:
    return chunks.process_chunk(job)


@nlpflow_task("finish-outputs", retries=2)
def finish(
    plan: lib.InferencePlan, job: progress.InferenceJob, summaries: list[progress.ChunkSummary]
) -> dict[str, int]:
    written = progress.finish_job(plan, job, summaries)
    for where, rows in written.items():
        get_run_logger().info("wrote %d rows to %s", rows, where)
    return written


@nlpflow_task("report-inference", retries=2)
def report(
    settings: Settings,
    plan: lib.InferencePlan,
    model: chunks.ModelInfo,
    summaries: list[progress.ChunkSummary],
    run_id: str,
    resumed: int,
    seconds: float,
) -> lib.InferenceReport:
    """Counts to the run log, a Prefect artifact and the MLflow run."""
    result = lib.build_report(plan, model, summaries, run_id=run_id, resumed_chunks=resumed,
                              seconds=seconds)  # fmt: skip
    get_run_logger().info(
        "rows read %d, valid %d, rejected %d, scored %d in %d chunk(s) (%d resumed); labels %s",
        result.rows_read, result.rows_valid, result.rows_rejected, result.rows_scored,
        result.chunks, resumed, result.labels,
    )  # fmt: skip
    for check, rows in result.rejected_by_check.items():
        get_run_logger().warning("%d rows break %s: left out, see %s", rows, check,
                                 result.rejected_output)  # fmt: skip
    create_markdown_artifact(lib.report_markdown(result), key="nlpflow-inference")
    lib.log_report(Tracker(settings), result)
    return result


@nlpflow_task("release-output", retries=0)
def release(plan: lib.InferencePlan) -> None:
    progress.release(plan)


class Workers:
    """Where chunks run: this process (`local`), or a Prefect task runner's workers."""

    def __init__(self, engine: Engine, runner: Any | None, *, threads: int | None = None) -> None:
        self.engine, self.runner = engine, runner
        self.seconds = 0.0  # the scoring's wall time (score_all)
        # torch threads per worker process: NLPFLOW_WORKER_THREADS, else this machine's cores
        # shared out among the workers started here; a running cluster's workers are as the
        # cluster set them up (0: left alone)
        shared = 0 if engine.address else max(1, default_workers() // engine.workers)
        self.threads = threads or shared

    @property
    def slots(self) -> int:
        return self.engine.workers if self.runner is not None else 1

    def on_every_worker(self, task: Task[..., Any], **parameters: Any) -> Any:
        """Run `task` once per worker slot at the same time (each idle worker takes one: a
        model load, done before the first chunk instead of during it); the first's result."""
        futures = [self.submit(task, **parameters) for _ in range(self.slots)]
        return [f.result() for f in futures][0]

    def submit(self, task: Task[..., Any], **parameters: Any) -> Any:
        if self.runner is None:
            return _Done(task(**parameters))
        return self.runner.submit(task, parameters=parameters)


class _Done:
    def __init__(self, value: Any) -> None:
        self.value = value

    def result(self) -> Any:
        return self.value


@contextmanager
def workers(settings: Settings) -> Iterator[Workers]:
    engine = settings.resolved_engine
    if not engine.parallel:
        yield Workers(engine, None)
        return
    pool = Workers(engine, None, threads=settings.worker_threads)
    get_run_logger().info("chunks run on %s, %d torch thread(s) each", engine.describe(),
                          pool.threads)  # fmt: skip
    with running(engine) as runner:
        pool.runner = runner
        yield pool


def score_all(
    pool: Workers, *, plan: lib.InferencePlan, settings: Settings, model: chunks.ModelInfo,
    job: progress.InferenceJob, repeated: np.ndarray | None, run_id: str,
) -> list[progress.ChunkSummary]:  # fmt: skip
    """Every chunk not committed yet, scored on the workers; the summaries of all chunks (the
    job's earlier ones too), in input order. Chunks are read as workers free up: at most two
    per worker wait in memory."""
    logger = get_run_logger()
    started = time.perf_counter()
    done = dict(job.done)
    pending: deque[Any] = deque()
    first_row = 0
    for number, frame in enumerate(lib.iter_chunks(plan, rows=job.chunk_rows)):
        rows = len(frame)
        if number not in done:
            chunk = chunks.ChunkJob(
                plan=plan, settings=settings, model=model, job=job.job, input_key=job.input_key,
                chunk=number, first_row=first_row, frame=frame, repeated=repeated,
                run_id=run_id, scored_at=plan.scored_at,
                threads=pool.threads if pool.runner is not None else 0,
            )  # fmt: skip
            task = score_chunk.with_options(task_run_name=f"score-chunk-{number}")
            pending.append(pool.submit(task, job=chunk))
            # a table's first chunk creates its tables: alone, before others append
            if number == 0 and plan.target.kind == "table":
                _collect(pending.popleft(), done, logger)
        del frame
        first_row += rows
        while len(pending) >= 2 * pool.slots:
            _collect(pending.popleft(), done, logger)
    while pending:
        _collect(pending.popleft(), done, logger)
    pool.seconds = time.perf_counter() - started
    return [done[n] for n in sorted(done)]


def _collect(future: Any, done: dict[int, progress.ChunkSummary], logger: Any) -> None:
    from concurrent.futures.process import BrokenProcessPool

    try:
        summary = future.result()
    except BrokenProcessPool:
        raise WorkerLostError(
            f"a worker process died while scoring (killed, or out of memory); the "
            f"{len(done)} chunk(s) committed so far are kept: run the same command again to "
            "resume. If memory ran out, lower inference.chunk_rows or NLPFLOW_WORKERS."
        ) from None
    done[summary.chunk] = summary
    logger.info(
        "chunk %d: rows %d-%d, %d scored, %d rejected (%.1f s on %s)",
        summary.chunk, summary.first_row, summary.first_row + summary.rows_read - 1,
        summary.rows_scored, summary.rows_rejected, summary.seconds, summary.worker,
    )  # fmt: skip
