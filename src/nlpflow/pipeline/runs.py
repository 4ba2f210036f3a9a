"""Pipeline-run bookkeeping shared by both runners: the MLflow run's life and dvc.lock.

- `open_run` / `close_run`: one MLflow run per pipeline run, params flattened, git tags.
- `run_cli_stage`: what `nlpflow stage NAME` (and so `dvc repro`) does for one stage.
- `record_dvc_stage`: after flow tasks, write the stages' outputs into dvc.lock exactly as
  `dvc repro` would, so `dvc status` is clean after a flow run.
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
from nlpflow.errors import NlpflowError
from nlpflow.pipeline.locking import note_run, process_info
from nlpflow.pipeline.stages import STAGE_NAMES, StageContext, run_stage


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

    assert ctx.tracker is not None
    all_tags = git_tags(ctx.root) | {"nlpflow.runner": runner} | (tags or {})
    all_tags |= dvc_experiment_tags() | code_state_tags(ctx.root)  # exp name; for reproduce
    name = run_name(ctx.params, experiment=experiment_name())
    run_id: str = ctx.tracker.start_run(
        ctx.params.register_.experiment, run_name=name, tags=all_tags,
        main_metric=ctx.params.evaluate.main_metric, owner=owner,
    )  # fmt: skip
    ctx.tracker.log_params(run_id, logged_params(ctx.params))
    ctx.run_id = run_id
    note_run(ctx.root, run_id)
    return run_id


def close_run(ctx: StageContext, *, failed: bool) -> None:
    if ctx.tracker is not None and ctx.run_id is not None:
        ctx.tracker.end_run(ctx.run_id, "FAILED" if failed else "FINISHED")


@contextmanager
def locked_project(
    ctx: StageContext, *, session: str | None = None, say: Callable[[str], None] = print
) -> Iterator[None]:
    """Hold the project's lock (nlpflow.pipeline.locking; settings `lock`, `lock_timeout`) for the
    block, then close the project's runs whose process died (kill -9) as KILLED: a run that
    holds the lock knows no other run of this project is live on this host, except ones it
    can see running."""
    from nlpflow.pipeline.locking import project_lock

    settings = ctx.settings
    with project_lock(
        ctx.root, wait=settings.lock == "wait", timeout=settings.lock_timeout, session=session,
        say=say,
    ):  # fmt: skip
        if ctx.tracker is not None:
            from nlpflow.pipeline.locking import command_line
            from nlpflow.release.registry import close_dead_runs

            close_dead_runs(ctx.tracker, by=f"the next run ({command_line()})")
        yield


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
    from nlpflow.pipeline.remote import RECORDED_BY, finish_dvc_run
    from nlpflow.tracking.tracker import clear_active_run, read_active_run, write_active_run

    assert ctx.tracker is not None
    marker = read_active_run(ctx.root)
    status = ctx.tracker.run_status(marker["run_id"]) if marker else None
    if marker and marker["owner"] == owner and status in {"RUNNING", "FINISHED"}:
        ctx.run_id = marker["run_id"]
        if status == "FINISHED":
            ctx.tracker.reopen_run(ctx.run_id)
    else:
        write_active_run(ctx.root, open_run(ctx, runner="dvc", owner=owner), owner)
    try:
        report = run_stage(name, ctx)
        if name == RECORDED_BY:  # the run is reproducible: push to the DVC remote, record it
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


def is_dvc_project(root: Path) -> bool:
    return (root / ".dvc").is_dir() and (root / "dvc.yaml").is_file()


class DvcCommandError(NlpflowError):
    """A `dvc` command failed; `said` is DVC's own message."""

    def __init__(self, message: str, *, said: str) -> None:
        super().__init__(message)
        self.said = said


def run_dvc(root: Path, args: list[str], *, doing: str, env: dict[str, str] | None = None) -> str:
    """Run `dvc ARGS` in `root` and return its output; a failure is a DvcCommandError saying
    what was being done and what DVC said.

    A subprocess in `root`, not DVC's Python API: DVC resolves relative paths against the
    process's working directory, which a flow must not change under its other tasks.
    """
    import subprocess
    import sys

    from nlpflow.shutdown import signal_exit_reason, signals_deferred

    # A stop signal raised here would kill dvc half-way through writing dvc.lock and its
    # cache: it waits until dvc is done (seconds), then stops the run as usual.
    with signals_deferred():
        done = subprocess.run(
            [sys.executable, "-m", "dvc", *args], cwd=root, capture_output=True, text=True,
            env=env, start_new_session=True,  # a Ctrl-C to the terminal's group spares it too
        )  # fmt: skip
    if done.returncode == 0:
        return done.stdout
    said = " ".join(
        line.strip() for line in (done.stderr or done.stdout).splitlines() if line.strip()
    )
    said = said.split(" Having any troubles?")[0]  # DVC's support footer
    stopped = signal_exit_reason(done.returncode)  # killed: its stderr is empty or cut short
    if stopped is not None:
        said = f"dvc was {stopped}" + (f" ({said})" if said else "")
    elif not said:
        said = f"dvc exited with code {done.returncode} and printed nothing"
    raise DvcCommandError(f"{doing} failed in {root}: {said}", said=said)


def record_dvc_stage(root: Path, *names: str) -> None:
    """`dvc commit` stages: hash their deps, params and outs into dvc.lock, cache the outs."""
    run_dvc(
        root,
        ["commit", "--force", "--quiet", *names],
        doing=f"dvc commit of stage(s) {', '.join(names)}",
    )


# A stage whose cached result the flow reuses must still be in dvc.lock: `dvc commit` takes
# a second or two per stage, so a marker remembers which cache key each lock entry records.
DVC_RECORDED = Path(".nlpflow") / "cache" / "dvc-recorded.json"


def _lock_entry_digests(root: Path) -> dict[str, str]:
    """sha256 of each stage's entry in dvc.lock, from one read of the file."""
    import hashlib
    import json

    import yaml

    lock = root / "dvc.lock"
    if not lock.exists():
        return {}
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    return {
        name: hashlib.sha256(json.dumps(entry, sort_keys=True).encode()).hexdigest()
        for name, entry in stages.items()
    }


def _read_marker(root: Path) -> dict[str, dict[str, str | None]]:
    import json

    marker = root / DVC_RECORDED
    try:
        return dict(json.loads(marker.read_text()))
    except (OSError, ValueError):
        return {}


def remember_dvc_stages(root: Path, keys: dict[str, str | None]) -> None:
    """Note that dvc.lock's entry for each stage now records the outputs of its cache key."""
    import json

    marker = root / DVC_RECORDED
    marker.parent.mkdir(parents=True, exist_ok=True)
    entries, lock = _read_marker(root), _lock_entry_digests(root)
    entries |= {name: {"key": key, "lock": lock.get(name)} for name, key in keys.items()}
    marker.write_text(json.dumps(entries, indent=1))


def dvc_stages_recorded(root: Path, keys: dict[str, str | None]) -> set[str]:
    """The stages whose dvc.lock entry is the one written for their cache key."""
    entries, lock = _read_marker(root), _lock_entry_digests(root)
    return {
        name
        for name, key in keys.items()
        if key is not None
        and entries.get(name) == {"key": key, "lock": lock.get(name)}
        and lock.get(name) is not None
    }
