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


def suite_role(task: str) -> Suite:
    """The Suite module of NLP task `task` (params `task`), imported now."""
    module = get_nlp_task(task).suite
    return cast(Suite, importlib.import_module(f"nlpflow.data.suites.{module}"))
