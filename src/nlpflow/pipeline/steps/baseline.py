"""The baseline stage: the baseline family (train.baseline, else the NLP task's own:
text-classification tfidf_logreg) on the same data, the yardstick of the promotion gate."""

from __future__ import annotations

from pydantic import BaseModel

from nlpflow.pipeline.context import StageContext
from nlpflow.pipeline.paths import BASELINE, PROCESSED


def run(ctx: StageContext) -> BaseModel:
    from nlpflow.training.train import train_baseline

    report = train_baseline(
        src=ctx.path(PROCESSED), dst=ctx.path(BASELINE), params=ctx.params.train,
        preprocess=ctx.params.preprocess, labels=ctx.params.data.labels, task=ctx.params.task,
        family=ctx.params.baseline_family, root=ctx.root,
    )  # fmt: skip
    ctx.log_metrics({"baseline/train_seconds": report.seconds})
    return report
