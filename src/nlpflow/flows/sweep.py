"""The sweep flow: gather -> validate -> preprocess once, then an Optuna study whose trials train
in parallel tasks, each a nested MLflow run; the best trial's values go to `sweep.output`.

nlpflow sweep                                   # runs this flow with params.yaml `sweep`
nlpflow sweep --set sweep.n_trials=8 --set sweep.parallelism=4
NLPFLOW_ENGINE=dask://scheduler:8786 nlpflow sweep --set sweep.runner=engine   # on a cluster
nlpflow run --config reports/sweep/best_params.yaml   # then train with the best values
"""

from __future__ import annotations

import time
from typing import Any

from prefect import flow
from prefect.futures import PrefectFuture, as_completed
from prefect.task_runners import TaskRunner

from nlpflow.config.engine import Engine
from nlpflow.config.params import SweepParams
from nlpflow.pipeline.stages import StageContext
from nlpflow.tasks.engine import dashboard_line, dashboard_url, started
from nlpflow.tasks.prologue import flow_prologue, holding_project
from nlpflow.tasks.stages import end_tracking, unless_stopped, wants_gpu
from nlpflow.tasks.sweep import (
    PREPARE,
    PREPARE_TASKS,
    StudyRef,
    TrialReport,
    ask_task,
    build_task_runner,
    describe_trial_engine,
    finish_task,
    open_study_task,
    open_sweep,
    snapshot_task,
    sweep_context,
    trial_engine,
    trial_job,
    trial_slots,
    trial_task,
)


@flow(name="nlpflow-sweep", log_prints=True)
def sweep_flow(
    overrides: list[str] | None = None,
    project_dir: str | None = None,
    configs: list[str] | None = None,
) -> dict[str, Any]:
    # trial runs and the sweep's run end KILLED on a stop signal, with the signal
    settings, params = flow_prologue(overrides, project_dir, configs)
    ctx, ref = sweep_context(settings, params)
    started = time.time()
    run_id = open_sweep(ctx, ref.name)
    try:
        # preparing writes the project's data/ outputs, which training writes too: under the
        # project's lock. The trials read the study's own snapshot: they need no lock, and a
        # long sweep does not hold up scheduled training runs.
        with holding_project(ctx, run_id=run_id):
            prepared: dict[str, Any] = {name: PREPARE_TASKS[name](ctx, run_id) for name in PREPARE}
            snapshot_task(ctx, ref)
        reports, where = _run_trials(ctx, ref, run_id)
        report = finish_task(ctx, ref, run_id, reports, started)
    except BaseException:
        unless_stopped(end_tracking)(ctx, run_id, failed=True)
        raise
    end_tracking(ctx, run_id, failed=False)
    print(
        f"best trial {report.best_trial}: {report.metric} {report.best_value:.4f} -> {report.output}"
    )
    return (
        report.model_dump(mode="json")
        | {name: prepared[name].model_dump(mode="json") for name in PREPARE}
        | where
    )


def _run_trials(
    ctx: StageContext, ref: StudyRef, run_id: str
) -> tuple[list[TrialReport], dict[str, Any]]:
    """Keep sweep.parallelism trials in flight until n_trials have started (none starts after
    the timeout); each next trial is asked for when one ends, so the sampler learns from it.
    Also returns where they ran (_announce)."""
    sweep, study = ref.sweep, open_study_task(ref)
    deadline = time.monotonic() + (sweep.timeout or float("inf"))
    reports: list[TrialReport] = []
    pending: list[PrefectFuture[TrialReport]] = []
    asked = 0
    # on a GPU, trials hold the `gpu` tag like the training flow's train: its concurrency limit
    # (nlpflow deploy --gpu-slots) caps the trainings sharing the GPUs
    trial = trial_task.with_options(tags={"gpu"}) if wants_gpu(ctx) else trial_task
    engine = trial_engine(sweep, ctx.settings)
    slots = trial_slots(sweep, engine)
    with started(build_task_runner(sweep, engine)) as runner:
        where = _announce(sweep, engine, runner)
        while True:
            while len(pending) < slots and asked < sweep.n_trials:
                if time.monotonic() >= deadline:
                    break
                number, trial_id, values = ask_task(study, sweep)
                job = trial_job(ctx, ref, run_id, number=number, trial_id=trial_id, values=values)
                print(f"trial {number} starts: {values}")
                pending.append(runner.submit(trial, parameters={"job": job}))
                asked += 1
            if not pending:
                return reports, where
            done = next(as_completed(pending))
            pending.remove(done)
            reports.append(done.result())
            print(f"trial {reports[-1].number}: {reports[-1].state} {reports[-1].value}")


def _announce(sweep: SweepParams, engine: Engine | None, runner: TaskRunner[Any]) -> dict[str, Any]:
    """Say where the trials run, and a cluster's dashboard (to watch the workers meanwhile),
    in the flow run's log: {"engine": "dask at tcp://...", "dashboard": "http://..."}."""
    where: dict[str, Any] = {"engine": describe_trial_engine(sweep, engine)}
    print(f"trials run on {where['engine']}")
    if engine is not None and engine.cluster:
        where["dashboard"] = dashboard_url(runner)
        print(dashboard_line(engine, where["dashboard"]))
    return where
