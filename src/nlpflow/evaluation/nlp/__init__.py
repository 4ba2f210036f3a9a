"""The evaluate stage's code per NLP task: one module each, implementing
nlpflow.config.nlp_tasks.Scoring, named by the task's registry entry (NlpTask.scoring).

    scoring("text-classification").compute_scores(gold, predicted, proba, labels=..., params=...)
"""

from __future__ import annotations

import importlib
from typing import cast

from nlpflow.config.nlp_tasks import Scoring, get_nlp_task


def scoring(task: str) -> Scoring:
    """The Scoring module of NLP task `task` (params `task`), imported now."""
    module = get_nlp_task(task).scoring
    return cast(Scoring, importlib.import_module(f"nlpflow.evaluation.nlp.{module}"))
