"""Prefect tasks of the sweep (flows/sweep.py): its MLflow run, the data stages, one task per
trial, the summary; and the task runner that `sweep.runner` names.

    nlpflow sweep [--set sweep.runner=processes]
"""

from __future__ import annotations

import os
from typing import Any

from prefect import Task
from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner
from pydantic import BaseModel

from nlpflow.config.params import SweepParams
from nlpflow.errors import ParamsError
from nlpflow.pipeline.stages import STAGES, StageContext, get_stage, run_stage
from nlpflow.tasks.stages import nlpflow_task
from nlpflow.training.sweep import (
    StudyRef,
    SweepReport,
    TrialJob,
    TrialReport,
    finish_sweep,
    open_sweep_run,
    run_trial,
    snapshot_data,
)

# the data stages (Stage.prepares), run once per sweep before its trials train
PREPARE = tuple(stage.name for stage in STAGES if stage.prepares)
# Where dask and ray runners find their cluster; unset, each starts a local one.
CLUSTER_ADDRESS = "NLPFLOW_SWEEP_ADDRESS"


@nlpflow_task("open-sweep", retries=2)
def open_sweep(ctx: StageContext, study: str) -> str:
    from prefect.runtime import flow_run

    tags = {"prefect.flow_run_id": str(flow_run.id)}
    ctx.run_id = open_sweep_run(ctx.tracker, ctx.params, root=ctx.root, study=study, tags=tags)
    return ctx.run_id


def _prepare_task(name: str) -> Task[..., Any]:
    # run_stage, as the training flow's tasks and `nlpflow stage` call it; logged to the
    # sweep's run. dvc.lock is left alone: it records the pipeline's runs, not sweeps.
    def body(ctx: StageContext, run_id: str) -> BaseModel:
        ctx.run_id = run_id
        return run_stage(name, ctx)

    body.__name__ = name
    return nlpflow_task(name, retries=get_stage(name).retries)(body)


PREPARE_TASKS = {name: _prepare_task(name) for name in PREPARE}


@nlpflow_task("snapshot-data", retries=0)
def snapshot_task(ctx: StageContext, ref: StudyRef) -> str:
    return str(snapshot_data(ctx.root, ref))


@nlpflow_task("trial", retries=0)  # a retry would be a new trial: Optuna has told its end
def trial_task(job: TrialJob) -> TrialReport:
    return run_trial(job)


@nlpflow_task("finish-sweep", retries=2)
def finish_task(
    ctx: StageContext, ref: StudyRef, run_id: str, reports: list[TrialReport], started: float
) -> SweepReport:
    return finish_sweep(ref, tracker=ctx.tracker, run_id=run_id, reports=reports, started=started)


def build_task_runner(sweep: SweepParams) -> TaskRunner[Any]:
    """Threads or processes of this machine, or a Dask or Ray cluster (optional extras,
    imported only when chosen)."""
    workers = sweep.parallelism
    if sweep.runner == "threads":
        return ThreadPoolTaskRunner(max_workers=workers)
    if sweep.runner == "processes":
        return ProcessPoolTaskRunner(max_workers=workers)
    address = os.environ.get(CLUSTER_ADDRESS) or None
    if sweep.runner == "dask":
        dask = _extra("prefect_dask", "dask")
        if address:
            return dask.DaskTaskRunner(address=address)
        return dask.DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1})
    ray = _extra("prefect_ray", "ray")
    return ray.RayTaskRunner(address=address)


def _extra(module: str, extra: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ParamsError(
            f"sweep.runner: {extra} needs {module.replace('_', '-')}, which is not installed: "
            f'pip install "nlpflow[{extra}]" (or choose sweep.runner: threads or processes)'
        ) from None
