"""The validate stage: Great Expectations on the gathered splits, then the behavioural file
against the labels the model will predict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from nlpflow.pipeline.context import StageContext
from nlpflow.pipeline.paths import ACCEPTED, GATHERED, GX_PROJECT, QUARANTINE, VALIDATED, VALIDATION


def run(ctx: StageContext) -> BaseModel:
    from nlpflow.data.validation import validate

    try:
        report = validate(
            src=ctx.path(GATHERED), dst=ctx.path(VALIDATION),
            params=ctx.params.validate_, data=ctx.params.data, gx_dir=ctx.path(GX_PROJECT),
            accepted=ctx.path(VALIDATED), quarantine=ctx.path(QUARANTINE),
            reference=accepted_profile(ctx.root, ctx.params.data.source), task=ctx.params.task,
            runtime=ctx.params.runtime,
        )  # fmt: skip
    finally:  # the report (Data Docs included) matters most when validation fails
        ctx.log_artifact(VALIDATION, "validation")
        ctx.log_artifact(QUARANTINE, "validation/quarantine")
    ctx.log_metrics(
        {"data/validation_success": 1.0,
         "data/rows_quarantined": float(sum(report.quarantined.values()))}
    )  # fmt: skip
    return _check_behavioural(ctx, report)


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


def _check_behavioural(ctx: StageContext, report: Any) -> BaseModel:
    """Before training: the behavioural file against the labels (entity types) the model will
    predict, as the NLP task checks it (nlpflow.evaluation.fit). The user's own file must fit
    (ParamsError); the sample's, as shipped, runs without its tests that name absent labels,
    and the report, the log and an MLflow tag say so."""
    import logging

    from nlpflow.evaluation.fit import check_behavioural

    setting = ctx.params.evaluate.behavioural
    if setting is None or not ctx.path(setting).is_file():
        return report  # none, or missing: evaluate reports a missing file
    labels = list(ctx.params.data.labels or sorted(report.label_counts.get("train", {})))
    fit = check_behavioural(ctx.params.task, ctx.path(setting), labels)
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
