"""Hyper-parameter sweeps: an Optuna study over the train params declared in params `sweep`.

    nlpflow sweep                          # flows/sweep.py on params.yaml
    nlpflow sweep --set sweep.n_trials=8 --set sweep.runner=processes
    nlpflow run --config reports/sweep/best_params.yaml   # train with the best trial's values

The flow asks the study for a trial's values (`ask_trial`), a task trains it
(nlpflow.pipeline.sweep_runs.run_trial) into `.nlpflow/sweep/<study>/trial-<n>/` with
`nlpflow.training.train.train`, reporting the validation metric of each epoch to Optuna (a
trial the pruner stops ends there) and to its own MLflow run, nested under the sweep's run.
The study lives in a journal file beside the trials, so threads, processes and cluster workers
(on a shared file system) all reach it. This module is the study; no prefect, no tracking.
"""

from __future__ import annotations

import math
import secrets
import shutil
import time
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel

from nlpflow.config.nlp_tasks import get_nlp_task
from nlpflow.config.params import (
    FAMILIES,
    Params,
    SweepParams,
    TrainParams,
    merge,
    train_overlay,
)
from nlpflow.config.settings import Settings
from nlpflow.errors import NlpflowError, ParamsError

SWEEP_DIR = ".nlpflow/sweep"
TrialState = Literal["COMPLETE", "PRUNED", "FAIL"]


class TrialReport(BaseModel):
    number: int
    state: TrialState
    value: float | None  # best epoch's metric (COMPLETE), last reported one (PRUNED)
    params: dict[str, Any]  # the sampled values, by space name
    run_id: str
    epochs: int  # epochs trained before it ended
    started: float  # unix seconds: when this trial's training began ...
    ended: float  # ... and ended (parallel trials overlap)
    model: str | None = None  # the trial's model folder (the best trial's is kept)
    worker: str = ""  # host:pid that trained it


class SweepReport(BaseModel):
    study: str
    run_id: str  # the sweep's (parent) MLflow run
    metric: str
    direction: str
    best_trial: int
    best_value: float
    best_params: dict[str, Any]
    best_run_id: str
    output: str  # the best params file
    trials: list[TrialReport]
    seconds: float


class StudyRef:
    """How a worker (thread, process or cluster node) reaches the study: picklable, plain."""

    def __init__(self, *, root: Path, name: str, sweep: SweepParams) -> None:
        self.root, self.name, self.sweep = root, name, sweep

    @property
    def folder(self) -> Path:
        return self.root / SWEEP_DIR / self.name

    @property
    def journal(self) -> Path:
        return self.folder / "journal.log"


class TrialJob:
    """One trial's work order, sent to a task: plain (Prefect leaves it as it is) and picklable."""

    def __init__(
        self, *, ref: StudyRef, params: Params, settings: Settings, parent_run_id: str,
        experiment: str, number: int, trial_id: int, values: dict[str, Any],
    ) -> None:  # fmt: skip
        self.ref, self.params, self.settings = ref, params, settings
        self.parent_run_id, self.experiment = parent_run_id, experiment
        self.number, self.trial_id, self.values = number, trial_id, values


