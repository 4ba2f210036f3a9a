"""Prefect artifacts a person reads in the flow run's Artifacts tab: each stage's report as
Markdown tables (scalars, then one table per mapping or list of records), the gate's decision,
and links to the MLflow run when the tracking server has a web address.

    report_markdown("evaluate", report)   # what the evaluate task publishes
"""

from __future__ import annotations

from typing import Any

from prefect.artifacts import create_link_artifact, create_markdown_artifact
from pydantic import BaseModel

from nlpflow.pipeline.stages import StageContext
from nlpflow.tracking.links import run_page_url

# Fields that are long series (per-epoch history) or raw matrices: the MLflow run holds them.
_SKIPPED = {"history"}
_MAX_ITEMS = 12  # of a list shown in one cell


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None:
        return "–"
    if isinstance(value, list):
        shown = ", ".join(_cell(v) for v in value[:_MAX_ITEMS])
        more = len(value) - _MAX_ITEMS
        return shown + (f", … ({more} more)" if more > 0 else "")
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_cell(v)}" for k, v in value.items())
    # a pipe or newline would end the Markdown cell early
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _records_table(records: list[dict[str, Any]]) -> str:
    columns = list(dict.fromkeys(k for record in records for k in record))
    return _table(columns, [[record.get(c) for c in columns] for record in records])


def _matrix_table(matrix: list[list[Any]], labels: list[str]) -> str:
    """A confusion matrix: rows actual, columns predicted."""
    header = ["actual \\ predicted", *labels]
    return _table(header, [[label, *row] for label, row in zip(labels, matrix, strict=False)])


def report_markdown(stage: str, report: BaseModel) -> str:
    """A stage's report as Markdown: its scalar fields in one table, then a table for each
    mapping (metrics, slices, ...) and each list of records (the gate's checks)."""
    fields = {k: v for k, v in report.model_dump(mode="json").items() if k not in _SKIPPED}
    scalars = [[k, v] for k, v in fields.items() if not isinstance(v, dict) and not _is_grid(v)]
    parts = [f"## {stage}", _table(["field", "value"], scalars)] if scalars else [f"## {stage}"]
    for key, value in fields.items():
        if isinstance(value, dict) and value:
            parts.append(f"### {key}\n\n" + _mapping_table(value))
        elif _is_grid(value) and value:
            if all(isinstance(v, dict) for v in value):
                parts.append(f"### {key}\n\n" + _records_table(value))
            else:
                labels = [str(x) for x in fields.get("labels", range(len(value)))]
                parts.append(f"### {key}\n\n" + _matrix_table(value, labels))
    return "\n\n".join(parts) + "\n"


def _is_grid(value: Any) -> bool:
    """A list of records or of rows: shown as its own table, not in one cell."""
    return isinstance(value, list) and bool(value) and isinstance(value[0], dict | list)


def _mapping_table(mapping: dict[str, Any]) -> str:
    """{name: scalar} as two columns; {name: {metric: value}} as one row per name; a mix as
    the scalars' table followed by a table for each nested mapping (metrics.per_class)."""
    if all(isinstance(v, dict) for v in mapping.values()):
        columns = list(dict.fromkeys(k for v in mapping.values() for k in v))
        rows = [[name, *(inner.get(c) for c in columns)] for name, inner in mapping.items()]
        return _table(["", *columns], rows)
    scalars = [[k, v] for k, v in mapping.items() if not isinstance(v, dict)]
    parts = [_table(["", "value"], scalars)]
    for key, value in mapping.items():
        if isinstance(value, dict) and value:
            parts.append(f"**{key}**\n\n" + _mapping_table(value))
    return "\n\n".join(parts)


def gate_markdown(registration: dict[str, Any]) -> str:
    """The promotion decision as a person asks about it: did it become champion, and why."""
    verdict = "promoted to champion" if registration.get("promoted") else "not promoted"
    if registration.get("version") is None:  # a DVC experiment that registers nothing
        subject, verdict = f"a model of {registration.get('model_name')}", "not registered"
    else:
        subject = f"version {registration.get('version')} of {registration.get('model_name')}"
    head = f"## Gate: {subject} {verdict}\n\n{_cell(registration.get('reasons', ''))}\n"
    checks = registration.get("checks") or []
    return head + ("\n" + _records_table(checks) + "\n" if checks else "")


def publish_run_links(
    ctx: StageContext, run_id: str, experiment_id: str | None, registration: dict[str, Any] | None
) -> None:
    """The gate's decision as a Markdown artifact, and a link to the MLflow run where the
    tracking store is a server (its page then opens from Prefect's UI)."""
    if registration:
        create_markdown_artifact(gate_markdown(registration), key="nlpflow-gate")
    url = run_page_url(ctx.settings.resolved_tracking_uri, experiment_id, run_id)
    if url is not None:
        create_link_artifact(url, link_text=f"MLflow run {run_id}", key="nlpflow-mlflow-run")
