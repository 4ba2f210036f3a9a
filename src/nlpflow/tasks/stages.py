"""One Prefect task per row of nlpflow's stage table, plus the MLflow run's start and end.

Each stage task calls `nlpflow.pipeline.stages.run_stage`, the same function `nlpflow stage NAME` (and so
`dvc repro`) calls; `record_in_dvc` then writes the run's stages into dvc.lock with one
`dvc commit`. Only I/O stages retry.

Stage tasks are cached (`StageCache`): the key is the stage's name, the content of what it
reads, its own params sections and its own code, the files dvc.yaml lists for it
(nlpflow.pipeline.fingerprint.stage_key). The
cached value is a `StageResult`: the report, the fingerprints of the outputs it wrote and the
MLflow run that wrote them, so the flow can tell a hit from a run and check that the outputs
on disk are still the ones cached (another run with other params may have overwritten them).
It is stored as JSON and read back without unpickling anything (tasks.stage_results).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar, cast

from prefect import Task, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE, CachePolicy
from prefect.context import TaskRunContext

from nlpflow.errors import NlpflowError, disk_full
from nlpflow.pipeline.fingerprint import hash_outputs, stage_key
from nlpflow.pipeline.runs import (
    close_run,
    dvc_stages_recorded,
    open_run,
    record_dvc_stage,
    remember_dvc_stages,
)
from nlpflow.pipeline.stages import STAGES, Stage, StageContext, get_stage, run_stage
from nlpflow.tasks.artifacts import report_markdown
from nlpflow.tasks.stage_results import (
    StageResult,
    StageResultSerializer,
    discard_foreign_record,
)

P = ParamSpec("P")
R = TypeVar("R")


def retry_unless_user_error(task: Any, task_run: Any, state: Any) -> bool:
    """Retry transient I/O failures, not problems the user must fix (they fail the same way)."""
    error = state.data
    return not isinstance(error, NlpflowError) or error.retryable


def nlpflow_task(name: str, *, retries: int) -> Callable[[Callable[P, R]], Task[P, R]]:
    """Prefect's task decorator as every nlpflow task uses it: retries (with backoff) where a
    rerun can succeed, never for user errors, and no result caching or persistence (tracking
    clients and paths are no cache keys)."""

    def decorate(fn: Callable[P, R]) -> Task[P, R]:
        @functools.wraps(fn)
        def body(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # a full disk is the user's to fix: a message, no traceback
                full = disk_full(exc, doing=name)
                if full is None:
                    raise
                raise full from None

        return make(body)

    make = task(
        name=name,
        retries=retries,
        retry_delay_seconds=[2, 10],
        retry_condition_fn=retry_unless_user_error,
        cache_policy=NO_CACHE,
        persist_result=False,
    )
    return decorate


def unless_stopped(fn: Task[P, R]) -> Callable[P, R]:
    """The task, or its plain function once a stop signal arrived: a stopped process closes
    its MLflow run within its few seconds without a round trip to the Prefect API, whose
    temporary server the same signal (sent to the process group) is stopping; a task run
    there could wait on retries past the deadline and leave the MLflow run RUNNING."""
    from nlpflow.shutdown import stopped_by

    return fn.fn if stopped_by() is not None else cast(Callable[P, R], fn)


@dataclass
class StageCache(CachePolicy):
    """Key = nlpflow.pipeline.fingerprint.stage_key: stage name, input content, params sections,
    the stage's own code.

    Prefect's INPUTS policy would hash the task's arguments (a context object holding a
    tracking client) and share entries between tasks given the same arguments; this one keys
    on what the stage reads, and on the stage itself.
    """

    stage: str = field(default="")
    storage: str = field(default="")  # where the results live (cache_storage)

    def compute_key(
        self,
        task_ctx: TaskRunContext,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        key = stage_key(get_stage(self.stage), inputs["ctx"])
        if key is not None and self.storage:  # Prefect looks the key up next: never a pickle
            discard_foreign_record(Path(self.storage) / key)
        return key


def cache_storage(root: Path) -> Path:
    """Cached stage results live in the project (`make clean` drops them with the outputs)."""
    return root / ".nlpflow" / "cache" / "prefect"


def _stage_task(stage: Stage) -> Task[..., Any]:
    def body(ctx: StageContext, run_id: str) -> StageResult:
        ctx.run_id = run_id
        started = time.perf_counter()
        report = run_stage(stage.name, ctx)
        seconds = time.perf_counter() - started
        # Prefect artifact keys allow lowercase letters, digits and dashes only (train_params)
        key = f"nlpflow-{stage.name.replace('_', '-')}"
        create_markdown_artifact(report_markdown(stage.name, report), key=key)
        outputs = hash_outputs(stage, ctx.root)
        return StageResult(report, outputs, run_id, stage_key(stage, ctx), seconds)

    body.__name__ = stage.name
    return nlpflow_task(stage.name, retries=stage.retries)(body)


def cached_stage_task(name: str, root: Path, *, tags: set[str] | None = None) -> Task[..., Any]:
    """The stage's task with its cache on: results persisted under the project."""
    return STAGE_TASKS[name].with_options(
        cache_policy=StageCache(stage=name, storage=str(cache_storage(root))),
        persist_result=True,
        # JSON, read back only if nlpflow wrote it: never a pickle (tasks.stage_results)
        result_serializer=StageResultSerializer(),
        result_storage=cache_storage(root),  # a Path: a local folder, no block to register
        tags=tags,
    )


