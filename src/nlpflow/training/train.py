"""train: fit the configured model family on the preprocessed train split.

Early stopping watches the validation split. Each epoch is reported through `on_epoch`, so the
caller (the CLI stage runner or a Prefect task) can log it; this module never imports a tracker.
People watching see progress from each family through nlpflow.training.progress: a bar on a terminal,
else lines on the `nlpflow.training.train` logger.

    nlpflow stage train
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel

from nlpflow.config.nlp_tasks import DEFAULT_NLP_TASK, get_nlp_task
from nlpflow.config.params import PreprocessParams, TrainParams
from nlpflow.data.splits import load_splits
from nlpflow.training import distributed
from nlpflow.training.families import (
    SAME_AS_MODEL,
    XY,
    EpochCallback,
    TextClassifier,
    family_code,
    update_manifest,
)

log = logging.getLogger("nlpflow.train")


class TrainReport(BaseModel):
    family: str
    labels: list[str]
    epochs: int
    seconds: float
    history: list[dict[str, float]]
    augmented_rows: int = 0
    resumed_from: str | None = None  # the checkpoint a crashed run's training resumed from
    perf: dict[
        str, float
    ] = {}  # tokens/s, examples/s, FLOP/s, MFU, peak memory (step-wise families)
    device: dict[str, str] = {}  # CPU model, threads, GPU, torch and CUDA versions
    # sha256 of the model folder as train left it (nlpflow.pipeline.fingerprint.hash_path): register
    # uploads the model only if the folder still hashes to it
    model_sha256: str | None = None
    resumed_run: str | None = None  # the attempt (MLflow run) whose checkpoint this one resumed


def examples(frame: pd.DataFrame, task: str = DEFAULT_NLP_TASK) -> XY:
    """What a model of NLP task `task` learns from: its inputs and targets columns (strings,
    or lists of strings per row for per-token targets)."""
    entry = get_nlp_task(task)

    def column(name: str) -> list[Any]:
        # a missing target (topic-modeling's unlabelled rows) is "", not the text "None"
        return [[str(v) for v in value] if _is_sequence(value)
                else "" if value is None or value != value else str(value)
                for value in frame[name]]  # fmt: skip

    return column(entry.inputs), column(entry.targets)


def target_labels(targets: list[Any]) -> list[str]:
    """The labels seen in `targets`, sorted: classes, or every tag of per-token targets."""
    return sorted({t for y in targets for t in (y if isinstance(y, list) else [y])})


def _is_sequence(value: Any) -> bool:
    # Parquet gives list columns back as numpy arrays
    return isinstance(value, (list, tuple)) or getattr(value, "ndim", 0) == 1


def fit(
    train: tuple[list[str], list[str]],
    validation: tuple[list[str], list[str]],
    *,
    labels: list[str],
    params: TrainParams,
    on_epoch: EpochCallback | None = None,
    on_step: EpochCallback | None = None,
    workdir: Path | None = None,
) -> TextClassifier:
    """The family's registered fit (nlpflow.config.sections.families); each imports its heavy
    libraries only when chosen. `on_step` and `workdir` (checkpoints, for resuming) concern
    step-wise trainers only."""
    fit_family, _ = family_code(params.family)
    return fit_family(
        train, validation, labels=labels, params=params, on_epoch=on_epoch, on_step=on_step,
        workdir=workdir,
    )  # fmt: skip


def train(
    *,
    src: Path,
    dst: Path,
    history_path: Path,
    params: TrainParams,
    preprocess: PreprocessParams,
    labels: list[str] | None = None,
    on_epoch: EpochCallback | None = None,
    on_step: EpochCallback | None = None,
    checkpoints: Path | None = None,
    attempt: str | None = None,
    task: str = DEFAULT_NLP_TASK,
    root: Path | None = None,
    rendezvous: distributed.Rendezvous | None = None,
) -> TrainReport:
    """Train on `src/train.parquet` (+ validation), save the model folder to `dst`.
    `attempt`: this try's MLflow run, noted beside the checkpoints so that a try resuming
    from them can name the one it continues (TrainReport.resumed_run); `task`: the NLP task,
    whose columns the model learns from (examples); `root`: the project folder, under which
    the files params name are read (train.rules.patterns; None: the working directory);
    `rendezvous`: where the nodes of a multi-node training meet (train.distributed.nnodes >
    1; `checkpoints` must lie in its shared folder)."""
    splits = load_splits(src, ("train", "validation"))
    train_xy, val_xy = examples(splits["train"], task), examples(splits["validation"], task)
    if labels and get_nlp_task(task).targets != "label":  # data.labels names entity types
        labels = ["O", *(f"{p}-{kind}" for kind in labels for p in ("B", "I"))]
    if get_nlp_task(task).targets_optional:  # labels only score such a model (topics)
        labels = []
    else:
        labels = list(labels) if labels else target_labels(train_xy[1])
    augmented_rows = 0
    if params.augment.enabled:  # train only: validation picks the model on real texts
        from nlpflow.data.augment import augment_split

        train_xy, augmented_rows = augment_split(train_xy, params=params.augment, seed=params.seed)
    history: list[dict[str, float]] = []

    def record(epoch: int, scores: dict[str, float]) -> None:
        history.append({"epoch": epoch, **scores})
        if on_epoch is not None:
            on_epoch(epoch, scores)

    start = time.perf_counter()
    # checkpoints of this exact training (data, params, code): a rerun after a crash resumes
    workdir = checkpoints / training_key(src, params, labels) if checkpoints is not None else None
    previous_attempt = _note_attempt(workdir, attempt) if workdir is not None else None
    if workdir is not None:
        drop_partial_checkpoints(workdir)
    if distributed.wanted(params):
        model = _launch(
            train_xy, val_xy, labels=labels, params=params, workdir=workdir, rendezvous=rendezvous
        )
        for row in model.history or []:  # the workers cannot reach the tracker: replay
            record(int(row["epoch"]), {k: v for k, v in row.items() if k != "epoch"})
    else:
        # the params as written go into the manifest; the fit reads their files under `root`
        model = fit(
            train_xy, val_xy, labels=labels, params=params.under(root), on_epoch=record,
            on_step=on_step, workdir=workdir,
        )  # fmt: skip
    seconds = time.perf_counter() - start
    history = getattr(model, "history", None) or history  # complete even across a resume
    resumed_from = getattr(model, "resumed_from", None)
    perf, device = getattr(model, "perf", None) or {}, getattr(model, "device", None) or {}
    # Written beside `dst`, then swapped in whole: a crash or SIGTERM mid-write leaves no half
    # a model folder for evaluate (or `nlpflow stage evaluate`) to take for a complete one.
    partial = dst.with_name(f".{dst.name}.partial")
    _remove(partial)
    model.save(partial)
    # Record how text must be cleaned before this model sees it (the serving model reads this),
    # and the NLP task (a family may serve several: its class's load reads which).
    update_manifest(
        partial, preprocess=preprocess.model_dump(), train=params.model_dump(), task=task
    )
    if get_nlp_task(task).targets_optional:  # topics: the training mix, for drift later
        update_manifest(partial, reference_shares=reference_shares(model, train_xy[0]))
    inside = history_path.parent == dst  # the baseline keeps its history in its folder
    if inside:
        _save_history(partial / history_path.name, history)
    _swap_in(partial, dst)  # a stale model of another family does not linger either
    if not inside:
        _save_history(history_path, history)
    from nlpflow.hashing import hash_path

    model_sha256 = hash_path(dst)
    if workdir is not None:  # done: the checkpoints are not needed any more
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    return TrainReport(
        family=params.family, labels=labels, epochs=len(history), seconds=round(seconds, 2),
        history=history, augmented_rows=augmented_rows, resumed_from=resumed_from, perf=perf, device=device,
        model_sha256=model_sha256, resumed_run=previous_attempt if resumed_from else None,
    )  # fmt: skip


def reference_shares(model: Any, texts: list[str]) -> dict[str, float]:
    """Each topic's mean share of the training texts: the mix batch inference compares new
    texts with (topic-share drift), saved in the model's manifest."""
    shares = model.predict_proba(texts)
    return {t: round(float(v), 6) for t, v in zip(model.labels, shares.mean(axis=0), strict=True)}


