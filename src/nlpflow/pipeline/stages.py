"""The one stage table both runners execute.

`dvc.yaml` runs `nlpflow stage NAME`; the Prefect flow runs one task per stage. Both call
`run_stage`, which runs the stage's library function on the paths below and logs its report
to the pipeline's MLflow run. A test keeps `dvc.yaml` in step with this table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from nlpflow.config.params import Params
from nlpflow.config.settings import Settings
from nlpflow.errors import NlpflowError

GATHERED = "data/gathered"
VALIDATION = "reports/validation"
VALIDATED = "data/validated"  # the gathered rows that passed validation (quarantined ones left out)
QUARANTINE = "data/quarantine"
GX_PROJECT = "gx"  # the Great Expectations project, under version control
ACCEPTED = ".nlpflow/accepted"  # last accepted snapshot of each source, for drift checks
PROCESSED = "data/processed"
# The train params the chosen family reads (nlpflow.config.params.read_by_train): what train depends
# on, so a knob of another family (train.svm.C on a transformer), or the baseline's tf-idf, does
# not retrain the model in either runner.
TRAIN_PARAMS = "models/train_params.yaml"
MODEL = "models/model"
BASELINE = "models/baseline"  # tfidf_logreg on the same data: the yardstick of the promotion gate
TRAIN_HISTORY = "reports/train_history.csv"
METRICS = "reports/metrics.json"
PLOTS = "reports/plots"
EVALUATION = "reports/evaluation"  # predictions, slices, behavioural results, worst errors
BEHAVIOURAL = "behavioural.yaml"  # the project's behavioural tests (evaluate.behavioural)
REGISTRATION = "reports/registration.json"
MODEL_CARD = "reports/model_card.md"
HTTP_CACHE = ".nlpflow/cache/http"  # downloads, by URL; not a pipeline output
CHECKPOINTS = ".nlpflow/checkpoints"  # of unfinished trainings, by training key; not logged
PREPROCESS_CACHE = ".nlpflow/cache/preprocess"  # outputs by hash of input, params and code
SQL_SNAPSHOT = ".nlpflow/cache/sql/snapshot.parquet"  # the query's rows, as gather reads them


class StageContext:
    """What a stage needs: where the project is, its params and settings, and the run to log to.

    A plain class on purpose, not a dataclass: Prefect rebuilds dataclass task arguments while
    looking for futures inside them, and every task must share this one object (and its client).
    """

    def __init__(
        self,
        *,
        root: Path,
        params: Params,
        settings: Settings,
        tracker: Any = None,  # nlpflow.tracking.tracker.Tracker; None runs a stage without tracking
        run_id: str | None = None,
    ) -> None:
        self.root = root
        self.params = params
        self.settings = settings
        self.tracker = tracker
        self.run_id = run_id

    def path(self, relative: str) -> Path:
        return self.root / relative

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        if self.tracker is not None and self.run_id is not None:
            self.tracker.log_metrics(self.run_id, metrics, step=step)

    def log_artifact(self, relative: str, artifact_path: str | None = None) -> None:
        if self.tracker is not None and self.run_id is not None:
            self.tracker.log_artifact(self.run_id, self.path(relative), artifact_path)


@dataclass(frozen=True)
class Stage:
    name: str
    deps: tuple[str, ...]  # data the stage reads (its code is added by dvc.yaml)
    outs: tuple[str, ...]  # everything it writes
    params: tuple[str, ...]  # params.yaml sections it reads
    run: Callable[[StageContext], BaseModel] = field(repr=False)
    # Prefect retries: I/O stages (transient network and database errors), and train, which
    # resumes from its last checkpoint after a crash (train.checkpoints.resume: auto)
    retries: int = 0
    # False: bookkeeping that logs nothing; run alone by `dvc repro` (a knob no other stage
    # reads changed) it must not open an MLflow run that no later stage would close
    tracked: bool = True


def _gather(ctx: StageContext) -> BaseModel:
    from nlpflow.data.gather import gather

    local, params = _local_source(ctx)
    report = gather(source=local, dst=ctx.path(GATHERED), params=params)
    ctx.log_metrics({f"data/rows_{split}": n for split, n in report.rows.items()})
    if ctx.tracker is not None and ctx.run_id is not None:
        ctx.tracker.set_tags(ctx.run_id, {"data.source_sha256": report.source_sha256})
    return report


def _local_source(ctx: StageContext) -> tuple[Path, Any]:
    """The file gather reads: a download, a snapshot of a query's rows or of a Hugging Face
    dataset's splits, or the path itself."""
    from nlpflow.data.sources import (
        fetch_http,
        is_database_url,
        is_hf,
        is_url,
        read_sql,
        snapshot_hf,
    )
    from nlpflow.errors import DataSourceError

    data = ctx.params.data
    if is_url(data.source):
        return fetch_http(data.source, cache=ctx.path(HTTP_CACHE), sha256=data.sha256), data
    if is_hf(data.source):
        snapshot, fingerprints = snapshot_hf(
            data.source, root=ctx.root, resolve=ctx.settings.resolve_data,
            config=data.hf_config, revision=data.hf_revision,
        )  # fmt: skip
        return snapshot, data.model_copy(
            update={"format": "parquet", "hf_fingerprint": fingerprints}
        )
    if not is_database_url(data.source):
        return ctx.settings.resolve_data(data.source), data
    frame, cutoff = read_sql(
        data.source, query=data.query, timestamp_column=data.timestamp_column, cutoff=data.cutoff
    )
    if frame.empty:
        raise DataSourceError(
            f"data.query returned no rows (cut-off {cutoff}): nothing to train on."
        )
    snapshot = ctx.path(SQL_SNAPSHOT)
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(snapshot, index=False)
    # the manifest records the cut-off actually used, so the snapshot can be gathered again
    return snapshot, data.model_copy(update={"cutoff": cutoff, "format": "parquet"})


