"""The promotion log: every move of (or refusal to move) the champion alias, as one finished
run in the experiment `<register.experiment>-promotions`, so MLflow's UI lists them as a table
and `nlpflow registry history` reads them back.

    log_event(tracker, params, PromotionEvent(...))
    read_log(tracker, params, "nlpflow-support-tickets")   # newest first
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

if TYPE_CHECKING:
    from nlpflow.config.params import Params
    from nlpflow.tracking.tracker import Tracker


def promotion_experiment(params: Params) -> str:
    return f"{params.register_.experiment}-promotions"


class PromotionEvent(BaseModel):
    """One move of (or one refusal to move) the champion alias."""

    time: str
    action: str  # gate | promote | rollback
    model: str
    version: int
    decision: str  # promoted | rejected | moved
    champion_before: int | None
    champion_after: int | None
    by: str
    reason: str
    run_id: str = ""  # the pipeline run behind a gate decision


def actor(by: str | None = None) -> str:
    import getpass
    import os

    if by:
        return by
    try:
        return os.environ.get("NLPFLOW_USER") or getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        return "unknown"


def now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat(timespec="seconds")


def log_event(tracker: Tracker, params: Params, event: PromotionEvent) -> None:
    """Append `event` to the promotion log."""
    tags = {f"promotion.{k}": "" if v is None else str(v) for k, v in event.model_dump().items()}
    run_id = tracker.start_run(
        promotion_experiment(params), run_name=f"{event.action} v{event.version}", tags=tags
    )
    tracker.end_run(run_id, "FINISHED")


def read_log(tracker: Tracker, params: Params, name: str, limit: int = 100) -> list[PromotionEvent]:
    """Newest first."""
    experiment = tracker.find_experiment(promotion_experiment(params))
    if experiment is None:
        return []
    runs = tracker.search_runs(
        [experiment], filter_string=f"tags.`promotion.model` = '{name}'",
        order_by=["attributes.start_time DESC"], max_results=limit,
    )  # fmt: skip
    events = []
    for run in runs:
        fields: dict[str, Any] = {k.removeprefix("promotion."): v for k, v in run.tags.items()
                                  if k.startswith("promotion.")}  # fmt: skip
        for key in ("champion_before", "champion_after"):  # "" was None
            fields[key] = fields.get(key) or None
        events.append(PromotionEvent.model_validate(fields))
    return events
