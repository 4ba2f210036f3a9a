"""One chunk of batch inference, as a worker runs it: check its rows, score the valid ones,
commit predictions and rejected rows (nlpflow.serving.batch.progress), return its counts.

    info = describe_model(settings, ref, max_chars=2000, max_batch=64)   # on a worker
    summary = process_chunk(ChunkJob(...))                                 # on a worker

A worker (a process of this machine, a Dask or Ray worker: nlpflow.config.engine) loads each
model version once and keeps it for the chunks that follow (`_MODELS`). Everything a job
holds is plain and picklable: it travels to the worker.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel

from nlpflow.config.settings import Settings
from nlpflow.serving.batch.checks import shape_rows, validate_rows
from nlpflow.serving.batch.plan import INPUT_LABEL, ROW, InferencePlan
from nlpflow.serving.batch.progress import ChunkSummary, commit_chunk
from nlpflow.serving.batch.score import (
    LoadedModel,
    build_predictions,
    load_version,
    rejected_rows,
    score_rows,
)
from nlpflow.tracking.refs import ModelRef


class ModelInfo(BaseModel):
    """What the coordinator needs of the model, without holding it."""

    name: str
    version: int
    alias: str | None
    max_chars: int
    max_batch: int
    output_columns: list[str]
    task: str
    served_config: dict[str, Any] = {}  # the version's model_config: limits, input shaping

    @property
    def ref(self) -> ModelRef:
        return ModelRef(self.name, self.version, self.alias)


@dataclass
class ChunkJob:
    plan: InferencePlan
    settings: Settings
    model: ModelInfo
    job: str  # the inference job (nlpflow.serving.batch.progress) this chunk belongs to
    input_key: str  # that job's identity
    chunk: int
    first_row: int
    frame: pd.DataFrame  # the chunk's rows, as read
    repeated: np.ndarray | None  # ids repeated anywhere in the input (checks.repeated_ids)
    run_id: str
    scored_at: datetime
    threads: int  # torch threads of the worker (cores / workers)


_MODELS: dict[tuple[str, str, int], LoadedModel] = {}


def _loaded(settings: Settings, ref: ModelRef, *, max_chars: int, max_batch: int) -> LoadedModel:
    """The version, loaded once per worker process."""
    from nlpflow.tracking.tracker import Tracker

    key = (settings.resolved_tracking_uri, ref.name, ref.version)
    if key not in _MODELS:
        tracker = Tracker(settings)
        _MODELS[key] = load_version(tracker, ref, max_chars=max_chars, max_batch=max_batch)
    return _MODELS[key]


def describe_model(
    settings: Settings, ref: ModelRef, *, max_chars: int, max_batch: int
) -> ModelInfo:
    """Load the version (kept for this worker's chunks) and say what the coordinator needs."""
    model = _loaded(settings, ref, max_chars=max_chars, max_batch=max_batch)
    return ModelInfo(
        name=ref.name, version=ref.version, alias=ref.alias, max_chars=model.max_chars,
        max_batch=model.max_batch, output_columns=model.output_columns, task=model.task,
        served_config=model.config,
    )  # fmt: skip


def _limit_threads(threads: int) -> None:
    """Workers sharing the cores: each torch process takes its share, not every core."""
    import sys

    if threads > 0 and "torch" in sys.modules:
        import torch

        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


def process_chunk(job: ChunkJob) -> ChunkSummary:
    """Check, score and commit one chunk; its counts. A chunk of the job already committed
    (by an earlier attempt, or a run beside this one) is left as it is."""
    from nlpflow.serving.nlp import output

    start = time.perf_counter()
    plan, info = job.plan, job.model
    model = _loaded(job.settings, info.ref, max_chars=info.max_chars, max_batch=info.max_batch)
    _limit_threads(job.threads)
    checked = validate_rows(
        shape_rows(job.frame, plan.input_shape), text_column=plan.text_column, id_column=plan.id_column,
        max_chars=model.max_chars, on_invalid=plan.on_invalid, first_row=job.first_row,
        repeated=job.repeated,
    )  # fmt: skip
    scores = score_rows(
        model, checked.valid, text_column=plan.text_column, batch_size=plan.batch_size
    )
    predictions = build_predictions(
        checked.valid, scores, id_column=plan.id_column, ref=info.ref,
        scored_at=job.scored_at, run_id=job.run_id,
    )  # fmt: skip
    labels = plan.input_shape.labels(job.frame)
    if labels is not None:  # a labelled input: its labels as gather made them, to compare
        by_row = pd.Series(
            labels.to_numpy(), index=range(job.first_row, job.first_row + len(labels))
        )
        predictions.insert(
            list(predictions.columns).index("model_name"), INPUT_LABEL,
            predictions[ROW].map(by_row).astype(object),
        )  # fmt: skip
    rejected = rejected_rows(checked, ref=info.ref, scored_at=job.scored_at, run_id=job.run_id)
    role = output(model.task)
    counted, counts = role.answer_counts(predictions)
    summary = ChunkSummary(
        chunk=job.chunk, first_row=job.first_row, rows_read=checked.rows_read,
        rows_valid=len(checked.valid), rows_rejected=len(checked.rejected),
        rows_scored=len(predictions), failed=checked.failed, counted=counted, counts=counts,
        drift=role.answer_drift(predictions, model.pyfunc.unwrap_python_model().model),
        model_version=info.version, run_id=job.run_id, seconds=0.0,
        worker=f"{socket.gethostname()}:{os.getpid()}",
    )  # fmt: skip
    summary.seconds = round(time.perf_counter() - start, 3)
    return commit_chunk(
        plan,
        job=job.job,
        input_key=job.input_key,
        predictions=predictions,
        rejected=rejected,
        summary=summary,
    )
