"""The behavioural-file check of each NLP task, run by validate before training: the file must
fit the labels (or entity types) the data has. Apart from the task's Scoring module, so that
validate depends on the behavioural file's format and not on any model code. One module per
task, named as its Scoring module (NlpTask.scoring), each with `check_behavioural`.

    fit = check_behavioural("text-classification", Path("behavioural.yaml"), ["ham", "spam"])
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nlpflow.config.nlp_tasks import get_nlp_task


def check_behavioural(task: str, path: Path, labels: Sequence[str]) -> Any:
    """ParamsError naming the fix when the file at `path` cannot fit `labels`; else its fit
    (BehaviouralFit: .warning() for tests left out)."""
    module = importlib.import_module(f"nlpflow.evaluation.fit.{get_nlp_task(task).scoring}")
    return module.check_behavioural(path, labels)
