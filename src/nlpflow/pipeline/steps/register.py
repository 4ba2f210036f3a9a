"""The register stage: the model logged to MLflow and registered, past the promotion gate."""

from __future__ import annotations

from pydantic import BaseModel

from nlpflow.errors import NlpflowError
from nlpflow.pipeline.context import MODEL_SHA256, StageContext
from nlpflow.pipeline.paths import EVALUATION, GATHERED, METRICS, MODEL, MODEL_CARD, REGISTRATION


def run(ctx: StageContext) -> BaseModel:
    import logging

    from nlpflow.config.naming import registered_model_name
    from nlpflow.release.registry import register
    from nlpflow.tracking.tracker import dvc_hash_tags

    if ctx.tracker is None or ctx.run_id is None:
        raise NlpflowError(
            "register needs an MLflow run: run it through `nlpflow stage` or the flow"
        )
    ctx.tracker.set_tags(ctx.run_id, dvc_hash_tags(ctx.root))
    trained = ctx.tracker.get_run(ctx.run_id).tags.get(MODEL_SHA256)
    name = registered_model_name(ctx.params, ctx.settings.registered_model)
    logging.getLogger("nlpflow.register").info("register: %s", name.line)
    report = register(
        expected_model_sha256=trained,  # what this run's train stage wrote (or reused)
        model_dir=ctx.path(MODEL), metrics_path=ctx.path(METRICS),
        evaluation=ctx.path(EVALUATION), dst=ctx.path(REGISTRATION), card=ctx.path(MODEL_CARD),
        params=ctx.params, tracker=ctx.tracker, run_id=ctx.run_id,
        model_name=name.name, name_origin=name.origin,
        data_manifest=ctx.path(GATHERED) / "manifest.json", root=ctx.root,
    )  # fmt: skip
    ctx.log_artifact(MODEL_CARD, "registration")
    ctx.log_artifact(REGISTRATION, "registration")
    return report
