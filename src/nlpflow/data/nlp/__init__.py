"""What gather and validate ask of an NLP task: one module each, implementing `Data` below,
named by the task's registry entry (nlpflow.config.nlp_tasks, NlpTask.data).

    role = data_role("text-classification")
    frame, dropped = role.shape(frame, params.data)     # gather: targets rewritten, deduped
    checks = role.build_checks(params.validate_)         # validate: the task's suite

The rest of both stages (reading sources, writing splits and manifests, running the GX
checkpoint, quarantine, reports) is shared by every task.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

from nlpflow.config.nlp_tasks import get_nlp_task

if TYPE_CHECKING:
    import pandas as pd

    from nlpflow.config.params import DataParams, SplitParams, ValidateParams
    from nlpflow.data.check_results import ValidationReport
    from nlpflow.data.checks import Check


@runtime_checkable
class Data(Protocol):
    """What gather and validate ask of an NLP task (a module of nlpflow.data.nlp). A frame
    holds one row per example: the source's columns (text, label, source_row, ...) and, in
    validate, `split`."""

    def shape(self, frame: pd.DataFrame, params: DataParams) -> tuple[pd.DataFrame, int]:
        """The rows as the task trains on them (targets rewritten, repeats dropped), and how
        many rows were dropped; DataSourceError for targets it cannot train on."""
        ...

    def assign_splits(
        self, frame: pd.DataFrame, params: SplitParams, *, from_source: bool
    ) -> pd.DataFrame:
        """`frame` with a `split` column: the source's splits completed (`from_source`, the
        column is there already) or a seeded split of its own."""
        ...

    def target_counts(self, frame: pd.DataFrame, *, missing: bool = False) -> dict[str, int]:
        """Rows per target value, sorted by value; with `missing`, rows without one too,
        under "<missing>" (gather's manifest counts every row it writes)."""
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


def data_role(task: str) -> Data:
    """The Data module of NLP task `task` (params `task`), imported now."""
    module = get_nlp_task(task).data
    return cast(Data, importlib.import_module(f"nlpflow.data.nlp.{module}"))
