"""The NLP tasks, registered once each, and the interface each stage role implements per task.

    NLP_TASKS["text-classification"].scoring   # "text_classification": the module under
                                               # nlpflow.evaluation.nlp that scores it

`task` in params.yaml chooses one (named as Hugging Face names its pipelines); a model family
says which ones it serves (Family.tasks). The stages share everything else (gather, validate,
tracking, register, serve) and ask the registry only for what differs per NLP task, one module
per task per role, loaded by name when used, as the model families are:

| role    | package                  | interface          | what it holds                             |
|---------|--------------------------|--------------------|-------------------------------------------|
| data    | `nlpflow.data.nlp`       | `Data`             | gather's shaping, splits and counts       |
| suite   | `nlpflow.data.suites`    | `Suite`            | validate's checks, their table, profile   |
| scoring | `nlpflow.evaluation.nlp` | `Scoring`          | the evaluate stage's reports, and the     |
|         |                          |                    | gate's score of a model on test rows      |
| output  | `nlpflow.serving.nlp`    | `Output`           | the pyfunc's output, its schema and the   |
|         |                          |                    | columns batch inference reserves          |

Each role's package defines its interface (a Protocol) and loads a task's module by name
(`nlpflow.evaluation.nlp.scoring(task)`), so a stage's computed code deps hold the modules of
its own roles only, and this module, in the config layer, names them without importing them.
Adding an NLP task = its module in each role's package + one entry here (+ the families that
serve it, Family.tasks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import get_args

from nlpflow.config.sections.evaluate import ClassMetric, EntityMetric, TopicMetric


@dataclass(frozen=True)
class NlpTask:
    """One NLP task."""

    name: str  # params `task`, Hugging Face's pipeline name
    summary: str  # one line, shown in the `task` param's description
    data: str  # module under nlpflow.data.nlp (Data)
    suite: str  # module under nlpflow.data.suites (Suite)
    scoring: str  # module under nlpflow.evaluation.nlp (Scoring)
    output: str  # module under nlpflow.serving.nlp (Output)
    # Preprocess keeps the text as written: its targets point into it (entity offsets), so
    # switches that would change it are refused by params.
    keeps_text: bool = False
    # The data.format values gather reads for it ("auto": by extension)
    formats: tuple[str, ...] = (
        "auto",
        "csv",
        "tsv",
        "jsonl",
        "parquet",
        "folder",
        "labelled_lines",
    )
    # What a model learns from, as columns of the processed splits: inputs and targets (a list
    # per row for per-token targets: token-classification's tokens and BIO tags)
    inputs: str = "text"
    targets: str = "label"
    # the baseline stage's family unless train.baseline names another: every model must beat it
    baseline: str = "tfidf_logreg"
    # params only this task reads (dotted: section.key): left out of other tasks' logged params
    own_params: tuple[str, ...] = ()
    # evaluate.main_metric's choices (config.sections.evaluate), the default first
    metrics: tuple[str, ...] = get_args(ClassMetric)
    # sweep.metric's choices: validation scores its families report per epoch, the default
    # first (val_loss: Hugging Face Trainer families only)
    sweep_metrics: tuple[str, ...] = ("val_macro_f1", "val_accuracy", "val_loss")
    # Rows may have no target (data.label_column: null): a model learns from the inputs alone,
    # and targets, where given, only score it
    targets_optional: bool = False
    # A model's labels are the data's label set (a class, an entity type), so two models of
    # other label sets are models of other things (nlpflow.release.identity); False: they are
    # what the model found (topic ids, as many as it was asked for), and say nothing of the data
    labels_are_the_datas: bool = True


NLP_TASKS: dict[str, NlpTask] = {
    entry.name: entry
    for entry in (
        NlpTask(
            "text-classification",
            "one label per text (sentiment, topic, intent, spam)",
            data="text_classification",
            suite="text_classification",
            scoring="text_classification",
            output="text_classification",
        ),
        NlpTask(
            "token-classification",
            "a tag per token: named entities (people, places, products, order numbers)",
            data="token_classification",
            suite="token_classification",
            scoring="token_classification",
            output="token_classification",
            keeps_text=True,
            formats=("auto", "folder", "conll", "spans_jsonl", "label_studio", "parquet"),
            inputs="tokens",
            targets="tags",
            baseline="rules",
            own_params=("validate.entities",),
            metrics=get_args(EntityMetric),
            sweep_metrics=("val_entity_f1", "val_loss"),
        ),
        NlpTask(
            "topic-modeling",
            "themes found in unlabelled text: topics, their words and each text's share",
            data="topic_modeling",
            suite="topic_modeling",
            scoring="topic_modeling",
            output="topic_modeling",
            baseline="nmf",
            own_params=("data.time_column",),
            metrics=get_args(TopicMetric),
            sweep_metrics=("val_npmi", "val_diversity"),
            targets_optional=True,
            labels_are_the_datas=False,
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
