"""Prefect tasks of the sweep (flows/sweep.py): its MLflow run, the data stages, one task per
trial, the summary; and where `sweep.runner` runs the trials.

    nlpflow sweep [--set sweep.runner=processes]
    NLPFLOW_ENGINE=dask://scheduler:8786 nlpflow sweep --set sweep.runner=engine
"""

from __future__ import annotations

import dataclasses
from typing import Any

from prefect import Task
from prefect.task_runners import TaskRunner
from pydantic import BaseModel

from nlpflow.config.engine import EXTRAS, Engine
from nlpflow.config.params import Params, SweepParams
from nlpflow.config.settings import Settings
from nlpflow.pipeline.paths import PROCESSED
from nlpflow.pipeline.stages import STAGES, StageContext, get_stage, run_stage
from nlpflow.pipeline.sweep_runs import open_sweep_run, run_trial
from nlpflow.tasks.engine import engine_task_runner, extra_module, thread_task_runner
from nlpflow.tasks.stages import nlpflow_task
from nlpflow.training.sweep import (
    StudyRef,
    SweepReport,
    TrialJob,
    TrialReport,
    ask_trial,
    check_sweep,
    experiment_name,
    finish_sweep,
    new_study_name,
    open_study,
    snapshot_data,
)

# the data stages (Stage.prepares), run once per sweep before its trials train
PREPARE = tuple(stage.name for stage in STAGES if stage.prepares)


def sweep_context(settings: Settings, params: Params) -> tuple[StageContext, StudyRef]:
    """The sweep's context and study; what params validation alone cannot see fails here,
    before any run is opened (not a task: nothing is read or written)."""
    from nlpflow.pipeline.runs import make_context

    check_sweep(params, settings.root)
    trial_engine(params.sweep, settings)  # a missing extra fails here, not after preparing
    ctx = make_context(settings.root, params, settings)
    name = params.sweep.study or new_study_name()
    return ctx, StudyRef(root=settings.root, name=name, sweep=params.sweep)


@nlpflow_task("open-sweep", retries=2)
def open_sweep(ctx: StageContext, study: str) -> str:
    from prefect.runtime import flow_run

    tags = {"prefect.flow_run_id": str(flow_run.id)}
    ctx.run_id = open_sweep_run(ctx.tracked(), ctx.params, root=ctx.root, study=study, tags=tags)
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
    return str(snapshot_data(ctx.path(PROCESSED), ref))


@nlpflow_task("open-study", retries=0)
def open_study_task(ref: StudyRef) -> Any:
    """The Optuna study (created, or loaded: an existing name continues). One per sweep: its
    sampler's state carries from one ask to the next."""
    return open_study(ref)


@nlpflow_task("ask-trial", retries=0)  # a retried ask would leave a trial Optuna never hears of
def ask_task(study: Any, sweep: SweepParams) -> tuple[int, int, dict[str, Any]]:
    """The next trial's (number, storage id, values), sampled from sweep.space."""
    return ask_trial(study, sweep)


def trial_job(
    ctx: StageContext, ref: StudyRef, run_id: str, *, number: int, trial_id: int,
    values: dict[str, Any],
) -> TrialJob:  # fmt: skip
    """What one trial task needs: its values, the sweep's params and settings, its parent run."""
    return TrialJob(
        ref=ref, params=ctx.params, settings=ctx.settings, parent_run_id=run_id,
        experiment=experiment_name(ctx.params), number=number, trial_id=trial_id, values=values,
    )  # fmt: skip


@nlpflow_task("trial", retries=0)  # a retry would be a new trial: Optuna has told its end
def trial_task(job: TrialJob) -> TrialReport:
    return run_trial(job)


@nlpflow_task("finish-sweep", retries=2)
def finish_task(
    ctx: StageContext, ref: StudyRef, run_id: str, reports: list[TrialReport], started: float
) -> SweepReport:
    return finish_sweep(ref, tracker=ctx.tracked(), run_id=run_id, reports=reports, started=started)


def trial_engine(sweep: SweepParams, settings: Settings) -> Engine | None:
    """Where a sweep's trials run (None: threads of this process). `engine` is the
    NLPFLOW_ENGINE setting; `dask`/`ray` take that engine's address from NLPFLOW_ENGINE when it
    names one, else from NLPFLOW_SWEEP_ADDRESS (the older setting), else start a local
    cluster. What starts here has sweep.parallelism workers (NLPFLOW_WORKERS is for other
    work). A ParamsError where the engine's extra is missing."""
    workers = sweep.parallelism
    if sweep.runner == "threads":
        return None
    if sweep.runner == "processes":
        return Engine("processes", None, workers)
    configured = settings.resolved_engine
    if sweep.runner == "engine" or (configured.kind == sweep.runner and configured.address):
        # sweep.parallelism trials are in flight: as many workers as that, not NLPFLOW_WORKERS
        engine = dataclasses.replace(configured, workers=workers)
    else:  # passed to the runner as given, as before NLPFLOW_ENGINE (tcp://, ray://, auto)
        engine = Engine(sweep.runner, (settings.sweep_address or "").strip() or None, workers)
    if engine.kind in EXTRAS:
        extra_module(engine.kind)  # before any run is opened: the message says what to install
    return engine


def trial_slots(sweep: SweepParams, engine: Engine | None) -> int:
    """Trials in flight at once: the local engine trains one at a time, in this process (what
    NLPFLOW_ENGINE=local means for every kind of parallel work)."""
    return 1 if engine is not None and engine.kind == "local" else sweep.parallelism


def build_task_runner(sweep: SweepParams, engine: Engine | None) -> TaskRunner[Any]:
    """The trials' task runner: threads, or the engine's runner with sweep.parallelism
    workers where it starts them (nlpflow.tasks.engine builds every runner)."""
    if engine is None:
        return thread_task_runner(sweep.parallelism)
    return engine_task_runner(engine, workers=sweep.parallelism)


def describe_trial_engine(sweep: SweepParams, engine: Engine | None) -> str:
    if engine is None:
        return f"threads ({sweep.parallelism} of this process)"
    if engine.kind == "local":
        return "local (this process, one trial at a time)"
    return engine.describe()
