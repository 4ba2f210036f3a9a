"""The MLflow adapter: one MLflow run per pipeline run, whichever runner drives it.

    tracker = Tracker(settings)                     # pure: connects at first use (or .open())
    run_id = tracker.start_run("nlpflow", run_name=None, tags={})
    tracker.log_metrics(run_id, {"test/macro_f1": 0.91})
    tracker.end_run(run_id, "FINISHED")

The Prefect flow opens the run and hands its id to every task. `nlpflow stage NAME` (what
`dvc repro` calls) runs one stage per process, so the open run's id is kept in
`.nlpflow/active_run.json` (nlpflow.tracking.markers) until the last stage closes it.

A tracking server that goes away fails the run with a TrackingError naming the server and the
fix (MLflow's request retries are cut to seconds: nlpflow.config.settings.MLFLOW_HTTP_DEFAULTS).

Nothing outside nlpflow.tracking imports mlflow, except the model format itself
(nlpflow.tracking.MLFLOW_MODEL_FORMAT): every operation the rest needs is a named method here.
"""

from __future__ import annotations

from nlpflow.tracking.datasets import DATASET_CONTEXT, split_dataset_name, split_digest
from nlpflow.tracking.lifecycle import RunLifecycle
from nlpflow.tracking.markers import (
    ACTIVE_RUN,
    PENDING,
    clear_active_run,
    load_pending,
    read_active_run,
    write_active_run,
)
from nlpflow.tracking.model_registry import ModelRegistry
from nlpflow.tracking.provenance import dvc_hash_tags, entry_point, git_tags
from nlpflow.tracking.queries import RunQueries
from nlpflow.tracking.stale import close_stale_runs, find_open_runs


class Tracker(RunLifecycle, RunQueries, ModelRegistry):
    """The adapter over one tracking URI: runs (nlpflow.tracking.lifecycle, .run_log,
    .queries) and the model registry (nlpflow.tracking.model_registry). Construction is pure:
    the client is opened, the environment defaults set and pending statuses sent at `open()`
    or at the first call that needs the server (nlpflow.tracking.connection)."""


__all__ = [
    "ACTIVE_RUN",
    "DATASET_CONTEXT",
    "PENDING",
    "Tracker",
    "clear_active_run",
    "close_stale_runs",
    "dvc_hash_tags",
    "entry_point",
    "find_open_runs",
    "git_tags",
    "load_pending",
    "read_active_run",
    "split_dataset_name",
    "split_digest",
    "write_active_run",
]
