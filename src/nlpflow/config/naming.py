"""Names a person reads: of the dataset, of a pipeline run (MLflow run and Prefect flow run),
and the params a run logs.

    run_name(params)  ->  "transformer · support_tickets · lr 0.0001 · seed 13"

Runs of one experiment are compared side by side in the MLflow UI, so a run's name says what
tells it apart from its neighbours: the family, the data, the family's main knob and the seed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from nlpflow.config.nlp_tasks import DEFAULT_NLP_TASK, NLP_TASKS, get_nlp_task
from nlpflow.config.params import FAMILIES, Params, TrainParams, flatten, read_by_train
from nlpflow.config.source_kinds import is_hf

if TYPE_CHECKING:
    from nlpflow.config.settings import Settings

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


# The registered model's name: one resolution for every reader (the register stage, its cache
# key, serve, predict, batch inference, the registry commands), so a run registers where the
# commands after it look. Each dataset gets its own name unless told otherwise: one shared name
# once let a news-topic model replace a sentiment champion.
MODEL_NAME_PREFIX = "nlpflow-"
MODEL_NAME_MAX = 60


@dataclass(frozen=True)
class RegisteredName:
    """A registered model's name and where it came from."""

    name: str
    origin: str  # NLPFLOW_REGISTERED_MODEL | register.model_name | data.source

    @property
    def line(self) -> str:
        """One line a run and the CLI print: the name, why, and how to choose another."""
        how = {
            "NLPFLOW_REGISTERED_MODEL": "set by NLPFLOW_REGISTERED_MODEL, which wins over "
            "params register.model_name; unset it to let params choose",
            "register.model_name": "params register.model_name; choose another there "
            "(a run takes --set register.model_name=NAME) or with NLPFLOW_REGISTERED_MODEL, "
            "which wins",
            "data.source": "derived from data.source; choose another with params "
            "register.model_name (a run takes --set register.model_name=NAME) or "
            "NLPFLOW_REGISTERED_MODEL",
        }[self.origin]
        return f"registered model {self.name!r} ({how})"


def default_model_name(params: Params) -> str:
    """`nlpflow-` + the data's name as a slug: `data/sample/support_tickets.csv` ->
    `nlpflow-support-tickets`, `hf:nyu-mll/glue` (config sst2) -> `nlpflow-glue-sst2`, a
    database URL -> its database name (dataset_name never shows credentials). Another NLP task
    than the default adds its name: topics of the same file are another model
    (`nlpflow-support-tickets-topic-modeling`)."""
    data = params.data
    config = f"-{data.hf_config}" if is_hf(data.source) and data.hf_config else ""
    task = f"-{params.task}" if params.task != DEFAULT_NLP_TASK else ""
    text = (dataset_name(data.source) + config).lower()
    slug = re.sub(r"[^a-z0-9]+", "-", text).strip("-")[: MODEL_NAME_MAX - 30].strip("-") + task
    return (MODEL_NAME_PREFIX + (slug or "data"))[:MODEL_NAME_MAX].rstrip("-")


def registered_model_name(params: Params, explicit: str | None) -> RegisteredName:
    """`explicit` (NLPFLOW_REGISTERED_MODEL) wins, then params register.model_name, then the
    name derived from data.source (default_model_name)."""
    if explicit and explicit.strip():
        return RegisteredName(explicit.strip(), "NLPFLOW_REGISTERED_MODEL")
    if params.register_.model_name:
        return RegisteredName(params.register_.model_name, "register.model_name")
    return RegisteredName(default_model_name(params), "data.source")


def project_model_name(settings: Settings, configs: list[Path] | None = None) -> RegisteredName:
    """The name for commands that default to the registered model: NLPFLOW_REGISTERED_MODEL
    without reading params, else the project's params.yaml (+ `configs`, as -c/--config)."""
    from nlpflow.config.params import load_params

    if settings.registered_model and settings.registered_model.strip():
        return RegisteredName(settings.registered_model.strip(), "NLPFLOW_REGISTERED_MODEL")
    params = load_params(settings.root / "params.yaml", None, configs)
    return registered_model_name(params, None)
