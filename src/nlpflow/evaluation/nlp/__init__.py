"""The evaluate stage's code per NLP task, and the gate's scoring of a model on test rows:
one module each, implementing `Scoring` below, named by the task's registry entry
(nlpflow.config.nlp_tasks, NlpTask.scoring).

    report = scoring("text-classification").evaluate(EvaluateInputs(...))
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

from nlpflow.config.nlp_tasks import get_nlp_task

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from nlpflow.config.params import EvaluateParams
    from nlpflow.evaluation.report import EvaluateReport


@dataclass(frozen=True)
class EvaluateInputs:
    """What the evaluate stage hands a task's Scoring module."""

    model_dir: Path  # the trained model (nlpflow.training.families.load_model)
    src: Path  # the processed splits; Scoring scores test.parquet
    plots_dir: Path  # reports/plots (DVC plots)
    out_dir: Path  # reports/evaluation: predictions.parquet, slices.json, ...
    params: EvaluateParams
    baseline_dir: Path | None = None  # the baseline stage's model (None: not scored)
    behavioural: Path | None = None  # the behavioural test file (None: no tests)


@runtime_checkable
class Scoring(Protocol):
    """What the evaluate stage and the promotion gate ask of an NLP task (a module of
    nlpflow.evaluation.nlp)."""

    def evaluate(self, inputs: EvaluateInputs) -> EvaluateReport:
        """Score the test split: every file under plots_dir and out_dir, including
        out_dir/predictions.parquet (one row per test row, with `raw_text`, `label` and
        `predicted`); the report holds metrics.json's content, which evaluate writes."""
        ...

    def judge(
        self, gold: list[Any], predicted: list[Any], texts: list[str], *, labels: list[str],
        params: EvaluateParams, cleaned: list[str] | None = None,
    ) -> tuple[float, dict[str, dict[str, Any]]]:  # fmt: skip
        """The main metric (params.main_metric) of `predicted` against `gold`, and the slices
        of the test rows (`texts` raw; `cleaned`: as preprocess left them, which a score of
        the texts themselves needs, topic coherence), as evaluate computes them: the gate's
        score."""
        ...

    def paired_metric(self, name: str, labels: Sequence[str]) -> Any:
        """Metric `name` as a function of (gold, predicted) with `.resampled(gold, predicted,
        indices)` scoring many bootstrap resamples at once: the gate's paired test. None when
        the metric scores the model as a whole, not each row (topic coherence): no paired test."""
        ...

    def recorded(
        self, predictions: pd.DataFrame, labels: Sequence[str]
    ) -> tuple[list[Any], np.ndarray]:
        """What evaluate recorded in predictions.parquet as (predictions, probabilities), in
        the shape Output.read_answer gives a served model's answer."""
        ...


def scoring(task: str) -> Scoring:
    """The Scoring module of NLP task `task` (params `task`), imported now."""
    module = get_nlp_task(task).scoring
    return cast(Scoring, importlib.import_module(f"nlpflow.evaluation.nlp.{module}"))
