"""Scoring: exactly one registered version (its alias resolved once, by
nlpflow.tracking.refs.resolve_model), loaded with its own serving limits, run on the valid rows
in batches of at most its max_batch; each output row carries the model version, run id and time.

    model = load_version(tracker, ref, max_chars=2000, max_batch=64)
    scores = score_rows(model, checked.valid, text_column="text", batch_size=64)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from nlpflow.errors import ModelError, ParamsError
from nlpflow.serving.batch.checks import CheckedRows
from nlpflow.serving.batch.plan import ROW
from nlpflow.tracking.refs import ModelRef

if TYPE_CHECKING:
    from nlpflow.tracking.tracker import Tracker


@dataclass
class LoadedModel:
    ref: ModelRef
    pyfunc: Any
    max_chars: int
    max_batch: int
    output_columns: list[str]  # label, score, proba_<label>... as the signature declares
    task: str  # the NLP task of the model's family (nlpflow.config.nlp_tasks)
    config: dict[str, Any]  # its model_config: serving limits, the input's shaping


def load_version(tracker: Tracker, ref: ModelRef, *, max_chars: int, max_batch: int) -> LoadedModel:
    """Load exactly `ref.version`; its serving limits come from the version's model_config
    (what the registered model enforces), else from the given defaults (params.serve)."""
    from nlpflow.serving.nlp import model_task

    model = tracker.load_version(ref.name, ref.version)  # a ModelError when it cannot load
    config = dict(model.model_config or {})
    schema = model.metadata.get_output_schema()
    columns = list(schema.input_names()) if schema is not None else ["label", "score"]
    return LoadedModel(
        ref=ref, pyfunc=model, max_chars=int(config.get("max_chars") or max_chars),
        max_batch=int(config.get("max_batch") or max_batch), output_columns=[str(c) for c in columns],
        task=model_task(model.unwrap_python_model().model), config=config,
    )  # fmt: skip


def score_rows(
    model: LoadedModel, valid: pd.DataFrame, *, text_column: str, batch_size: int
) -> pd.DataFrame:
    """label, score, proba_<label>... per valid row, in input order, batch by batch."""
    size = max(1, min(batch_size, model.max_batch))  # a larger request the model would refuse
    texts = valid[text_column].astype(str).tolist()
    parts = []
    for start in range(0, len(texts), size):
        chunk = texts[start : start + size]
        scored = model.pyfunc.predict(pd.DataFrame({"text": chunk}))
        if len(scored) != len(chunk):
            raise ModelError(
                f"{model.ref.uri} returned {len(scored)} predictions for {len(chunk)} texts."
            )
        parts.append(pd.DataFrame(scored).reset_index(drop=True))
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in model.output_columns})
    return pd.concat(parts, ignore_index=True)


def build_predictions(
    valid: pd.DataFrame,
    scores: pd.DataFrame,
    *,
    id_column: str | None,
    ref: ModelRef,
    scored_at: datetime,
    run_id: str,
) -> pd.DataFrame:
    keys = [c for c in (id_column, ROW) if c is not None]
    # The plan refused the output columns of params `task`; a version of another NLP task
    # answers with its own, and pd.concat would keep both columns under one name.
    clashes = [c for c in keys if c in scores.columns]
    if clashes:
        raise ParamsError(
            f"{ref.uri} answers with column(s) {', '.join(clashes)}, which the predictions take "
            f"from the input (inference.id_column, {ROW}): rename the id column in a query or a "
            "view, or set params `task` to the NLP task this version serves."
        )
    out = pd.concat([valid[keys].reset_index(drop=True), scores.reset_index(drop=True)], axis=1)
    return _with_meta(out, ref=ref, at=scored_at, run_id=run_id)


def _with_meta(frame: pd.DataFrame, *, ref: ModelRef, at: datetime, run_id: str) -> pd.DataFrame:
    out = frame.assign(
        model_name=ref.name, model_version=ref.version,
        scored_at=pd.Timestamp(at).tz_convert("UTC"), run_id=run_id,
    )  # fmt: skip
    out["model_version"] = out["model_version"].astype("int64")
    out["scored_at"] = out["scored_at"].astype("datetime64[us, UTC]")
    return out.infer_objects()


def rejected_rows(
    checked: CheckedRows, *, ref: ModelRef, scored_at: datetime, run_id: str
) -> pd.DataFrame:
    """The rejected rows as written: ROW, [id], text, checks, expectations, reasons, meta."""
    return _with_meta(checked.rejected, ref=ref, at=scored_at, run_id=run_id)