def check_sweep(params: Params, root: Path) -> None:
    """What params validation alone cannot see; fails before any run is opened."""
    sweep = params.sweep
    if not sweep.space:
        raise ParamsError(
            "sweep.space is empty: declare the train params to search, e.g. "
            "lr: {type: float, low: 1.0e-5, high: 3.0e-4, log: true} (see params.yaml)"
        )
    family = FAMILIES[params.train.family]
    task_metrics = get_nlp_task(params.task).sweep_metrics
    if sweep.metric == "val_loss" and not family.hf_trainer:
        raise ParamsError(
            f"sweep.metric val_loss: train.family {params.train.family} reports no validation "
            f"loss; use {' or '.join(m for m in task_metrics if m != 'val_loss')}"
        )
    if sweep.runner == "threads" and sweep.parallelism > 1 and family.hf_trainer:
        # measured: the second trial failed with "AcceleratorState has no attribute
        # distributed_type" (transformers' TrainingArguments resets accelerate's state)
        raise ParamsError(
            "sweep.runner: threads cannot train transformer trials side by side: the Hugging "
            "Face Trainer keeps accelerate's device state per process and each new trial resets "
            "it under the others; use sweep.runner: processes (or sweep.parallelism: 1)"
        )
    if sweep.runner in {"dask", "ray"}:
        import importlib.util

        if importlib.util.find_spec(f"prefect_{sweep.runner}") is None:
            raise ParamsError(
                f"sweep.runner: {sweep.runner} needs prefect-{sweep.runner}, which is not "
                f'installed: pip install "nlpflow[{sweep.runner}]" (or use threads or processes)'
            )
    if sweep.study is not None and (root / SWEEP_DIR / sweep.study).is_file():
        raise ParamsError(f"sweep.study {sweep.study!r}: {root / SWEEP_DIR} holds a file by it")


def experiment_name(params: Params) -> str:
    return params.sweep.experiment or f"{params.register_.experiment}-sweep"


def new_study_name() -> str:
    return time.strftime("sweep-%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def _storage(ref: StudyRef) -> Any:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    ref.folder.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(ref.journal)))


def load_study(ref: StudyRef) -> Any:
    """The study as a trial's worker reaches it: from its journal file, with its pruner."""
    import optuna

    return optuna.load_study(study_name=ref.name, storage=_storage(ref), pruner=_pruner(ref.sweep))


def _pruner(sweep: SweepParams) -> Any:
    import optuna

    if sweep.pruner == "none":
        return optuna.pruners.NopPruner()
    # Optuna prunes from step n_warmup_steps on; epochs count from 1
    return optuna.pruners.MedianPruner(
        n_startup_trials=sweep.pruner_startup_trials,
        n_warmup_steps=sweep.pruner_warmup_epochs + 1,
    )


def open_study(ref: StudyRef) -> Any:
    """Create the study (or load it: an existing name continues), with the sampler and pruner."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # trials are logged by the flow
    study = optuna.create_study(
        study_name=ref.name, storage=_storage(ref), direction=ref.sweep.direction,
        sampler=optuna.samplers.TPESampler(seed=ref.sweep.seed), pruner=_pruner(ref.sweep),
        load_if_exists=True,
    )  # fmt: skip
    if study.direction.name.lower() != ref.sweep.direction:
        raise ParamsError(
            f"study {ref.name!r} in {ref.folder} was run to {study.direction.name.lower()}; "
            f"sweep.metric {ref.sweep.metric} needs {ref.sweep.direction}: name a new sweep.study"
        )
    return study


def _distribution(name: str, sweep: SweepParams) -> Any:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    dim = sweep.space[name]
    if dim.type == "categorical":
        return CategoricalDistribution(dim.choices or [])
    assert dim.low is not None and dim.high is not None  # SearchDimension checked it
    if dim.type == "int":
        step = int(dim.step or 1)
        return IntDistribution(int(dim.low), int(dim.high), log=dim.log, step=step)
    return FloatDistribution(dim.low, dim.high, log=dim.log, step=dim.step)


def ask_trial(study: Any, sweep: SweepParams) -> tuple[int, int, dict[str, Any]]:
    """A new trial's (number, storage id, values), sampled from sweep.space."""
    trial = study.ask({name: _distribution(name, sweep) for name in sweep.space})
    return trial.number, trial._trial_id, dict(trial.params)


def trial_train_params(train: TrainParams, values: dict[str, Any]) -> TrainParams:
    """train params with a trial's values merged on (dotted names reach nested sections)."""
    tree = merge(train.model_dump(mode="json"), train_overlay(values))
    return TrainParams.model_validate(tree)


def snapshot_data(processed: Path, ref: StudyRef) -> Path:
    """The preprocessed splits every trial trains on (`processed`), copied beside the study: a
    pipeline run rewriting data/processed meanwhile cannot change a sweep's data halfway."""
    dst = ref.folder / "data"
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(processed, dst)
    return dst


def best_of(history: list[dict[str, float]], *, metric: str, direction: str) -> float:
    """A trial's value: its best epoch's metric (the epoch whose weights train keeps when the
    metric is the macro-F1 early stopping watches)."""
    values = [row[metric] for row in history if metric in row and not math.isnan(row[metric])]
    if not values:
        raise NlpflowError(
            f"training reported no {metric} in any epoch: the validation split is empty "
            "(data.split.validation) or the family reports no such metric"
        )
    return max(values) if direction == "maximize" else min(values)


class RunLog(Protocol):
    """What finish_sweep writes to the sweep's run: nlpflow.tracking's Tracker, which sits in a
    layer above training (so it is named by the methods it must have, not imported)."""

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int = 0) -> None: ...
    def log_params(self, run_id: str, params: dict[str, Any]) -> None: ...
    def set_tags(self, run_id: str, tags: dict[str, Any]) -> None: ...
    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None: ...


