"""Data-triggered retraining: skip a scheduled run when nothing it would learn from changed.

A flow run that completes tags its MLflow run with the fingerprints of what it trained on
(`nlpflow.snapshot_sha256`, `nlpflow.params_sha256`, `nlpflow.code_version`) and
`nlpflow.outcome=completed`. The next run compares its freshly gathered snapshot (and its
params and code) with the latest completed run: all equal means the same model would come out,
so it records `nlpflow.outcome=skipped` with the reason and ends (params
`schedule.skip_unchanged_data`; `nlpflow run --force` runs every stage anyway).
"""

from __future__ import annotations

from typing import Any

from nlpflow.fingerprint import code_version, params_fingerprint
from nlpflow.stages import StageContext

OUTCOME = "nlpflow.outcome"
SKIP_REASON = "nlpflow.skip_reason"


def run_fingerprints(ctx: StageContext, snapshot: str) -> dict[str, str]:
    return {
        "nlpflow.snapshot_sha256": snapshot,
        "nlpflow.params_sha256": params_fingerprint(ctx),
        "nlpflow.code_version": code_version(),
    }


def last_completed_run(ctx: StageContext) -> Any | None:
    """The latest run of the experiment that completed (trained or reused every stage)."""
    assert ctx.tracker is not None
    experiment = ctx.tracker.experiment_id(ctx.params.register_.experiment)
    runs = ctx.tracker.client.search_runs(
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
    tags = last.data.tags
    if any(tags.get(tag) != value for tag, value in fingerprints.items()):
        return None
    snapshot = fingerprints["nlpflow.snapshot_sha256"][:12]
    return (
        f"the gathered snapshot ({snapshot}), the params and the code equal those of the last "
        f"completed run {last.info.run_id}: no new data to train on "
        "(schedule.skip_unchanged_data; `nlpflow run --force` runs every stage anyway)"
    )
