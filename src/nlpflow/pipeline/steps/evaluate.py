"""The evaluate stage: the model and the baseline scored on the test split (metrics, plots,
slices, behavioural tests)."""

from __future__ import annotations

from pydantic import BaseModel

from nlpflow.pipeline.context import StageContext
from nlpflow.pipeline.paths import BASELINE, EVALUATION, METRICS, MODEL, PLOTS, PROCESSED


def run(ctx: StageContext) -> BaseModel:
    from nlpflow.evaluation.evaluate import evaluate

    behavioural = ctx.params.evaluate.behavioural
    report = evaluate(
        model_dir=ctx.path(MODEL), baseline_dir=ctx.path(BASELINE), src=ctx.path(PROCESSED),
        metrics_path=ctx.path(METRICS), plots_dir=ctx.path(PLOTS), out_dir=ctx.path(EVALUATION),
        params=ctx.params.evaluate, task=ctx.params.task,
        behavioural=ctx.path(behavioural) if behavioural is not None else None,
    )  # fmt: skip
    from nlpflow.pipeline.dvc_plots import ensure_offline_plots

    ensure_offline_plots(ctx.path(PLOTS))  # `dvc plots show` draws these without a CDN
    # test/<metric>, the interval, slice/<name>/<main>, behavioural/ and baseline/ scores
    ctx.log_metrics(report.tracked_metrics())
    if ctx.tracker is not None and ctx.run_id is not None:  # the splits, as MLflow datasets
        ctx.tracker.log_datasets(ctx.run_id, folder=ctx.path(PROCESSED), params=ctx.params)
    ctx.log_artifact(METRICS, "evaluation")
    ctx.log_artifact(PLOTS, "evaluation")
    ctx.log_artifact(EVALUATION, "evaluation")
    return report
