"""The train_params stage: the train params the chosen family reads, written for train to
depend on (a knob of another family then retrains nothing), and the same for the baseline
stage's family (train.baseline, or the NLP task's own)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from nlpflow.pipeline.context import StageContext
from nlpflow.pipeline.paths import BASELINE_PARAMS, TRAIN_PARAMS


class TrainParamsReport(BaseModel):
    family: str
    fields: int  # train params the family reads
    path: str
    baseline: str = ""  # the baseline stage's family ("": a report of before it was written)


def _write(path: Path, tree: dict[str, Any]) -> None:
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(tree, sort_keys=True)
    if not path.is_file() or path.read_text() != text:  # unchanged: keep its mtime too
        path.write_text(text)


def run(ctx: StageContext) -> BaseModel:
    from nlpflow.config.params import baseline_is_model, baseline_train, flatten, read_by_train

    chosen = {"train": read_by_train(ctx.params.train)}
    _write(ctx.path(TRAIN_PARAMS), chosen)
    family = ctx.params.baseline_family
    # same_as_model flips when train's own family or params do: the baseline stage (which
    # then trains nothing) must run again, though its family's knobs did not change
    _write(
        ctx.path(BASELINE_PARAMS),
        {"train": read_by_train(baseline_train(ctx.params.train, family)),
         "same_as_model": baseline_is_model(ctx.params.train, family)},
    )  # fmt: skip
    return TrainParamsReport(
        family=ctx.params.train.family, fields=len(flatten(chosen)), path=TRAIN_PARAMS,
        baseline=family,
    )  # fmt: skip