STAGE_TASKS: dict[str, Task[..., Any]] = {stage.name: _stage_task(stage) for stage in STAGES}


def wants_gpu(ctx: StageContext) -> bool:
    """Whether training will take a GPU: the task of a stage marked `gpu` in the stage table
    then carries the `gpu` tag, whose concurrency limit (nlpflow deploy --gpu-slots) caps the
    trainings sharing the GPUs. Decided without importing torch (seconds), from the device
    param and the NVIDIA driver's device node."""
    from nlpflow.config.params import FAMILIES

    train = ctx.params.train
    if not FAMILIES[train.family].on_device or train.device == "cpu":
        return False
    return train.device == "cuda" or Path("/dev/nvidiactl").exists()


def run_stage_cached(
    name: str, ctx: StageContext, run_id: str, *, refresh: bool = False
) -> StageResult:
    """Run one stage's task, or reuse its cached result when its outputs are still on disk
    (`refresh`: always run, and replace the cached result)."""
    tags = {"gpu"} if get_stage(name).gpu and wants_gpu(ctx) else None
    stage_task = cached_stage_task(name, ctx.root, tags=tags)
    if refresh:
        stage_task = stage_task.with_options(refresh_cache=True)
    result = cast(StageResult, stage_task(ctx, run_id))
    if result.run_id == run_id:  # ran now
        return result
    if result.outputs != hash_outputs(get_stage(name), ctx.root):
        print(f"{name}: its cached outputs were changed on disk since (another run?); re-running")
        return cast(StageResult, stage_task.with_options(refresh_cache=True)(ctx, run_id))
    print(f"{name}: cache hit (outputs of MLflow run {result.run_id})")
    return result


@nlpflow_task("record-in-dvc", retries=0)
def record_in_dvc(ctx: StageContext, keys: dict[str, str | None], ran: list[str]) -> list[str]:
    """`dvc commit` the stages that ran, and the reused ones dvc.lock does not describe yet,
    in one DVC process (one per stage costs seconds each); returns the stages committed."""
    from nlpflow.tracking.tracker import dvc_hash_tags

    recorded = dvc_stages_recorded(ctx.root, keys)
    names = [name for name in keys if name in ran or name not in recorded]
    if names:
        record_dvc_stage(ctx.root, *names)
        remember_dvc_stages(ctx.root, {name: keys[name] for name in names})
    if ctx.tracker is not None and ctx.run_id is not None:  # the hashes this run recorded
        ctx.tracker.set_tags(ctx.run_id, dvc_hash_tags(ctx.root))
    return names


@nlpflow_task("start-tracking", retries=2)
def start_tracking(ctx: StageContext) -> str:
    from prefect.runtime import flow_run

    return open_run(ctx, runner="prefect", tags={"prefect.flow_run_id": str(flow_run.id)})


@nlpflow_task("end-tracking", retries=2)
def end_tracking(ctx: StageContext, run_id: str, failed: bool) -> None:
    ctx.run_id = run_id
    close_run(ctx, failed=failed)
