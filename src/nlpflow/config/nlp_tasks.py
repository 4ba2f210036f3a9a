"""The NLP tasks, registered once each, and the interface each stage role implements per task.

    NLP_TASKS["text-classification"].scoring   # "text_classification": the module under
                                               # nlpflow.evaluation.nlp that scores it

`task` in params.yaml chooses one (named as Hugging Face names its pipelines); a model family
says which one it serves (Family.task). The stages share everything else (gather, validate,
tracking, register, serve) and ask the registry only for what differs per NLP task, one module
per task per role, loaded by name when used, as the model families are:

| role    | package                  | interface (below) | what it holds                          |
|---------|--------------------------|-------------------|----------------------------------------|
| scoring | `nlpflow.evaluation.nlp` | `Scoring`         | metrics, predictions table, error list |
| output  | `nlpflow.serving.nlp`    | `Output`          | the pyfunc's output and its schema     |

Each role's package loads its module (`nlpflow.evaluation.nlp.scoring(task)`), so a stage's
computed code deps hold the modules of its own roles only. Adding an NLP task = its module in
each role's package + one entry here (+ the families that serve it, Family.task).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from nlpflow.config.sections.evaluate import EvaluateParams


@dataclass(frozen=True)
class NlpTask:
    """One NLP task."""

    name: str  # params `task`, Hugging Face's pipeline name
    summary: str  # one line, shown in the `task` param's description
    scoring: str  # module under nlpflow.evaluation.nlp (Scoring)
    output: str  # module under nlpflow.serving.nlp (Output)


NLP_TASKS: dict[str, NlpTask] = {
    entry.name: entry
    for entry in (
        NlpTask(
            "text-classification",
            "one label per text (sentiment, topic, intent, spam)",
            scoring="text_classification",
            output="text_classification",
        ),
    )
}
DEFAULT_NLP_TASK = "text-classification"


def get_nlp_task(name: str) -> NlpTask:
    """The registry entry of `name`; ValueError naming the known NLP tasks otherwise."""
    if name not in NLP_TASKS:
        raise ValueError(
            f"unknown NLP task {name!r}; known: {', '.join(sorted(NLP_TASKS))} "
            "(nlpflow.config.nlp_tasks.NLP_TASKS)"
        )
    return NLP_TASKS[name]


@runtime_checkable
class Scoring(Protocol):
    """What the evaluate stage asks of an NLP task (a module of nlpflow.evaluation.nlp).
    `gold` and `predicted` hold one item per test row, `proba` the model's probabilities
    (rows x labels); evaluate writes what these return to metrics.json and reports/."""

    def compute_scores(
        self,
        gold: list[Any],
        predicted: list[Any],
        proba: np.ndarray,
        *,
        labels: list[str],
        params: EvaluateParams,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """metrics.json's numbers, and the bootstrap interval of the main metric."""
        ...

    def predictions_frame(
        self, test: pd.DataFrame, predicted: list[Any], proba: np.ndarray, *, labels: list[str]
    ) -> pd.DataFrame:
        """predictions.parquet: one row per test row."""
        ...

    def write_errors(self, out_dir: Path, frame: pd.DataFrame, *, limit: int) -> None:
        """The worst mistakes of `frame` (predictions_frame's), as files in `out_dir`."""
        ...


@runtime_checkable
class Output(Protocol):
    """What the served pyfunc returns for an NLP task (a module of nlpflow.serving.nlp)."""

    def output_schema(self, labels: Sequence[str]) -> dict[str, str]:
        """The output columns and their MLflow types (the registered signature)."""
        ...

    def predict_frame(self, model: Any, cleaner: Any, texts: list[str]) -> pd.DataFrame:
        """The answer to `texts` (raw; `cleaner` prepares them as training did)."""
        ...
