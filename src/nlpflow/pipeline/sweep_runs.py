"""A sweep's MLflow runs: the sweep's own run, and each trial trained under a run nested in it
(the trial's epochs reported to Optuna, which may prune it, and to MLflow).

The study itself (its space, storage, pruner and the best trial) is nlpflow.training.sweep;
this module adds the tracking around it, so it sits above both (the pipeline layer).

    run_id = open_sweep_run(tracker, params, root=root, study="s1", tags={})
    report = run_trial(job)   # in a thread, a process or on a cluster worker
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nlpflow.config.naming import epoch_metrics
from nlpflow.config.params import Params, TrainParams, flatten, read_by_train
from nlpflow.shutdown import raise_if_stopped
from nlpflow.training.sweep import (
    TrialJob,
    TrialReport,
    TrialState,
    best_of,
    experiment_name,
    load_study,
    trial_train_params,
)

if TYPE_CHECKING:
    from nlpflow.tracking.tracker import Tracker

# What a trial's MLflow run ends as: a pruned trial was stopped on purpose, not broken.
RUN_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}


def open_sweep_run(
    tracker: Tracker, params: Params, *, root: Path, study: str, tags: dict[str, str]
) -> str:
    """The sweep's MLflow run, parent of the trials' runs: all params, git and study tags."""
    from nlpflow.tracking.tracker import git_tags

    run_id: str = tracker.start_run(
        experiment_name(params), run_name=study,
        tags=git_tags(root) | {"nlpflow.runner": "prefect", "sweep.study": study} | tags,
    )  # fmt: skip
    tracker.log_params(run_id, flatten(params.public_dict()))
    return run_id


def run_trial(job: TrialJob) -> TrialReport:
    """Train one trial, each epoch reported to Optuna (which may prune it) and to the trial's
    nested MLflow run; Optuna is told how it ended. Errors fail the trial and propagate."""
    import optuna

    from nlpflow.tracking.tracker import Tracker
    from nlpflow.training.train import train

    sweep, metric = job.ref.sweep, job.ref.sweep.metric
    study = load_study(job.ref)
    trial = optuna.trial.Trial(study, job.trial_id)
    train_params = trial_train_params(job.params.train, job.values)
    tracker = Tracker(job.settings)
    run_id = _open_trial_run(tracker, job, train_params)
    trial.set_user_attr("mlflow_run_id", run_id)
    folder, started = job.ref.folder / f"trial-{job.number}", time.time()
    last: dict[str, float] = {"epoch": 0}  # the latest epoch reported, and its metric

    def on_epoch(epoch: int, scores: dict[str, float]) -> None:
        raise_if_stopped()  # a trial's thread never gets the signal: it ends here, KILLED
        last["epoch"] = epoch
        tracker.log_metrics(run_id, epoch_metrics(scores), step=epoch)
        if metric in scores:
            last["value"] = scores[metric]
            trial.report(scores[metric], epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"epoch {epoch}: {metric} {scores[metric]:.4f}")

    state: TrialState = "COMPLETE"
    value: float | None = None
    try:
        report = train(
            src=job.ref.folder / "data", dst=folder / "model", history_path=folder / "history.csv",
            params=train_params, preprocess=job.params.preprocess, labels=job.params.data.labels,
            on_epoch=on_epoch, on_step=raise_if_stopped, task=job.params.task,
        )  # fmt: skip
        value = best_of(report.history, metric=metric, direction=sweep.direction)
    except optuna.TrialPruned:
        state, value = "PRUNED", last.get("value")
    except BaseException:
        _end_trial(study, trial, tracker, run_id, state="FAIL", value=None, metric=metric)
        raise
    _end_trial(study, trial, tracker, run_id, state=state, value=value, metric=metric)
    return TrialReport(
        number=job.number, state=state, value=value, params=job.values, run_id=run_id,
        epochs=int(last["epoch"]), started=started, ended=time.time(),
        model=str(folder / "model") if state == "COMPLETE" else None,
        worker=_worker(),
    )  # fmt: skip


def _worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _open_trial_run(tracker: Tracker, job: TrialJob, train: TrainParams) -> str:
    # sweep.worker: the host:pid that trained it (a thread, a process or a cluster's worker)
    tags = {"mlflow.parentRunId": job.parent_run_id, "sweep.study": job.ref.name,
            "sweep.trial": str(job.number), "nlpflow.runner": "prefect",
            "sweep.worker": _worker()}  # fmt: skip
    run_id: str = tracker.start_run(job.experiment, run_name=f"trial-{job.number}", tags=tags)
    tracker.log_params(run_id, flatten({"train": read_by_train(train)}))
    return run_id


def _end_trial(
    study: Any, trial: Any, tracker: Tracker, run_id: str, *, state: TrialState,
    value: float | None, metric: str,
) -> None:  # fmt: skip
    from optuna.trial import TrialState as OptunaState

    if state == "COMPLETE":
        assert value is not None  # a completed trial has its value (best_of raises without one)
        study.tell(trial, value)
        tracker.log_metrics(run_id, {f"best/{metric}": value})
    else:
        study.tell(trial, state=getattr(OptunaState, state))
    tracker.set_tags(run_id, {"sweep.state": state})
    tracker.end_run(run_id, RUN_STATUS[state])