def accepted_profile(root: Path, source: str) -> Path:
    """One accepted-snapshot profile per data source: switching to another dataset (another
    config) must not count as drift of the first."""
    import hashlib
    import re

    from nlpflow.config.secrets import redact

    # named from the masked source: a file name must not hold a password, nor a short hash of
    # one (a weak password is found from it by trying); unchanged for sources without one
    shown = redact(source)
    slug = re.sub(r"[^A-Za-z0-9]+", "_", shown).strip("_")[-60:]
    digest = hashlib.sha256(shown.encode()).hexdigest()[:12]
    return root / ACCEPTED / f"{slug}-{digest}.json"


def _validate(ctx: StageContext) -> BaseModel:
    from nlpflow.data.validation import validate

    try:
        report = validate(
            src=ctx.path(GATHERED), dst=ctx.path(VALIDATION),
            params=ctx.params.validate_, data=ctx.params.data, gx_dir=ctx.path(GX_PROJECT),
            accepted=ctx.path(VALIDATED), quarantine=ctx.path(QUARANTINE),
            reference=accepted_profile(ctx.root, ctx.params.data.source),
        )  # fmt: skip
    finally:  # the report (Data Docs included) matters most when validation fails
        ctx.log_artifact(VALIDATION, "validation")
        ctx.log_artifact(QUARANTINE, "validation/quarantine")
    ctx.log_metrics(
        {"data/validation_success": 1.0,
         "data/rows_quarantined": float(sum(report.quarantined.values()))}
    )  # fmt: skip
    return _check_behavioural(ctx, report)


def _check_behavioural(ctx: StageContext, report: Any) -> BaseModel:
    """Before training: the behavioural file against the labels the model will predict. The
    user's own file must fit (ParamsError); the sample's, as shipped, runs without its tests
    that name absent labels, and the report, the log and an MLflow tag say so."""
    import logging

    from nlpflow.evaluation.behavioural import check_fit

    setting = ctx.params.evaluate.behavioural
    if setting is None or not ctx.path(setting).is_file():
        return report  # none, or missing: evaluate reports a missing file
    labels = list(ctx.params.data.labels or sorted(report.label_counts.get("train", {})))
    fit = check_fit(ctx.path(setting), labels)
    warning = fit.warning()
    if warning is None:
        return report
    logging.getLogger("nlpflow.validate").warning(warning)
    if ctx.tracker is not None and ctx.run_id is not None:
        ctx.tracker.set_tags(
            ctx.run_id,
            {"behavioural.left_out": ", ".join(fit.left_out), "behavioural.warning": warning},
        )
    return report.model_copy(update={"warnings": [*report.warnings, warning]})


