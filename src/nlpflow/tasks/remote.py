"""Prefect tasks that keep a run reproducible: push its outputs to the DVC remote, and log to
its MLflow run what `nlpflow reproduce RUN_ID` reads back.

Wired into flows/training.py, where `record_dvc` is true (a DVC project whose dvc.lock this run
writes; otherwise there is nothing recorded to push):

    push_to_remote(ctx, stages=("gather", "validate"))   # after validate: the accepted snapshot
    push_to_remote(ctx, stages=("train", "baseline"))    # after register: the models
    record_reproduction(ctx, dvc_lock=record_dvc)        # last, before end_tracking
"""

from __future__ import annotations

from prefect.artifacts import create_markdown_artifact

from nlpflow.pipeline.remote import push, record_for_reproduction, resolve_remote
from nlpflow.pipeline.stages import StageContext
from nlpflow.tasks.stages import nlpflow_task


@nlpflow_task("push-to-remote", retries=2)
def push_to_remote(ctx: StageContext, *, stages: tuple[str, ...]) -> str:
    """Push the outputs dvc.lock records for `stages`; returns DVC's summary line."""
    remote = resolve_remote(ctx.root, ctx.settings)
    said = push(ctx.root, stages, remote=remote)
    create_markdown_artifact(
        f"## DVC push\n\n{', '.join(stages)} -> `{remote.url}`: {said}\n",
        key=f"nlpflow-push-{'-'.join(stages)}",
    )
    return said


@nlpflow_task("record-reproduction", retries=2)
def record_reproduction(ctx: StageContext, *, dvc_lock: bool) -> None:
    """Log the effective params, and dvc.lock and the remote when this run wrote the lock."""
    record_for_reproduction(ctx, dvc_lock=dvc_lock)
