"""The run's bookkeeping: its MLflow run (experiment `<register.experiment>-inference`), the
counts as a report, metrics and an artifact.

    run_id = start_inference_run(tracker, plan, ref, params, tags={})
    log_report(tracker, build_report(plan, model, checked, predictions, run_id=run_id))
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from nlpflow.config.params import Params, flatten
from nlpflow.serving.batch.chunks import ModelInfo
from nlpflow.serving.batch.plan import InferencePlan
from nlpflow.serving.batch.progress import ChunkSummary
from nlpflow.tracking.refs import ModelRef

if TYPE_CHECKING:
    from nlpflow.tracking.tracker import Tracker


class InferenceReport(BaseModel):
    model_name: str
    model_version: int
    model_alias: str
    source: str
    output: str
    rejected_output: str
    rows_read: int
    rows_valid: int
    rows_rejected: int
    rows_scored: int
    counted: str = "rows per predicted label"  # what `labels` counts (the model's task says)
    labels: dict[str, int]  # predicted label -> rows; a tagger's: entity type -> entities
    rejected_by_check: dict[str, int]  # check id -> rows breaking it (a row may break several)
    # the answers' drift from the training data's (topic-modeling: topic shares, their total
    # variation distance `tvd`); None when the model's task records nothing to compare with
    drift: dict[str, Any] | None = None
    max_chars: int
    batch_size: int
    scored_at: str
    run_id: str
    chunks: int = 1  # chunks committed (inference.chunk_rows rows each)
    resumed_chunks: int = 0  # of them, committed by an earlier attempt this run resumed
    seconds: float = 0.0  # this attempt's scoring (reading, checks, scoring, commits)
    rows_per_second: float = 0.0  # rows this attempt read, checked, scored and committed, a second


def build_report(
    plan: InferencePlan,
    model: ModelInfo,
    summaries: list[ChunkSummary],
    *,
    run_id: str,
    resumed_chunks: int = 0,
    seconds: float = 0.0,
) -> InferenceReport:
    """The job's counts: every committed chunk's (this attempt's and those it resumed) added
    up; the answers' drift over all of them."""
    failed: dict[str, int] = {}
    counts: dict[str, int] = {}
    for s in summaries:
        for key, value in s.failed.items():
            failed[key] = failed.get(key, 0) + value
        for key, value in s.counts.items():
            counts[key] = counts.get(key, 0) + value
    rejected = plan.target.rejected
    return InferenceReport(
        model_name=model.name, model_version=model.version,
        model_alias=model.alias or str(model.version), source=plan.shown_source,
        output=plan.target.describe(),
        rejected_output=rejected if plan.target.kind == "file" else f"table {rejected}",
        rows_read=sum(s.rows_read for s in summaries),
        rows_valid=sum(s.rows_valid for s in summaries),
        rows_rejected=sum(s.rows_rejected for s in summaries),
        rows_scored=sum(s.rows_scored for s in summaries),
        counted=summaries[0].counted if summaries else "rows per predicted label",
        labels=dict(sorted(counts.items(), key=lambda kv: _natural(kv[0]))),
        rejected_by_check=dict(sorted(failed.items())), drift=merge_drift(summaries),
        max_chars=model.max_chars, batch_size=max(1, min(plan.batch_size, model.max_batch)),
        scored_at=plan.scored_at.isoformat(), run_id=run_id, chunks=len(summaries),
        resumed_chunks=resumed_chunks, seconds=round(seconds, 3),
        rows_per_second=round(sum(s.rows_read for s in summaries if s.run_id == run_id)
                              / seconds, 1) if seconds > 0 else 0.0,
    )  # fmt: skip


def _natural(key: str) -> tuple[int, int, str]:
    """Numbers in numeric order (topics 2 before 10), then words."""
    return (0, int(key), "") if key.lstrip("-").isdigit() else (1, 0, key)


def merge_drift(summaries: list[ChunkSummary]) -> dict[str, Any] | None:
    """The drift of all chunks together: each answer's share averaged over the scored rows
    (the chunks weighted by their rows), against the same reference (Output.answer_drift)."""
    parts = [(s.rows_scored, s.drift) for s in summaries if s.drift is not None and s.rows_scored]
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0][1]
    from nlpflow.serving.nlp.topic_modeling import share_drift

    total = sum(rows for rows, _ in parts)
    reference = {k: float(v) for k, v in parts[0][1]["reference"].items()}
    current = {
        k: sum(rows * float(d["current"][k]) for rows, d in parts) / total for k in reference
    }
    return share_drift(current, reference)