def _preprocess(ctx: StageContext) -> BaseModel:
    from nlpflow.data.preprocess import preprocess

    report = preprocess(
        src=ctx.path(VALIDATED), dst=ctx.path(PROCESSED), params=ctx.params.preprocess,
        cache=ctx.path(PREPROCESS_CACHE),
    )  # fmt: skip
    ctx.log_metrics({"perf/preprocess_texts_per_second": report.texts_per_second})
    return report


class TrainParamsReport(BaseModel):
    family: str
    fields: int  # train params the family reads
    path: str


def _train_params(ctx: StageContext) -> BaseModel:
    import yaml

    from nlpflow.config.params import flatten, read_by_train

    chosen = {"train": read_by_train(ctx.params.train)}
    path = ctx.path(TRAIN_PARAMS)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(chosen, sort_keys=True)
    if not path.is_file() or path.read_text() != text:  # unchanged: keep its mtime too
        path.write_text(text)
    return TrainParamsReport(
        family=ctx.params.train.family, fields=len(flatten(chosen)), path=TRAIN_PARAMS
    )


def _train(ctx: StageContext) -> BaseModel:
    from nlpflow.config.naming import epoch_metrics
    from nlpflow.training.train import train

    report = train(
        src=ctx.path(PROCESSED), dst=ctx.path(MODEL), history_path=ctx.path(TRAIN_HISTORY),
        params=ctx.params.train, preprocess=ctx.params.preprocess, labels=ctx.params.data.labels,
        on_epoch=lambda epoch, scores: ctx.log_metrics(epoch_metrics(scores), step=epoch),
        on_step=lambda step, scores: ctx.log_metrics(
            {f"step/{k.removeprefix('train_')}": v for k, v in scores.items()}, step=step
        ),
        checkpoints=ctx.path(CHECKPOINTS), attempt=ctx.run_id,
    )  # fmt: skip
    ctx.log_metrics({"train/seconds": report.seconds, "train/epochs": report.epochs})
    ctx.log_metrics({f"perf/{k}": v for k, v in report.perf.items()})
    if ctx.tracker is not None and ctx.run_id is not None and report.device:
        ctx.tracker.set_tags(ctx.run_id, {f"device.{k}": v for k, v in report.device.items()})
    if ctx.tracker is not None and ctx.run_id is not None:
        _tag_training(ctx, report)
    ctx.log_artifact(TRAIN_HISTORY, "training")
    return report


MODEL_SHA256 = "nlpflow.model_sha256"  # run tag: the model folder train wrote (register checks it)
RESUMED_FROM = "nlpflow.resumed_from"  # run tag: the killed attempt whose checkpoint it resumed


def _tag_training(ctx: StageContext, report: Any) -> None:
    """The model's fingerprint on the run; a resumed training's link to the attempt it
    continued, both ways (the old run gets a note pointing at this one)."""
    assert ctx.tracker is not None and ctx.run_id is not None
    if report.model_sha256:
        ctx.tracker.set_tags(ctx.run_id, {MODEL_SHA256: report.model_sha256})
    if report.resumed_run:
        ctx.tracker.set_tags(ctx.run_id, {RESUMED_FROM: report.resumed_run})
        note = (f"Training was interrupted here; run {ctx.run_id} resumed it from checkpoint "
                f"{report.resumed_from} and finished it.")  # fmt: skip
        ctx.tracker.set_tags(
            report.resumed_run, {"nlpflow.resumed_by": ctx.run_id, "mlflow.note.content": note}
        )


def _baseline(ctx: StageContext) -> BaseModel:
    from nlpflow.training.train import train_baseline

    report = train_baseline(
        src=ctx.path(PROCESSED), dst=ctx.path(BASELINE), params=ctx.params.train,
        preprocess=ctx.params.preprocess, labels=ctx.params.data.labels,
    )  # fmt: skip
    ctx.log_metrics({"baseline/train_seconds": report.seconds})
    return report