def _remove(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _swap_in(partial: Path, dst: Path) -> None:
    """Put the complete folder `partial` at `dst` by renames: a reader finds the old folder,
    the new one, or (for an instant) none, never a mix."""
    old = dst.with_name(f".{dst.name}.old")
    _remove(old)
    if dst.exists():
        os.replace(dst, old)
    os.replace(partial, dst)
    _remove(old)


def drop_partial_checkpoints(workdir: Path) -> list[str]:
    """Delete checkpoints a killed run left half-written, and return their names. The HF
    Trainer writes `trainer_state.json` last, straight into `checkpoint-N`; without it (or
    cut short) that folder is the latest checkpoint a resume would pick, and fail on."""
    import json

    dropped = []
    for folder in (workdir, workdir / "checkpoints"):  # the latter: a torchrun training's
        for checkpoint in sorted(folder.glob("checkpoint-*")) if folder.is_dir() else []:
            try:
                json.loads((checkpoint / "trainer_state.json").read_text())
            except (OSError, ValueError):
                _remove(checkpoint)
                dropped.append(checkpoint.name)
    return dropped


ATTEMPT_FILE = "nlpflow-attempt.json"  # beside a training's checkpoints: the try that wrote them


def _note_attempt(workdir: Path, attempt: str | None) -> str | None:
    """Record `attempt` as the try writing checkpoints to `workdir`; return the earlier try
    that wrote there (a crashed one, whose checkpoints this try may resume)."""
    import json

    if attempt is None:
        return None
    marker = workdir / ATTEMPT_FILE
    try:
        previous = json.loads(marker.read_text()).get("run_id")
    except (OSError, ValueError, AttributeError):
        previous = None
    workdir.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"run_id": attempt}))
    return previous if previous != attempt else None


