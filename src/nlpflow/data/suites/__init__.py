"""What validate asks of an NLP task: one module each, implementing `Suite` below, named by the
task's registry entry (nlpflow.config.nlp_tasks, NlpTask.suite).

    role = suite_role("text-classification")
    checks = role.build_checks(params.validate_)         # the task's checks

The rest of validate (the GX project and checkpoint, quarantine, reports) is shared by every
task.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

from nlpflow.config.nlp_tasks import get_nlp_task

if TYPE_CHECKING:
    import pandas as pd

    from nlpflow.config.params import DataParams, ValidateParams
    from nlpflow.data.check_results import ValidationReport
    from nlpflow.data.checks import Check
    from nlpflow.data.streaming.sketch import TextSketch


@runtime_checkable
class Suite(Protocol):
    """What validate asks of an NLP task (a module of nlpflow.data.suites). A split holds the
    rows gather wrote (its Data module's shape)."""

    def target_counts(self, frame: pd.DataFrame, *, missing: bool = False) -> dict[str, int]:
        """Rows per target value, sorted by value (the report's label counts)."""
        ...

    def build_frame(self, splits: dict[str, pd.DataFrame]) -> pd.DataFrame:
        """All splits in one table the suite runs on: a `split` column, a unique
        nlpflow.data.checks.ROW_ID per row, and what the cross-row checks need."""
        ...

    def build_checks(self, params: ValidateParams) -> list[Check]:
        """The suite, one Check per id (validate.policy's keys); values that depend on the
        data are suite parameters, which suite_params fills in."""
        ...

    def allowed_labels(self, splits: dict[str, pd.DataFrame], data: DataParams) -> list[str]:
        """The target values the data may hold (the report's allowed_labels)."""
        ...

    def suite_params(
        self, splits: dict[str, pd.DataFrame], data: DataParams, reference: dict[str, Any] | None
    ) -> dict[str, Any]:
        """The suite parameters of this run; `reference` is the accepted-snapshot profile
        (compute_profile of the last run that passed; None for the first)."""
        ...

    def compute_profile(self, frame: pd.DataFrame) -> dict[str, Any]:
        """What drift is measured on, from build_frame's table: saved after a run that passes."""
        ...

    def refuse_untrainable(self, report: ValidationReport, data: DataParams) -> None:
        """DataValidationError for data that passed the suite but that training would fail
        on, or train wrongly."""
        ...


@runtime_checkable
class StreamingSuite(Suite, Protocol):
    """A Suite that also validates chunk by chunk (runtime.max_memory_mb): the same table,
    metrics and profile, with what needs all rows from a TextSketch (a first pass)."""

    def stream_frame(
        self, frame: pd.DataFrame, split: str, first_id: int, sketch: TextSketch
    ) -> pd.DataFrame:
        """build_frame's rows for one chunk of `split`, its first row numbered `first_id`."""
        ...

    def stream_metrics(self, sketch: TextSketch) -> dict[str, dict[str, Any]]:
        """The GX metrics of the table checks (median, drift), by check id."""
        ...

    def stream_details(self, check_id: str, sketch: TextSketch) -> dict[str, Any] | None:
        """A failed check's own details (Check.details); None: GX's own."""
        ...

    def stream_allowed_labels(self, sketch: TextSketch, data: DataParams) -> list[str]: ...

    def stream_suite_params(
        self, sketch: TextSketch, data: DataParams, reference: dict[str, Any] | None
    ) -> dict[str, Any]: ...

    def stream_profile(self, sketch: TextSketch) -> dict[str, Any]: ...


def streaming_role(task: str) -> StreamingSuite | None:
    """The Suite of `task` when it validates chunk by chunk; None (the in-memory path) when
    not: token classification's sentences of tags are validated whole."""
    role = suite_role(task)
    return role if isinstance(role, StreamingSuite) else None


def suite_role(task: str) -> Suite:
    """The Suite module of NLP task `task` (params `task`), imported now."""
    module = get_nlp_task(task).suite
    return cast(Suite, importlib.import_module(f"nlpflow.data.suites.{module}"))