def report_markdown(report: InferenceReport) -> str:
    rows = [
        ("model", f"{report.model_name} v{report.model_version} ({report.model_alias})"),
        ("source", report.source), ("output", report.output),
        ("rejected rows to", report.rejected_output), ("rows read", report.rows_read),
        ("rows valid", report.rows_valid), ("rows rejected", report.rows_rejected),
        ("rows scored", report.rows_scored), ("chunks", report.chunks),
        ("resumed chunks", report.resumed_chunks),
        ("scoring", f"{report.seconds:.1f} s ({report.rows_per_second:,.0f} rows/s)"),
        ("scored at (UTC)", report.scored_at),
        ("MLflow run", report.run_id),
    ]  # fmt: skip
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    labels = "\n".join(f"| {k} | {v} |" for k, v in report.labels.items()) or "| (none) | 0 |"
    checks = "\n".join(f"| {k} | {v} |" for k, v in report.rejected_by_check.items())
    what, per = report.counted.split(" per ", 1) if " per " in report.counted else ("rows", "")
    text = (
        f"## Batch inference\n\n| | |\n|---|---|\n{table}\n\n### {report.counted.capitalize()}\n\n"
    )
    text += f"| {per or 'label'} | {what} |\n|---|---|\n{labels}\n"
    if report.drift is not None:
        text += f"\n### Drift from the training data\n\n{drift_summary(report.drift)}.\n"
    if checks:
        text += f"\n### Rejected rows by check\n\n| check | rows |\n|---|---|\n{checks}\n"
    return text


def drift_summary(drift: dict[str, Any]) -> str:
    """One line on a topic model's share drift (Output.answer_drift), for the report and the
    CLI."""
    moves = ", ".join(f"topic {t} {v:+.1%}" for t, v in drift["largest_moves"].items())
    return (
        f"topic shares moved by {drift['tvd']:.3f} from the training mix (total variation "
        f"distance; 0 = the same mix); largest moves: {moves}"
    )


def _metric_key(name: str) -> str:
    return re.sub(r"[^\w\-./ ]", "_", name)


def start_inference_run(
    tracker: Tracker, plan: InferencePlan, ref: ModelRef, params: Params, *, tags: dict[str, str]
) -> str:
    """Open the MLflow run of this inference (experiment `<register.experiment>-inference`)."""
    run_id = tracker.start_run(
        plan.experiment, run_name=None,
        tags={"nlpflow.runner": "prefect", "model.name": ref.name, "model.version": str(ref.version),
              "model.alias": ref.alias or str(ref.version), "inference.source": plan.shown_source,
              "inference.output": plan.target.describe()} | tags,
    )  # fmt: skip
    shown = params.inference.model_copy(update={"source": plan.shown_source})
    tracker.log_params(run_id, flatten({"inference": shown.model_dump(mode="json")}))
    return run_id


def log_report(tracker: Tracker, report: InferenceReport) -> None:
    metrics: dict[str, float] = {
        "rows_read": report.rows_read, "rows_valid": report.rows_valid,
        "rows_rejected": report.rows_rejected, "rows_scored": report.rows_scored,
        "chunks": report.chunks, "resumed_chunks": report.resumed_chunks,
        "scoring_seconds": report.seconds, "rows_per_second": report.rows_per_second,
    }  # fmt: skip
    # rows per predicted label -> label_<label>; rows per largest topic -> topic_<id>;
    # entities per type -> entities_<type>
    words = report.counted.split()
    prefix = words[-1] if words[0] == "rows" else words[0]
    metrics |= {_metric_key(f"{prefix}_{k}"): v for k, v in report.labels.items()}
    metrics |= {_metric_key(f"rejected_{k}"): v for k, v in report.rejected_by_check.items()}
    if report.drift is not None:
        metrics["drift_tvd"] = report.drift["tvd"]
        metrics |= {_metric_key(f"share_{k}"): v for k, v in report.drift["current"].items()}
    tracker.log_metrics(report.run_id, metrics)
    tracker.set_tags(report.run_id, {"inference.rejected_output": report.rejected_output})
    with tempfile.TemporaryDirectory(prefix="nlpflow-inference-") as tmp:
        path = Path(tmp) / "inference_report.json"
        path.write_text(json.dumps(report.model_dump(mode="json"), indent=2))
        tracker.log_artifact(report.run_id, path)
