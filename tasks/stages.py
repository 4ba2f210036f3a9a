"""One Prefect task per row of nlpflow's stage table, plus the MLflow run's start and end.

Each stage task calls `nlpflow.stages.run_stage`, the same function `nlpflow stage NAME` (and so
`dvc repro`) calls, then records the stage in dvc.lock. Only I/O stages retry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from prefect import Task, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from nlpflow.errors import NlpflowError
from nlpflow.pipeline import close_run, open_run, record_dvc_stage
from nlpflow.stages import STAGES, Stage, StageContext, run_stage

P = ParamSpec("P")
R = TypeVar("R")


def _summary(name: str, report: BaseModel) -> str:
    fields = report.model_dump(mode="json")
    rows = "\n".join(f"| {k} | {str(v)[:200]} |" for k, v in fields.items() if k != "history")
    return f"## {name}\n\n| field | value |\n|---|---|\n{rows}\n"


def retry_unless_user_error(task: Any, task_run: Any, state: Any) -> bool:
    """Retry transient I/O failures, not problems the user must fix (they fail the same way)."""
    error = state.data
    return not isinstance(error, NlpflowError) or error.retryable


def nlpflow_task(name: str, *, retries: int) -> Callable[[Callable[P, R]], Task[P, R]]:
    """Prefect's task decorator as every nlpflow task uses it: retries (with backoff) where a
    rerun can succeed, never for user errors, and no result caching or persistence (tracking
    clients and paths are no cache keys)."""
    return task(
        name=name,
        retries=retries,
        retry_delay_seconds=[2, 10],
        retry_condition_fn=retry_unless_user_error,
        cache_policy=NO_CACHE,
        persist_result=False,
    )


def _stage_task(stage: Stage) -> Task[..., Any]:
    def body(ctx: StageContext, run_id: str, record_dvc: bool) -> BaseModel:
        ctx.run_id = run_id
        report = run_stage(stage.name, ctx)
        if record_dvc:
            record_dvc_stage(ctx.root, stage.name)
        create_markdown_artifact(_summary(stage.name, report), key=f"nlpflow-{stage.name}")
        return report

    body.__name__ = stage.name
    return nlpflow_task(stage.name, retries=stage.retries)(body)


STAGE_TASKS: dict[str, Task[..., Any]] = {stage.name: _stage_task(stage) for stage in STAGES}


@nlpflow_task("start-tracking", retries=2)
def start_tracking(ctx: StageContext) -> str:
    from prefect.runtime import flow_run

    return open_run(ctx, runner="prefect", tags={"prefect.flow_run_id": str(flow_run.id)})


@nlpflow_task("end-tracking", retries=2)
def end_tracking(ctx: StageContext, run_id: str, failed: bool) -> None:
    ctx.run_id = run_id
    close_run(ctx, failed=failed)
