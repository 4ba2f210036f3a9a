"""Runs whose process is gone (kill -9): each run records the process that will close it, and
the next run of the project, or `nlpflow doctor`, closes the dead ones as KILLED.

    close_stale_runs(tracker, by="nlpflow doctor")
"""

from __future__ import annotations

import logging
import time
from functools import partial
from typing import TYPE_CHECKING, Any

from nlpflow.processes import process_alive, this_host
from nlpflow.tracking.lifecycle import OWNER_HOST, OWNER_PID, OWNER_PROJECT, OWNER_START

if TYPE_CHECKING:
    from nlpflow.tracking.lifecycle import RunLifecycle

log = logging.getLogger(__name__)

CLOSED_REASON = "nlpflow.closed_reason"


class OpenRun:
    """A RUNNING run of this project, and whether its owner still runs."""

    def __init__(self, run: Any, *, state: str, why: str) -> None:
        self.run_id: str = run.info.run_id
        self.name: str = run.info.run_name or ""
        self.tags: dict[str, str] = dict(run.data.tags)
        self.state = state  # live | gone | other-host | unowned
        self.why = why


def find_open_runs(tracker: RunLifecycle) -> list[OpenRun]:
    """Every RUNNING run of this project (runs of other projects on a shared server are left
    out), each judged: live (its process runs), gone (its process on this host is gone, or
    the pid now belongs to another process), other-host, or unowned (no owner recorded)."""
    project, host = str(tracker.settings.home), this_host()
    listed = tracker._call("listing experiments", tracker.client.search_experiments)
    experiments = [e.experiment_id for e in listed]
    found: list[OpenRun] = []
    for start in range(0, len(experiments), 100):  # MLflow's limit of experiments per search
        runs = tracker._call("looking for open runs", partial(
            tracker.client.search_runs, experiments[start : start + 100],
            filter_string="attributes.status = 'RUNNING'",
        ))  # fmt: skip
        for run in runs:
            tags = run.data.tags
            if tags.get(OWNER_PROJECT, project) != project:
                continue
            pid, owner_host = tags.get(OWNER_PID), tags.get(OWNER_HOST)
            if pid is None or not pid.isdigit():
                found.append(OpenRun(run, state="unowned", why="no owner process recorded"))
            elif owner_host != host:
                found.append(OpenRun(run, state="other-host", why=f"process {pid} on {owner_host}"))
            elif process_alive(int(pid), tags.get(OWNER_START) or None):
                found.append(OpenRun(run, state="live", why=f"process {pid} still runs"))
            else:
                found.append(OpenRun(run, state="gone", why=f"process {pid} on {host} is gone"))
    return found


def close_stale_runs(
    tracker: RunLifecycle, *, by: str, dry_run: bool = False, only: set[str] | None = None
) -> list[OpenRun]:
    """Close this project's RUNNING runs whose process on this host is gone as KILLED, with
    the reason as tag `nlpflow.closed_reason`; returns them. Never a live run, never a run of
    another host (`find_open_runs` reports those). `only`: of these runs (ids) alone."""
    stale = [
        run
        for run in find_open_runs(tracker)
        if run.state == "gone" and (only is None or run.run_id in only)
    ]
    if dry_run:
        return stale
    when = time.strftime("%Y-%m-%d %H:%M:%S%z")
    for run in stale:
        reason = f"{run.why}; closed by {by} at {when}"
        tracker.set_tags(run.run_id, {CLOSED_REASON: reason})
        tracker.terminate(run.run_id, "KILLED")
        log.warning("closed MLflow run %s (%s) as KILLED: %s", run.run_id, run.name, reason)
    return stale
