"""`nlpflow doctor`: find the state a killed run left behind, and repair what is safe to.

    nlpflow doctor             # report, and repair: close dead runs as KILLED, drop stale markers
    nlpflow doctor --dry-run   # report only

What it looks at:
- the project's lock (`.nlpflow/run.lock`): who holds it now, if anyone;
- MLflow runs of this project still RUNNING: a run whose process on this host is gone (or
  whose pid now belongs to another process) is closed as KILLED with the reason in tag
  `nlpflow.closed_reason`; a live run, a run of another host and a run with no recorded owner
  are only reported;
- `.nlpflow/active_run.json` (the run `dvc repro`'s stages share) left by a `dvc` process that
  is gone, and run statuses still waiting for a tracking server (`.nlpflow/pending_runs.json`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel

from nlpflow.config.settings import Settings

if TYPE_CHECKING:
    from nlpflow.tracking.tracker import Tracker


class Finding(BaseModel):
    what: str  # lock | run | marker | pending
    state: str  # held, free, live, gone, other-host, unowned, stale
    detail: str
    repaired: bool = False


class DoctorReport(BaseModel):
    project: str
    findings: list[Finding]

    @property
    def needs_repair(self) -> bool:
        return any(f.state in {"gone", "stale"} and not f.repaired for f in self.findings)


def diagnose(settings: Settings, *, repair: bool) -> DoctorReport:
    from nlpflow.pipeline.locking import describe, lock_state
    from nlpflow.tracking.tracker import Tracker

    root = settings.root
    held, holder = lock_state(root)
    findings = [
        Finding(what="lock", state="held", detail=f"held by {describe(holder)}")
        if held
        else Finding(what="lock", state="free", detail="no run holds this project")
    ]
    tracker = Tracker(settings)
    tracker.open()  # which also sends statuses kept for a server that was away
    findings += _runs(tracker, repair=repair)
    findings += _markers(settings, held=held, repair=repair)
    return DoctorReport(project=str(root), findings=findings)


def _runs(tracker: Tracker, *, repair: bool) -> list[Finding]:
    from nlpflow.release.champion import close_dead_runs
    from nlpflow.tracking.stale import find_open_runs

    found = find_open_runs(tracker)
    closed: set[str] = set()
    if repair and any(run.state == "gone" for run in found):
        closed = set(close_dead_runs(tracker, by="nlpflow doctor"))
    advice = {
        "live": "left alone",
        "other-host": "left alone: run nlpflow doctor on that host",
        "unowned": "no owner recorded (an older nlpflow, or another tool): check it in MLflow",
        "gone": "closed as KILLED, its registered versions withdrawn"
        if repair
        else "would be closed as KILLED, its registered versions withdrawn",
    }
    return [
        Finding(
            what="run",
            state=run.state,
            repaired=run.run_id in closed,
            detail=f"MLflow run {run.run_id} ({run.name}) RUNNING: {run.why}; {advice[run.state]}",
        )
        for run in found
    ]


def _markers(settings: Settings, *, held: bool, repair: bool) -> list[Finding]:
    from nlpflow.processes import session_alive
    from nlpflow.tracking.markers import ACTIVE_RUN, clear_active_run, load_pending, read_active_run

    root, findings = settings.root, []
    marker = read_active_run(root)
    # a marker of stages run by hand (no owner) carries their run on to the next stage
    owner = marker.get("owner") if marker else None
    if marker is not None and owner and not held and not session_alive(owner):
        if repair:
            clear_active_run(root)
        findings.append(Finding(
            what="marker", state="stale", repaired=repair,
            detail=f"{ACTIVE_RUN} names run {marker['run_id']} of a dvc process that is gone; "
            + ("removed" if repair else "would be removed"),
        ))  # fmt: skip
    pending = load_pending(root)
    if pending:
        findings.append(Finding(
            what="pending", state="waiting",
            detail=f"{len(pending)} run status(es) wait for tracking server "
            f"{', '.join(sorted({p['uri'] for p in pending}))}; sent when it answers",
        ))  # fmt: skip
    return findings
