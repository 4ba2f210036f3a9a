"""What the served pyfunc returns, per NLP task: one module each, implementing
nlpflow.config.nlp_tasks.Output, named by the task's registry entry (NlpTask.output).

    output("text-classification").output_schema(["ham", "spam"])  # label, score, proba_ham, ...

A saved model's task is its family's (Family.task): a served model needs no params.
"""

from __future__ import annotations

import importlib
from typing import cast

from nlpflow.config.nlp_tasks import Output, get_nlp_task
from nlpflow.config.params import FAMILIES


def output(task: str) -> Output:
    """The Output module of NLP task `task` (params `task`), imported now."""
    module = get_nlp_task(task).output
    return cast(Output, importlib.import_module(f"nlpflow.serving.nlp.{module}"))


def output_of_family(family: str) -> Output:
    """The Output module of the NLP task that model family `family` serves."""
    return output(FAMILIES[family].task)
