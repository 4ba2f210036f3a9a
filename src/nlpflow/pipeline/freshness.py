"""Data-triggered retraining: skip a scheduled run when nothing it would learn from changed.

A flow run that completes tags its MLflow run with the fingerprints of what it trained on
(`nlpflow.snapshot_sha256`, `nlpflow.params_sha256`, `nlpflow.code_version`: the code of every
stage, nlpflow.pipeline.fingerprint.code_version) and
`nlpflow.outcome=completed`. The next run compares its freshly gathered snapshot (and its
params and code) with the latest completed run: all equal means the same model would come out,
so it records `nlpflow.outcome=skipped` with the reason and ends (params
`schedule.skip_unchanged_data`; `nlpflow run --force` runs every stage anyway).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nlpflow.pipeline.fingerprint import code_version, params_fingerprint
from nlpflow.pipeline.stages import STAGE_NAMES, StageContext, model_stage

if TYPE_CHECKING:
    from nlpflow.tracking.queries import RunView

OUTCOME = "nlpflow.outcome"
SKIP_REASON = "nlpflow.skip_reason"
# What a run did, for a person scanning a month of scheduled runs (tag nlpflow.run_kind):
TRAINED = "trained"  # train ran in this run
PARTIAL = "partial"  # train reused, later stages ran (e.g. evaluate params changed)
REUSED = "reused"  # every stage reused: the same model, nothing new to show
SKIPPED = "skipped"  # the data, params and code equal the last completed run's: ended early
RUN_KIND = "nlpflow.run_kind"
PARENT = "mlflow.parentRunId"  # MLflow's runs table folds a run under its parent


def run_fingerprints(ctx: StageContext, snapshot: str) -> dict[str, str]:
    return {
        "nlpflow.snapshot_sha256": snapshot,
        "nlpflow.params_sha256": params_fingerprint(ctx),
        "nlpflow.code_version": code_version(),
    }


def last_completed_run(ctx: StageContext) -> RunView | None:
    """The latest run of the experiment that completed (trained or reused every stage)."""
    tracker = ctx.tracked()
    experiment = tracker.experiment_id(ctx.params.register_.experiment)
    runs = tracker.search_runs(
        [experiment],
        filter_string=f"tags.`{OUTCOME}` = 'completed' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0] if runs else None


def skip_reason(ctx: StageContext, fingerprints: dict[str, str]) -> str | None:
    """Why this run need not train, or None when something changed (or nothing ran before)."""
    last = last_completed_run(ctx)
    if last is None:
        return None
    tags = last.tags
    if any(tags.get(tag) != value for tag, value in fingerprints.items()):
        return None
    snapshot = fingerprints["nlpflow.snapshot_sha256"][:12]
    return (
        f"the gathered snapshot ({snapshot}), the params and the code equal those of the last "
        f"completed run {last.run_id}: no new data to train on "
        "(schedule.skip_unchanged_data; `nlpflow run --force` runs every stage anyway)"
    )


def _folded(ctx: StageContext, kind: str, *, parent: str, note: str) -> dict[str, str]:
    """Tags that fold a run with nothing new under the run that trained its model: MLflow's
    runs table then shows one row per trained model, its re-runs and skips collapsed under
    it, and the run's name says what it was."""
    from nlpflow.config.dvcexp import experiment_name
    from nlpflow.config.naming import run_name

    name = run_name(ctx.params, experiment=experiment_name())
    return {
        RUN_KIND: kind,
        PARENT: parent,
        "mlflow.runName": f"{kind} · {name}",
        "mlflow.note.content": note,
    }


def run_kind(run_id: str, *, cached: list[str], trained_by: str) -> str:
    """What a completed run did: trained (train ran in it), reused (every stage cached), or
    partial (train reused, later stages ran)."""
    if trained_by == run_id:
        return TRAINED
    return REUSED if len(cached) == len(STAGE_NAMES) else PARTIAL


def run_kind_tags(ctx: StageContext, kind: str, *, trained_by: str) -> dict[str, str]:
    """Tags of a completed run of `kind`: a reused one is folded under `trained_by`."""
    if kind != REUSED:
        return {RUN_KIND: kind}
    note = (
        f"Every stage was reused from the cache: the model is the one run {trained_by} "
        "trained, with the same params and code. Nothing was logged again."
    )
    return _folded(ctx, REUSED, parent=trained_by, note=note)


def skipped_run_tags(ctx: StageContext, reason: str) -> dict[str, str]:
    """Tags of a run that skipped: folded under the run that trained the model in use."""
    last = last_completed_run(ctx)
    if last is None:
        return {RUN_KIND: SKIPPED}
    trainer = last.tags.get(f"nlpflow.cached.{model_stage().name}") or last.run_id
    return _folded(ctx, SKIPPED, parent=trainer, note=f"Skipped: {reason}")
