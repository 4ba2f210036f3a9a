"""What the served pyfunc returns, per NLP task: one module each, implementing `Output`
below, named by the task's registry entry (nlpflow.config.nlp_tasks, NlpTask.output).

    output("text-classification").output_schema(["ham", "spam"])  # label, score, proba_ham, ...

A saved model's task is its family's (Family.tasks), or, for a family of several (rules), the
model's own `task`: a served model needs no params.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

from nlpflow.config.nlp_tasks import get_nlp_task
from nlpflow.config.params import FAMILIES

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


@runtime_checkable
class Output(Protocol):
    """What the served pyfunc returns for an NLP task (a module of nlpflow.serving.nlp)."""

    def output_schema(self, labels: Sequence[str]) -> dict[str, str]:
        """The output columns and their MLflow types (the registered signature)."""
        ...

    def predict_frame(self, model: Any, cleaner: Any, texts: list[str]) -> pd.DataFrame:
        """The answer to `texts` (raw; `cleaner` prepares them as training did)."""
        ...

    def read_answer(
        self, frame: pd.DataFrame, labels: Sequence[str]
    ) -> tuple[list[Any], np.ndarray]:
        """predict_frame's answer as (predictions, probabilities): what the gate scores and
        compares with evaluate's."""
        ...

    def display(self, texts: list[str], frame: pd.DataFrame) -> pd.DataFrame:
        """The answer as a table for people (`nlpflow predict`): the texts beside it."""
        ...

    def json_rows(self, texts: list[str], frame: pd.DataFrame) -> list[dict[str, Any]]:
        """The answer as one JSON object per text (`nlpflow predict --json`)."""
        ...

    def answer_counts(self, frame: pd.DataFrame) -> tuple[str, dict[str, int]]:
        """What batch inference reports of a scored frame: what is counted (e.g. "rows per
        predicted label") and the counts, sorted by key."""
        ...

    def answer_drift(self, frame: pd.DataFrame, model: Any) -> dict[str, Any] | None:
        """How a scored frame's answers moved from those of the training data the model
        (the registered family's object) recorded, for batch inference's report; None when
        the task records nothing to compare with."""
        ...

    def is_output_column(self, name: str) -> bool:
        """Whether `name` is (or could be, for some labels) a column of the answer: batch
        inference refuses input columns that its output would overwrite."""
        ...


def output(task: str) -> Output:
    """The Output module of NLP task `task` (params `task`), imported now."""
    module = get_nlp_task(task).output
    return cast(Output, importlib.import_module(f"nlpflow.serving.nlp.{module}"))


def model_task(model: Any) -> str:
    """The NLP task a loaded model serves: its family's only one, or the model's `task`."""
    tasks = FAMILIES[model.family].tasks
    return tasks[0] if len(tasks) == 1 else str(model.task)


def output_of_model(model: Any) -> Output:
    """The Output module of the NLP task that `model` (a loaded model family's) serves."""
    return output(model_task(model))
