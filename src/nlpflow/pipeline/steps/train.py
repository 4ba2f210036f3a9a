"""The train stage: the chosen family trained on data/processed into models/model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from nlpflow.pipeline.codedeps import code_hash
from nlpflow.pipeline.context import MODEL_SHA256, RESUMED_FROM, StageContext
from nlpflow.pipeline.paths import CHECKPOINTS, MODEL, PROCESSED, TRAIN_HISTORY

if TYPE_CHECKING:
    from nlpflow.tracking.tracker import Tracker


def run(ctx: StageContext) -> BaseModel:
    from nlpflow.config.naming import epoch_metrics
    from nlpflow.training.distributed import Rendezvous
    from nlpflow.training.train import train

    # checkpoints are kept per version of this stage's code (the notion of "the code changed"
    # the stage's cache key and dvc.yaml share), then by training key (data, params, labels);
    # under NLPFLOW_CHECKPOINT_DIR, which the nodes of a multi-node training share
    shared = ctx.settings.resolved_checkpoint_dir(ctx.path(CHECKPOINTS))
    checkpoints = shared / code_hash(__name__)[:16]
    report = train(
        src=ctx.path(PROCESSED), dst=ctx.path(MODEL), history_path=ctx.path(TRAIN_HISTORY),
        params=ctx.params.train, preprocess=ctx.params.preprocess, labels=ctx.params.data.labels,
        task=ctx.params.task,
        on_epoch=lambda epoch, scores: ctx.log_metrics(epoch_metrics(scores), step=epoch),
        on_step=lambda step, scores: ctx.log_metrics(
            {f"step/{k.removeprefix('train_')}": v for k, v in scores.items()}, step=step
        ),
        checkpoints=checkpoints, attempt=ctx.run_id, root=ctx.root,
        rendezvous=Rendezvous.from_settings(ctx.settings, shared=shared),
    )  # fmt: skip
    ctx.log_metrics({"train/seconds": report.seconds, "train/epochs": report.epochs})
    ctx.log_metrics({f"perf/{k}": v for k, v in report.perf.items()})
    if ctx.tracker is not None and ctx.run_id is not None:
        _tag_training(ctx.tracker, ctx.run_id, report)
    ctx.log_artifact(TRAIN_HISTORY, "training")
    return report


def _tag_training(tracker: Tracker, run_id: str, report: Any) -> None:
    """The device, the model's fingerprint on the run; a resumed training's link to the
    attempt it continued, both ways (the old run gets a note pointing at this one)."""
    if report.device:
        tracker.set_tags(run_id, {f"device.{k}": v for k, v in report.device.items()})
    if report.model_sha256:
        tracker.set_tags(run_id, {MODEL_SHA256: report.model_sha256})
    if report.resumed_run:
        tracker.set_tags(run_id, {RESUMED_FROM: report.resumed_run})
        note = (f"Training was interrupted here; run {run_id} resumed it from checkpoint "
                f"{report.resumed_from} and finished it.")  # fmt: skip
        tracker.set_tags(
            report.resumed_run, {"nlpflow.resumed_by": run_id, "mlflow.note.content": note}
        )
