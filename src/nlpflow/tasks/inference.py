"""Prefect tasks of batch inference: each calls one step of `nlpflow.serving.batch`.

Reading, loading and writing retry (I/O; writes are atomic, so a retry never doubles rows);
validation and scoring do not. User errors are never retried (see `nlpflow_task`).
"""

from __future__ import annotations

import pandas as pd
from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact

from nlpflow.config.params import Params
from nlpflow.config.settings import Settings
from nlpflow.serving import batch as lib
from nlpflow.tasks.stages import nlpflow_task
from nlpflow.tracking.refs import ModelRef, resolve_model
from nlpflow.tracking.tracker import Tracker


@nlpflow_task("plan-inference", retries=0)
def plan(params: Params, settings: Settings) -> lib.InferencePlan:
    """What the run will read, score and write: bad params fail here, before anything loads."""
    return lib.plan_inference(params, settings)


@nlpflow_task("load-model", retries=2)
def load_model(settings: Settings, plan: lib.InferencePlan) -> lib.LoadedModel:
    """Resolve the alias to one version now, and load that version."""
    tracker = Tracker(settings)
    ref = resolve_model(
        tracker, plan.model_name, alias=plan.model_alias, option="inference.model_alias"
    )
    model = lib.load_version(tracker, ref, max_chars=plan.max_chars, max_batch=plan.max_batch)
    get_run_logger().info(
        "model %s: %r is version %d (max_chars %d, max_batch %d)",
        ref.name, plan.model_alias, ref.version, model.max_chars, model.max_batch,
    )  # fmt: skip
    return model


@nlpflow_task("start-inference-tracking", retries=2)
def start_tracking(
    settings: Settings, plan: lib.InferencePlan, ref: ModelRef, params: Params
) -> str:
    from prefect.runtime import flow_run

    tags = {"prefect.flow_run_id": str(flow_run.id)}
    return lib.start_inference_run(Tracker(settings), plan, ref, params, tags=tags)


@nlpflow_task("end-inference-tracking", retries=2)
def end_tracking(settings: Settings, run_id: str, failed: bool) -> None:
    Tracker(settings).end_run(run_id, "FAILED" if failed else "FINISHED")


@nlpflow_task("read-rows", retries=2)
def read_rows(plan: lib.InferencePlan) -> pd.DataFrame:
    frame = lib.read_rows(plan)
    get_run_logger().info("read %d rows from %s", len(frame), plan.shown_source)
    return frame


@nlpflow_task("validate-rows", retries=0)
def validate_rows(
    frame: pd.DataFrame, plan: lib.InferencePlan, model: lib.LoadedModel
) -> lib.CheckedRows:
    checked = lib.validate_rows(
        frame, text_column=plan.text_column, id_column=plan.id_column,
        max_chars=model.max_chars, on_invalid=plan.on_invalid,
    )  # fmt: skip
    logger = get_run_logger()
    logger.info("%d rows valid, %d rejected", len(checked.valid), len(checked.rejected))
    for check, rows in checked.failed.items():
        logger.warning("%d rows break %s: left out, see %s", rows, check, plan.target.rejected)
    return checked


@nlpflow_task("score-rows", retries=0)
def score_rows(
    checked: lib.CheckedRows, plan: lib.InferencePlan, model: lib.LoadedModel, run_id: str
) -> pd.DataFrame:
    scores = lib.score_rows(
        model, checked.valid, text_column=plan.text_column, batch_size=plan.batch_size
    )
    get_run_logger().info("scored %d rows with %s", len(scores), model.ref.uri)
    return lib.build_predictions(
        checked.valid, scores, id_column=plan.id_column, ref=model.ref,
        scored_at=plan.scored_at, run_id=run_id,
    )  # fmt: skip


@nlpflow_task("write-predictions", retries=2)
def write_outputs(
    plan: lib.InferencePlan,
    predictions: pd.DataFrame,
    checked: lib.CheckedRows,
    model: lib.LoadedModel,
    run_id: str,
) -> dict[str, int]:
    rejected = lib.rejected_rows(checked, ref=model.ref, scored_at=plan.scored_at, run_id=run_id)
    written = lib.write_outputs(plan, predictions, rejected)
    for where, rows in written.items():
        get_run_logger().info("wrote %d rows to %s", rows, where)
    return written


@nlpflow_task("report-inference", retries=2)
def report(
    settings: Settings,
    plan: lib.InferencePlan,
    model: lib.LoadedModel,
    checked: lib.CheckedRows,
    predictions: pd.DataFrame,
    run_id: str,
) -> lib.InferenceReport:
    """Counts to the run log, a Prefect artifact and the MLflow run."""
    result = lib.build_report(plan, model, checked, predictions, run_id=run_id)
    get_run_logger().info(
        "rows read %d, valid %d, rejected %d, scored %d; labels %s",
        result.rows_read, result.rows_valid, result.rows_rejected, result.rows_scored,
        result.labels,
    )  # fmt: skip
    create_markdown_artifact(lib.report_markdown(result), key="nlpflow-inference")
    lib.log_report(Tracker(settings), result)
    return result
