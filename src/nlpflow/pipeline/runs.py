"""Pipeline-run bookkeeping shared by both runners: the MLflow run's life.

- `open_run` / `close_run`: one MLflow run per pipeline run, params flattened, git tags.
- `run_cli_stage`: what `nlpflow stage NAME` (and so `dvc repro`) does for one stage.
- dvc.lock and the `dvc` command: nlpflow.pipeline.dvc_cli (its names are importable here too).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path

from pydantic import BaseModel

from nlpflow.config.params import Params
from nlpflow.config.settings import Settings
from nlpflow.pipeline.dvc_cli import (
    DVC_RECORDED,
    DvcCommandError,
    dvc_stages_recorded,
    is_dvc_project,
    record_dvc_stage,
    remember_dvc_stages,
    run_dvc,
)
from nlpflow.pipeline.locking import note_run, process_info
from nlpflow.pipeline.stages import STAGE_NAMES, StageContext, get_stage, run_stage

__all__ = [  # and the dvc.lock names, importable from here as before
    "DVC_RECORDED", "DvcCommandError", "close_dead_runs", "close_run", "dvc_stages_recorded",
    "invoking_dvc", "is_dvc_project", "locked_project", "make_context", "open_run",
    "record_dvc_stage", "remember_dvc_stages", "run_cli_stage", "run_dvc",
]  # fmt: skip


def open_run(
    ctx: StageContext, *, runner: str, tags: dict[str, str] | None = None, owner: str | None = None
) -> str:
    """Open the pipeline's MLflow run, named for what it trains, with the params that shape it
    (nlpflow.config.naming: the family's own train fields, never another family's). `owner`: the
    process that closes it (`<pid>@<start>` of a `dvc repro`), default this one."""
    from nlpflow.config.dvcexp import dvc_experiment_tags, experiment_name
    from nlpflow.config.naming import logged_params, run_name
    from nlpflow.pipeline.remote import code_state_tags
    from nlpflow.tracking.tracker import git_tags

    tracker = ctx.tracked()
    all_tags = git_tags(ctx.root) | {"nlpflow.runner": runner} | (tags or {})
    all_tags |= dvc_experiment_tags() | code_state_tags(ctx.root)  # exp name; for reproduce
    name = run_name(ctx.params, experiment=experiment_name())
    run_id: str = tracker.start_run(
        ctx.params.register_.experiment, run_name=name, tags=all_tags,
        main_metric=ctx.params.evaluate.main_metric, owner=owner,
    )  # fmt: skip
    tracker.log_params(run_id, logged_params(ctx.params))
    ctx.run_id = run_id
    note_run(ctx.root, run_id)
    return run_id


def close_run(ctx: StageContext, *, failed: bool) -> None:
    if ctx.tracker is not None and ctx.run_id is not None:
        ctx.tracker.end_run(ctx.run_id, "FAILED" if failed else "FINISHED")


@contextmanager
def locked_project(
    ctx: StageContext,
    *,
    session: str | None = None,
    say: Callable[[str], None] = print,
    close_dead: bool = True,
) -> Iterator[None]:
    """Hold the project's lock (nlpflow.pipeline.locking; settings `lock`, `lock_timeout`) for the
    block, then close the project's runs whose process died (close_dead_runs; `close_dead`
    False: the caller does, a flow in a task of its own)."""
    from nlpflow.pipeline.locking import project_lock

    settings = ctx.settings
    with project_lock(
        ctx.root, wait=settings.lock == "wait", timeout=settings.lock_timeout, session=session,
        say=say,
    ):  # fmt: skip
        if close_dead:
            close_dead_runs(ctx)
        yield


def close_dead_runs(ctx: StageContext) -> None:
    """Close the project's runs whose process died (kill -9) as KILLED. Only while holding the
    project's lock: a run that holds it knows no other run of this project is live on this
    host, except ones it can see running."""
    if ctx.tracker is None:
        return
    from nlpflow.pipeline.locking import command_line
    from nlpflow.release.registry import close_dead_runs as close

    close(ctx.tracker, by=f"the next run ({command_line()})")


def make_context(
    root: Path, params: Params, settings: Settings, *, tracked: bool = True
) -> StageContext:
    tracker = None
    if tracked:
        from nlpflow.tracking.tracker import Tracker

        tracker = Tracker(settings)
    return StageContext(root=root, params=params, settings=settings, tracker=tracker)


def run_cli_stage(name: str, ctx: StageContext) -> BaseModel:
    """Run one stage inside the pipeline's MLflow run: the stages one `dvc repro` (or
    `dvc exp run`) runs share one run, opened by the first of them.

    Each stage ends the run FINISHED (FAILED when it fails) and the next stage of the same
    `dvc` process takes it up again: DVC skips the stages whose inputs did not change, so the
    stage that ran last is often not register, and no run may stay RUNNING. A run left by
    another `dvc` process is never continued: two experiments never share a run.

    Each stage holds the project's lock; the `dvc` process's other stages may take it in
    turn, and nobody else until that process ends (nlpflow.pipeline.locking).
    """
    owner = invoking_dvc()
    with locked_project(ctx, session=owner, say=lambda line: print(line, file=sys.stderr)):
        if ctx.tracker is None:  # an untracked stage (Stage.tracked): nothing to open or close
            return run_stage(name, ctx)
        return _run_tracked_stage(name, ctx, owner)


def _run_tracked_stage(name: str, ctx: StageContext, owner: str | None) -> BaseModel:
    from nlpflow.pipeline.remote import finish_dvc_run
    from nlpflow.tracking.tracker import clear_active_run, read_active_run, write_active_run

    tracker = ctx.tracked()
    marker = read_active_run(ctx.root)
    status = tracker.run_status(marker["run_id"]) if marker else None
    if marker and marker["owner"] == owner and status in {"RUNNING", "FINISHED"}:
        ctx.run_id = marker["run_id"]
        if status == "FINISHED":
            tracker.reopen_run(ctx.run_id)
    else:
        write_active_run(ctx.root, open_run(ctx, runner="dvc", owner=owner), owner)
    try:
        report = run_stage(name, ctx)
        if get_stage(name).records_run:  # reproducible now: push to the DVC remote, record it
            finish_dvc_run(ctx)
    except BaseException:
        close_run(ctx, failed=True)
        clear_active_run(ctx.root)
        raise
    close_run(ctx, failed=False)
    if name == STAGE_NAMES[-1]:
        clear_active_run(ctx.root)
    return report


def invoking_dvc() -> str | None:
    """`<pid>@<start time>` of the `dvc` process that runs this stage (its nearest ancestor
    whose command is dvc), or None when no dvc process started it (a stage run by hand)."""
    pid = os.getppid()
    for _ in range(6):  # dvc -> (sh -c) -> nlpflow; a queued experiment adds its executor
        found = process_info(pid)
        if found is None:
            return None
        parent, started, argv = found
        if _is_dvc(argv):
            return f"{pid}@{started}"
        if parent <= 1:
            return None
        pid = parent
    return None


def _is_dvc(argv: list[str]) -> bool:
    names = [Path(arg).name for arg in argv[:3]]
    return "dvc" in names or any(a == "-m" and b == "dvc" for a, b in pairwise(argv[:4]))
