"""What every flow does first, before its first task: one helper for the three flows.

    settings, params = flow_prologue(overrides, project_dir, configs)
    ctx, record_dvc = training_context(settings, params, overrides=overrides, configs=configs)
    with holding_project(ctx):   # one run at a time per project
        ...

Not Prefect tasks: the stop-signal handler must be installed from the flow's own thread, and
the params must be read before a task can be named or given its inputs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nlpflow.config.params import Params, load_params
from nlpflow.config.settings import Settings, load_settings
from nlpflow.pipeline.context import StageContext
from nlpflow.shutdown import watch_stop_signals
from nlpflow.tasks import credentials
from nlpflow.tasks.labels import show_library_progress


def flow_prologue(
    overrides: list[str] | None,
    project_dir: str | None,
    configs: list[str] | None,
    *,
    training: bool = True,
) -> tuple[Settings, Params]:
    """The settings and the params of a flow run. `training` (the training and sweep flows):
    nlpflow's progress lines reach the run's log, and a SIGTERM/SIGINT closes its MLflow runs
    KILLED, with the signal."""
    if training:
        show_library_progress()
    credentials.install()  # database passwords from NLPFLOW_DB_SECRET's block
    if training:
        watch_stop_signals()
    settings = load_settings()
    if project_dir:  # a deployment names its project; relative paths resolve against it
        settings = settings.model_copy(update={"project_dir": Path(project_dir)})
    params = load_params(settings.root / "params.yaml", overrides, [Path(c) for c in configs or []])
    return settings, params


def training_context(
    settings: Settings,
    params: Params,
    *,
    overrides: list[str] | None = None,
    configs: list[str] | None = None,
) -> tuple[StageContext, bool]:
    """The stages' context, and whether this run writes dvc.lock: dvc.lock must describe
    params.yaml, and outputs of overridden params would make it lie. Nor can it describe a
    glob or database source (DVC takes no such dependency)."""
    from nlpflow.config.source_kinds import dvc_can_track
    from nlpflow.pipeline.runs import is_dvc_project, make_context

    root = settings.root
    ctx = make_context(root, params, settings)
    record_dvc = (
        is_dvc_project(root) and not overrides and not configs and dvc_can_track(params.data.source)
    )
    return ctx, record_dvc


@contextmanager
def holding_project(ctx: StageContext, *, run_id: str | None = None) -> Iterator[None]:
    """One run at a time per project, whoever starts it (CLI, a worker's deployment, dvc
    repro): the project's lock for the block, then the runs whose process died closed (a
    task). `run_id`: the run already open, noted on the lock for whoever waits."""
    from nlpflow.pipeline.locking import note_run
    from nlpflow.pipeline.runs import locked_project
    from nlpflow.tasks.outcome import close_dead_runs

    with locked_project(ctx, close_dead=False):
        close_dead_runs(ctx)
        if run_id is not None:
            note_run(ctx.root, run_id)
        yield