def _launch(
    train_xy: tuple[list[str], list[str]],
    validation: tuple[list[str], list[str]],
    *,
    labels: list[str],
    params: TrainParams,
    workdir: Path | None,
    rendezvous: distributed.Rendezvous | None,
) -> Any:
    """Global rank 0's TransformerClassifier. torchrun's processes train with their output
    captured, so the start and the end are told from here."""
    from nlpflow.training.progress import TrainingProgress

    progress, d = TrainingProgress(params.family), params.distributed
    where = f"{d.nproc_per_node} processes (torchrun)"
    if d.nnodes > 1 and rendezvous is not None:  # the other nodes: `nlpflow train-node`
        where = (f"{d.nnodes} nodes x {d.nproc_per_node} processes (torchrun), waiting for "
                 f"{d.nnodes - 1} more at {rendezvous.endpoint}, job {rendezvous.job}")  # fmt: skip
    progress.begin(examples=len(train_xy[0]), device=where)
    model = distributed.launch(
        train_xy, validation, labels=labels, params=params,
        workdir=workdir or Path(tempfile.mkdtemp(prefix="nlpflow-ddp-")), rendezvous=rendezvous,
    )  # fmt: skip
    progress.finish(getattr(model, "history", None))
    return model


def train_baseline(
    *,
    src: Path,
    dst: Path,
    params: TrainParams,
    preprocess: PreprocessParams,
    labels: list[str] | None = None,
    task: str = DEFAULT_NLP_TASK,
    family: str | None = None,
    root: Path | None = None,
) -> TrainReport:
    """The baseline family (`family`, train.baseline; None: the NLP task's own, for
    text-classification tfidf_logreg) on the same splits (its train section, train.seed, no
    augmentation): the yardstick every challenger must beat before the promotion gate lets it
    become champion."""
    from nlpflow.config.params import baseline_is_model, baseline_train

    family = family or get_nlp_task(task).baseline
    if baseline_is_model(params, family):  # train trains this very model: not twice
        return _same_as_model(dst, family)
    baseline = baseline_train(params, family)
    return train(
        src=src, dst=dst, history_path=dst / "history.csv", params=baseline,
        preprocess=preprocess, labels=labels, task=task, root=root,
    )  # fmt: skip


def _same_as_model(dst: Path, family: str) -> TrainReport:
    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir(parents=True)
    reason = (
        "train.family is the baseline's family, with the same params: the model is its own baseline"
    )
    (dst / SAME_AS_MODEL).write_text(json.dumps({"family": family, "reason": reason}) + "\n")
    log.info("baseline: %s (not trained twice)", reason)
    return TrainReport(family=family, labels=[], epochs=0, seconds=0.0, history=[])


def training_key(src: Path, params: TrainParams, labels: list[str]) -> str:
    """Hash of the training's inputs: the split files, params and labels. Not the code: the
    caller keeps `checkpoints` per version of the train stage's code (nlpflow.pipeline)."""
    import hashlib
    import json

    digest = hashlib.sha256(json.dumps([params.model_dump(mode="json"), labels]).encode())
    for name in ("train.parquet", "validation.parquet"):
        digest.update((src / name).read_bytes())
    return digest.hexdigest()[:16]


def _save_history(path: Path, history: list[dict[str, float]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = sorted({k for row in history for k in row}, key=lambda k: (k != "epoch", k))
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(history)
