"""A run's life: its experiment, opened RUNNING, taken up again, closed.

Closing retries for `NLPFLOW_TRACKING_CLOSE_SECONDS` while the server is away; if it is still
away, the status waits in `.nlpflow/pending_runs.json` (nlpflow.tracking.markers) and the next
Tracker opened in the project sends it, so the run does not stay RUNNING forever.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from functools import partial
from pathlib import Path

from nlpflow.errors import TrackingError
from nlpflow.processes import process_start, this_host
from nlpflow.tracking.connection import ALREADY_EXISTS, error_code, is_unreachable
from nlpflow.tracking.run_log import RunLogging

CLOSE_PAUSE_SECONDS = 3.0  # between attempts to close a run (each already retries ~7 s)
STOPPED_CLOSE_SECONDS = 2.0  # closing retries after a stop signal (nlpflow.shutdown)
log = logging.getLogger(__name__)
# Run tags naming the process that will close the run (nlpflow.tracking.stale reads them)
OWNER_PID = "nlpflow.pid"
OWNER_START = "nlpflow.pid_start"
OWNER_HOST = "nlpflow.host"
OWNER_PROJECT = "nlpflow.project"


class RunLifecycle(RunLogging):
    """Experiments and runs: opened, taken up again, closed (on top of what a run logs)."""

    def experiment_id(self, name: str, *, main_metric: str | None = None) -> str:
        """The experiment's id, created when missing; its tags open it in MLflow's
        model-training view with the runs table showing `test/<main_metric>`
        (nlpflow.tracking.links.experiment_tags): set where missing, and where they differ when the
        caller names its main metric (a pipeline run does; a lookup keeps what is there)."""
        from mlflow.exceptions import MlflowException

        from nlpflow.tracking.links import experiment_tags

        wanted = experiment_tags(main_metric or "macro_f1")
        client = self.client
        try:
            found = self._call(
                "looking up the experiment", partial(client.get_experiment_by_name, name)
            )
            if found is not None:
                for key, value in wanted.items():
                    have = found.tags.get(key)
                    if have is None or (have != value and main_metric is not None):
                        tag = partial(client.set_experiment_tag, found.experiment_id, key, value)
                        self._call("tagging the experiment", tag)
                return str(found.experiment_id)
            root = self.settings.resolved_artifact_root
            created = self._call(
                "creating the experiment",
                lambda: client.create_experiment(name, artifact_location=root, tags=wanted),
            )
            return str(created)
        except MlflowException as exc:
            if error_code(exc) == ALREADY_EXISTS:  # created by a concurrent run meanwhile
                again = client.get_experiment_by_name(name)
                assert again is not None
                return str(again.experiment_id)
            raise TrackingError(f"MLflow at {self.uri} failed: {exc}") from None

    def start_run(
        self,
        experiment: str,
        *,
        run_name: str | None,
        tags: dict[str, str],
        main_metric: str | None = None,
        owner: str | None = None,
    ) -> str:
        """A new RUNNING run, tagged with the process that owns it (`owner`: `<pid>@<start>`
        of the process that will close it, default this one): `close_stale_runs` closes it
        as KILLED should that process die first."""
        experiment_id = self.experiment_id(experiment, main_metric=main_metric)
        tags = owner_tags(self.settings.home, owner) | tags
        run = self._call(
            "starting a run",
            lambda: self.client.create_run(experiment_id, run_name=run_name, tags=tags),
        )
        return str(run.info.run_id)

    def run_status(self, run_id: str) -> str | None:
        """RUNNING, FINISHED, FAILED, ...; None for a run this store does not hold (deleted,
        or made against another tracking store). A store that fails otherwise raises."""
        run = self._lookup("reading the open run", partial(self.client.get_run, run_id))
        if run is None or run.info.lifecycle_stage == "deleted":
            return None
        return str(run.info.status)

    def reopen_run(self, run_id: str) -> None:
        """A run a previous stage of the same `dvc repro` marked FINISHED goes on RUNNING."""
        self._call("reopening the run", lambda: self.client.update_run(run_id, status="RUNNING"))

    def terminate(self, run_id: str, status: str) -> None:
        """Set the run's final status now (no retries past MLflow's own)."""
        self._call(f"marking the run {status}", lambda: self.client.set_terminated(run_id, status))

    def end_run(self, run_id: str, status: str) -> bool:
        """Mark the run FINISHED or FAILED, retrying for `settings.tracking_close_seconds` while
        the server is away. Never raises for an absent server (this runs while a failure is
        being reported, and must not hide it): the status is kept in `.nlpflow/pending_runs.json`
        for the next Tracker. Returns whether the server has the status now.

        After a stop signal (nlpflow.shutdown), FAILED becomes KILLED with the
        signal as the reason, and the retries fit in the few seconds a stopped process has left."""
        from mlflow.exceptions import MlflowException

        from nlpflow import shutdown
        from nlpflow.tracking.markers import PENDING, save_pending

        close_seconds = self.settings.tracking_close_seconds
        reason = shutdown.stopped_by() if status == "FAILED" else None
        if reason is not None:
            status, close_seconds = "KILLED", min(close_seconds, STOPPED_CLOSE_SECONDS)
            with contextlib.suppress(TrackingError):  # the status matters more than the tags
                self.set_tags(run_id, shutdown.stop_tags(reason))
            shutdown.note_closed(run_id, status)
        deadline = time.monotonic() + close_seconds
        while True:
            try:
                self.client.set_terminated(run_id, status=status)
                return True
            except MlflowException as exc:
                if not is_unreachable(exc):
                    raise
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                time.sleep(min(CLOSE_PAUSE_SECONDS, left))
        save_pending(self.settings.root, uri=self.uri, run_id=run_id, status=status)
        log.warning(
            "MLflow tracking server %s is still unreachable: run %s stays RUNNING there until "
            "the next nlpflow command in %s marks it %s (kept in %s).",
            self.uri, run_id, self.settings.root, status, PENDING,
        )  # fmt: skip
        return False


def owner_tags(project: Path, owner: str | None = None) -> dict[str, str]:
    """The process that will close a run: `owner` (`<pid>@<start>`, a `dvc repro` whose stage
    processes share the run) or this process; its host; the project."""
    if owner and "@" in owner:
        pid, _, start = owner.partition("@")
    else:
        pid, start = str(os.getpid()), process_start(os.getpid()) or ""
    return {OWNER_PID: pid, OWNER_START: start, OWNER_HOST: this_host(),
            OWNER_PROJECT: str(project)}  # fmt: skip