def finish_sweep(
    ref: StudyRef, *, tracker: RunLog, run_id: str, reports: list[TrialReport], started: float
) -> SweepReport:
    """The study's best completed trial: its values written as a params file and logged on the
    sweep's run; the models of the other trials removed (one model per trial adds up)."""
    study = open_study(ref)
    states = [t.state.name for t in study.trials]
    if "COMPLETE" not in states:
        counts = ", ".join(f"{states.count(s)} {s.lower()}" for s in sorted(set(states)))
        raise NlpflowError(
            f"no trial of sweep {ref.name} completed ({counts}): set sweep.pruner: none or raise "
            "sweep.pruner_startup_trials / pruner_warmup_epochs, or widen sweep.space"
        )
    best = study.best_trial
    best_run = str(best.user_attrs.get("mlflow_run_id", ""))
    output = ref.root / ref.sweep.output
    write_best_params(
        output, study=ref.name, trial=best.number, value=best.value, values=best.params,
        metric=ref.sweep.metric, run_id=best_run, shown=ref.sweep.output,
    )  # fmt: skip
    for folder in ref.folder.glob("trial-*/model"):
        if folder.parent.name != f"trial-{best.number}":
            shutil.rmtree(folder, ignore_errors=True)
    ours = [r.state for r in reports]
    tracker.log_metrics(run_id, {f"best/{ref.sweep.metric}": best.value} | {
        f"trials/{s.lower()}": ours.count(s) for s in ("COMPLETE", "PRUNED", "FAIL")})  # fmt: skip
    tracker.log_params(run_id, {f"best.{k}": v for k, v in best.params.items()})
    tracker.set_tags(run_id, {"sweep.best_trial": best.number, "sweep.best_run_id": best_run})
    tracker.log_artifact(run_id, output, "sweep")
    return SweepReport(
        study=ref.name, run_id=run_id, metric=ref.sweep.metric, direction=ref.sweep.direction,
        best_trial=best.number, best_value=best.value, best_params=best.params,
        best_run_id=best_run, output=str(output), seconds=round(time.time() - started, 2),
        trials=sorted(reports, key=lambda r: r.number),
    )  # fmt: skip


def write_best_params(
    path: Path, *, study: str, trial: int, value: float, values: dict[str, Any], metric: str,
    run_id: str, shown: str,
) -> None:  # fmt: skip
    """A params file holding a train: section: `nlpflow run --config` merges it over
    params.yaml for one run; copying its values into params.yaml keeps them."""
    import yaml

    header = (
        f"# Best trial of sweep {study}: trial {trial}, {metric} = {value:.4f} "
        f"(MLflow run {run_id}).\n"
        f"# One run with it:  nlpflow run --config {shown}\n"
        f"# Keep it: copy the values below into the train: section of params.yaml\n"
        f"# (nlpflow params --config {shown} prints params.yaml with them merged).\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    body = yaml.safe_dump({"train": train_overlay(values)}, sort_keys=False)
    path.write_text(header + body, encoding="utf-8")
