"""The preprocess stage: spaCy cleaning of the validated splits into data/processed."""

from __future__ import annotations

from pydantic import BaseModel

from nlpflow.pipeline.codedeps import code_hash
from nlpflow.pipeline.context import StageContext
from nlpflow.pipeline.paths import PREPROCESS_CACHE, PROCESSED, VALIDATED


def run(ctx: StageContext) -> BaseModel:
    from nlpflow.config.nlp_tasks import get_nlp_task
    from nlpflow.data.preprocess import preprocess

    # cached outputs are kept per version of this stage's code, the same notion of "the code
    # changed" as the stage's own cache key and dvc.yaml: preprocess keys them on input and params
    cache = ctx.path(PREPROCESS_CACHE) / code_hash(__name__)[:16]
    report = preprocess(
        src=ctx.path(VALIDATED), dst=ctx.path(PROCESSED), params=ctx.params.preprocess,
        cache=cache, keep_text=get_nlp_task(ctx.params.task).keeps_text,
        runtime=ctx.params.runtime,
    )  # fmt: skip
    ctx.log_metrics({"perf/preprocess_texts_per_second": report.texts_per_second})
    return report