def _evaluate(ctx: StageContext) -> BaseModel:
    from nlpflow.evaluation.evaluate import evaluate

    behavioural = ctx.params.evaluate.behavioural
    report = evaluate(
        model_dir=ctx.path(MODEL), baseline_dir=ctx.path(BASELINE), src=ctx.path(PROCESSED),
        metrics_path=ctx.path(METRICS), plots_dir=ctx.path(PLOTS), out_dir=ctx.path(EVALUATION),
        params=ctx.params.evaluate,
        behavioural=ctx.path(behavioural) if behavioural is not None else None,
    )  # fmt: skip
    # test/<metric>, the interval, slice/<name>/<main>, behavioural/ and baseline/ scores
    ctx.log_metrics(report.tracked_metrics())
    if ctx.tracker is not None and ctx.run_id is not None:  # the splits, as MLflow datasets
        ctx.tracker.log_datasets(ctx.run_id, folder=ctx.path(PROCESSED), params=ctx.params)
    ctx.log_artifact(METRICS, "evaluation")
    ctx.log_artifact(PLOTS, "evaluation")
    ctx.log_artifact(EVALUATION, "evaluation")
    return report


def _register(ctx: StageContext) -> BaseModel:
    from nlpflow.release.registry import register
    from nlpflow.tracking.tracker import dvc_hash_tags

    if ctx.tracker is None or ctx.run_id is None:
        raise NlpflowError(
            "register needs an MLflow run: run it through `nlpflow stage` or the flow"
        )
    ctx.tracker.set_tags(ctx.run_id, dvc_hash_tags(ctx.root))
    trained = ctx.tracker.client.get_run(ctx.run_id).data.tags.get(MODEL_SHA256)
    report = register(
        expected_model_sha256=trained,  # what this run's train stage wrote (or reused)
        model_dir=ctx.path(MODEL), metrics_path=ctx.path(METRICS),
        evaluation=ctx.path(EVALUATION), dst=ctx.path(REGISTRATION), card=ctx.path(MODEL_CARD),
        params=ctx.params, tracker=ctx.tracker, run_id=ctx.run_id,
        model_name=ctx.settings.registered_model, data_manifest=ctx.path(GATHERED) / "manifest.json",
    )  # fmt: skip
    ctx.log_artifact(MODEL_CARD, "registration")
    ctx.log_artifact(REGISTRATION, "registration")
    return report


STAGES: tuple[Stage, ...] = (
    Stage("gather", (), (GATHERED,), ("data",), _gather, retries=2),
    Stage(
        "validate",
        (GATHERED, GX_PROJECT, BEHAVIOURAL),  # the behavioural file must fit the data's labels
        (VALIDATION, VALIDATED, QUARANTINE),
        ("data", "validate", "evaluate.behavioural"),
        _validate,
    ),
    Stage("preprocess", (VALIDATED,), (PROCESSED,), ("preprocess",), _preprocess),
    Stage("train_params", (), (TRAIN_PARAMS,), ("train",), _train_params, tracked=False),
    Stage(
        "train",
        (PROCESSED, TRAIN_PARAMS),
        (MODEL, TRAIN_HISTORY),
        ("data.labels", "preprocess"),
        _train,
        retries=1,
    ),
    Stage(
        "baseline",
        (PROCESSED,),
        (BASELINE,),
        ("data.labels", "train.seed", "train.tfidf"),
        _baseline,
    ),
    Stage(
        "evaluate",
        (MODEL, BASELINE, PROCESSED, BEHAVIOURAL),
        (METRICS, PLOTS, EVALUATION),
        ("evaluate",),
        _evaluate,
    ),
    Stage(
        "register",
        (MODEL, METRICS, EVALUATION),
        (REGISTRATION, MODEL_CARD),
        ("evaluate", "register", "serve"),
        _register,
        retries=2,
    ),
)
STAGE_NAMES = tuple(s.name for s in STAGES)


def get_stage(name: str) -> Stage:
    for stage in STAGES:
        if stage.name == name:
            return stage
    raise NlpflowError(f"unknown stage {name!r}; stages are {', '.join(STAGE_NAMES)}")


def run_stage(name: str, ctx: StageContext) -> BaseModel:
    return get_stage(name).run(ctx)
