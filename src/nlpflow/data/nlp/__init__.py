"""What gather asks of an NLP task: one module each, implementing `Data` below, named by the
task's registry entry (nlpflow.config.nlp_tasks, NlpTask.data). Its validate suite is a role
of its own (nlpflow.data.suites), so a change to a check re-runs validate, not gather.

    role = data_role("text-classification")
    frame, dropped = role.shape(frame, params.data)     # targets rewritten, repeats dropped

The rest of gather (reading sources, writing splits and the manifest) is shared by every task.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Protocol, cast, runtime_checkable

from nlpflow.config.nlp_tasks import get_nlp_task

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd

    from nlpflow.config.params import DataParams, SplitParams


@runtime_checkable
class Data(Protocol):
    """What gather asks of an NLP task (a module of nlpflow.data.nlp). A frame holds one row
    per example: the source's columns (text, label, source_row, ...)."""

    def read(self, source: Path, params: DataParams) -> tuple[pd.DataFrame, str]:
        """The rows of a local source (a file, folder or glob) and the format read;
        DataSourceError naming the file, the line and the fix for what cannot be read."""
        ...

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


def data_role(task: str) -> Data:
    """The Data module of NLP task `task` (params `task`), imported now."""
    module = get_nlp_task(task).data
    return cast(Data, importlib.import_module(f"nlpflow.data.nlp.{module}"))
