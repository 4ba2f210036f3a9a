"""The train_params stage: the train params the chosen family reads, written for train to
depend on (a knob of another family then retrains nothing)."""

from __future__ import annotations

from pydantic import BaseModel

from nlpflow.pipeline.context import StageContext
from nlpflow.pipeline.paths import TRAIN_PARAMS


class TrainParamsReport(BaseModel):
    family: str
    fields: int  # train params the family reads
    path: str


def run(ctx: StageContext) -> BaseModel:
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
