"""Prefect tasks that record in MLflow what a training flow run did: the model it trained or
reused, a skip when its data did not change, its outcome, and the withdrawal of a version it
registered before failing. The flow composes them (flows/training.py); each is one MLflow call
or a few, retried like any tracking I/O.

    reason = check_skip(ctx, run_id, snapshot=gathered.outputs["data/gathered"], force=False)
    kind = record_outcome(ctx, run_id, cached_by={"gather": "<run id>"}, trained_by=run_id)
"""

from __future__ import annotations

from typing import Any

from prefect.artifacts import create_markdown_artifact

from nlpflow.pipeline.context import MODEL_SHA256, StageContext
from nlpflow.pipeline.freshness import (
    OUTCOME,
    SKIP_REASON,
    run_fingerprints,
    run_kind,
    run_kind_tags,
    skip_reason,
    skipped_run_tags,
)
from nlpflow.tasks.stages import nlpflow_task


@nlpflow_task("experiment-id", retries=2)
def experiment_id(ctx: StageContext) -> str | None:
    """The MLflow experiment the run logs to (for links), None without tracking."""
    if ctx.tracker is None:
        return None
    found: str = ctx.tracker.experiment_id(ctx.params.register_.experiment)
    return found


@nlpflow_task("close-dead-runs", retries=2)
def close_dead_runs(ctx: StageContext) -> None:
    """Under the project's lock: the runs of this project whose process died end KILLED."""
    from nlpflow.pipeline.runs import close_dead_runs as close

    close(ctx)


@nlpflow_task("tag-model", retries=2)
def tag_model(ctx: StageContext, run_id: str, model_sha256: str) -> None:
    """The model this run trained or reused: register checks it uploads this very model."""
    ctx.tracked().set_tags(run_id, {MODEL_SHA256: model_sha256})


@nlpflow_task("check-skip", retries=2)
def check_skip(ctx: StageContext, run_id: str, *, snapshot: str, force: bool) -> str | None:
    """Tag the run with what it trains on; when that equals the last completed run's (and
    skipping is on), record the skip in MLflow and Prefect and say why."""
    tracker = ctx.tracked()
    fingerprints = run_fingerprints(ctx, snapshot)
    tracker.set_tags(run_id, fingerprints)
    if force or not ctx.params.schedule.skip_unchanged_data:
        return None
    reason = skip_reason(ctx, fingerprints)
    if reason is not None:
        tracker.set_tags(
            run_id, {OUTCOME: "skipped", SKIP_REASON: reason} | skipped_run_tags(ctx, reason)
        )
        create_markdown_artifact(f"## Skipped\n\n{reason}\n", key="nlpflow-skip")
        print(f"Skipped: {reason}")
    return reason


@nlpflow_task("record-outcome", retries=2)
def record_outcome(
    ctx: StageContext, run_id: str, *, cached_by: dict[str, str], trained_by: str
) -> str:
    """Tag the completed run with the stages it reused (and whose runs made them) and what it
    was (nlpflow.pipeline.freshness.run_kind); returns that kind."""
    cached = list(cached_by)
    kind = run_kind(run_id, cached=cached, trained_by=trained_by)
    ctx.tracked().set_tags(
        run_id,
        {OUTCOME: "completed", "nlpflow.cached_stages": ",".join(cached) or "none"}
        | {f"nlpflow.cached.{name}": by for name, by in cached_by.items()}
        | run_kind_tags(ctx, kind, trained_by=trained_by),
    )
    return kind


@nlpflow_task("withdraw-version", retries=2)
def withdraw_registration(ctx: StageContext, run_id: str, report: Any, error: str) -> None:
    """Undo this run's registration (nlpflow.release.registry.withdraw_version) before it fails."""
    from nlpflow.release.registry import withdraw_version

    if ctx.tracker is None or report.version is None:
        return
    print(f"withdrawing {report.model_name} version {report.version}: the run failed after "
          "registering it")  # fmt: skip
    withdraw_version(
        ctx.tracker, report.model_name, report.version, run_id=run_id,
        restore=report.aliases_before, reason=f"the run failed after register: {error}"[:400],
    )  # fmt: skip
