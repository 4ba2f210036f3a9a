"""rules: hand-written rules, one family for two NLP tasks (its registry entry lists both):

- text-classification: a label per text from a rules file of keywords, regexes and spaCy token
  patterns with priorities and a default label (nlpflow.training.families.rules_text);
- token-classification: entity spans from spaCy's SpanRuler (nlpflow.training.families.rules_ner).

The registry names one fit and one class per family; this module is both for rules and hands
each call to the task's module. The fit tells the task by the shape of its inputs (texts, or
token lists: training.families.XY), which every caller already gives it; the class's `load`
reads the task from the model folder's manifest, where a model saved before the family served
two tasks has none and is a tagger.

    model = fit_rules(train, validation, labels=labels, params=train_params)
    model = Rules.load(Path("models/model"))
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from nlpflow.config.params import TrainParams
from nlpflow.errors import ModelError
from nlpflow.training.families import XY, EpochCallback, load_manifest

TEXT_CLASSIFICATION, TOKEN_CLASSIFICATION = "text-classification", "token-classification"
# task -> (module under nlpflow.training.families, its fit, its model class)
BY_TASK = {
    TEXT_CLASSIFICATION: ("rules_text", "fit_text_rules", "TextRules"),
    TOKEN_CLASSIFICATION: ("rules_ner", "fit_rules", "RulesTagger"),
}


def _code(task: str, what: str) -> Any:
    """The task's `fit` or `model`."""
    module, fit, model = BY_TASK[task]
    code = importlib.import_module(f"nlpflow.training.families.{module}")
    return getattr(code, fit if what == "fit" else model)


def task_of_inputs(*inputs: list[Any]) -> str:
    """token-classification when the first input found is a token list, else
    text-classification (no input at all: token-classification, the family's first task)."""
    for split in inputs:
        if len(split):
            return TOKEN_CLASSIFICATION if not isinstance(split[0], str) else TEXT_CLASSIFICATION
    return TOKEN_CLASSIFICATION


def fit_rules(
    train: XY, validation: XY, *, labels: list[str], params: TrainParams,
    on_epoch: EpochCallback | None = None, on_step: EpochCallback | None = None,
    workdir: Path | None = None,
) -> Any:  # fmt: skip
    """rules' registered fit: the rules of train.rules for the task its inputs belong to."""
    fit = _code(task_of_inputs(train[0], validation[0]), "fit")
    return fit(train, validation, labels=labels, params=params, on_epoch=on_epoch)


class Rules:
    """rules' registered class: `load` returns the model of the task the folder was saved for
    (a TextRules or a RulesTagger)."""

    @staticmethod
    def load(path: Path) -> Any:
        task = load_manifest(path).get("task", TOKEN_CLASSIFICATION)
        if task not in BY_TASK:
            raise ModelError(
                f"{path}: a rules model of NLP task {task!r}; this nlpflow's rules serve "
                f"{', '.join(BY_TASK)}. Upgrade nlpflow to the version that saved it, or retrain."
            )
        return _code(task, "model").load(path)
