"""Names a person reads: of the dataset, of a pipeline run (MLflow run and Prefect flow run),
and the params a run logs.

    run_name(params)  ->  "transformer · support_tickets · lr 0.0001 · seed 13"

Runs of one experiment are compared side by side in the MLflow UI, so a run's name says what
tells it apart from its neighbours: the family, the data, the family's main knob and the seed.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlparse

from nlpflow.config.nlp_tasks import DEFAULT_NLP_TASK, NLP_TASKS, get_nlp_task
from nlpflow.config.params import FAMILIES, Params, TrainParams, flatten, read_by_train
from nlpflow.config.source_kinds import is_hf

# Sections a pipeline run's stages never read: the sweep's parent run, the inference flow and
# the deployment log their own.
NOT_READ_BY_STAGES = ("inference", "schedule", "sweep")


def dataset_name(source: str, *, table: str | None = None) -> str:
    """`data/sample/support_tickets.csv` -> `support_tickets`; `hf:nyu-mll/glue` (config sst2)
    -> `glue`; a database URL -> its database name (never its credentials)."""
    if is_hf(source):
        return source.removeprefix("hf:").rstrip("/").split("/")[-1] or "hf"
    parsed = urlparse(source)
    if parsed.scheme and parsed.scheme not in {"file"} and len(parsed.scheme) > 1:
        if parsed.scheme in {"http", "https"}:
            return _stem(PurePosixPath(parsed.path).name) or parsed.hostname or "download"
        database = parsed.path.strip("/").split("/")[-1]  # sqlite:///x.db, postgresql://h/db
        return table or _stem(database) or parsed.scheme.split("+")[0]
    path = PurePosixPath(source.replace("\\", "/").rstrip("/"))
    name = path.name
    if any(ch in name for ch in "*?["):  # a glob: its folder names the data
        name = path.parent.name
    return _stem(name) or "data"


def _stem(name: str) -> str:
    for suffix in (".gz", ".bz2", ".zip", ".xz"):
        name = name.removesuffix(suffix)
    return re.sub(r"\.(csv|tsv|jsonl|json|parquet|txt|db|sqlite3?)$", "", name)


def _number(value: float) -> str:
    return f"{value:g}"


def _shown(value: Any) -> str:
    """A knob's value as a run name shows it: a number short, a file by its name."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return PurePosixPath(value.replace("\\", "/")).name
    return _number(float(value))


def _main_knob(train: TrainParams) -> tuple[str, str]:
    """The knob a family's runs differ by most often (sweeps, `dvc exp run -S`): its label
    and value as shown (the family registry names it)."""
    label, field = FAMILIES[train.family].main_knob
    value: Any = train
    for part in field.split("."):
        value = getattr(value, part)
    return label, _shown(value)


def run_name(params: Params, *, experiment: str | None = None) -> str:
    """`<family> · <dataset> · <main knob> · seed N`, plus ` · exp <name>` for a DVC experiment."""
    train = params.train
    knob, value = _main_knob(train)
    data = params.data
    config = f"/{data.hf_config}" if is_hf(data.source) and data.hf_config else ""
    parts = [
        train.family,
        dataset_name(data.source) + config,
        f"{knob} {value}",
        f"seed {train.seed}",
    ]
    if experiment:
        parts.append(f"exp {experiment}")
    return " · ".join(parts)


def logged_params(params: Params) -> dict[str, Any]:
    """What shaped a pipeline run, flattened for MLflow: every section its stages read, the
    train section cut to the chosen family's fields, and the baseline family's knobs (its
    train sections) under `baseline.` when the family itself does not read them (they shape
    the yardstick, not the model). Passwords in URLs are masked (Params.public_dict)."""
    tree = {k: v for k, v in params.public_dict().items() if k not in NOT_READ_BY_STAGES}
    # the default NLP task is left out, so classification runs log the params they did before
    # the task became a param (and compare equal to older runs in MLflow)
    if tree.get("task") == DEFAULT_NLP_TASK:
        del tree["task"]
    task = get_nlp_task(params.task)
    for other in NLP_TASKS.values():  # sections only another task reads
        for path in set(other.own_params) - set(task.own_params):
            section, _, key = path.partition(".")
            tree.get(section, {}).pop(key, None)
    if task.keeps_text:  # preprocess applies nothing to its text
        tree.pop("preprocess", None)
    train = tree["train"] = read_by_train(params.train)
    # switched-off or single-process options are one value, not a block of unused settings
    if not train["augment"]["enabled"]:
        train["augment"] = {"enabled": False}
    if train["distributed"]["nproc_per_node"] == 1 and train["distributed"]["nnodes"] == 1:
        train["distributed"] = {"nproc_per_node": 1, "nnodes": 1}
    if train.get("optimizer") not in (None, "sgd"):
        train.pop("momentum", None)
    baseline = FAMILIES[params.baseline_family].sections  # the baseline family's own knobs
    if baseline and not set(baseline) <= set(train):
        tree["baseline"] = {s: getattr(params.train, s).model_dump(mode="json") for s in baseline}
    if params.train.baseline is not None:  # chosen, not the task's own: say which
        tree.setdefault("baseline", {})["family"] = params.train.baseline
    # null is "not used" (a query of a file source) or "the default" (labels from the data)
    return {k: v for k, v in flatten(tree).items() if v is not None}


def epoch_metrics(scores: dict[str, float]) -> dict[str, float]:
    """A training epoch's scores as MLflow groups them: val_macro_f1 -> val/macro_f1,
    train_loss -> train/loss (MLflow charts each prefix before `/` as one group)."""
    grouped = {}
    for key, value in scores.items():
        group, _, name = key.partition("_")
        grouped[f"{group}/{name}" if group in {"train", "val"} and name else f"train/{key}"] = value
    return grouped
