"""sweep: an Optuna study over train params; its space is checked against TrainParams."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from nlpflow.config.sections.base import Section
from nlpflow.config.sections.train import TrainParams


class SearchDimension(Section):
    """One hyper-parameter of sweep.space: a float or int range, or a list of choices."""

    type: Literal["float", "int", "categorical"] = Field(
        description="float or int: a range from low to high; categorical: one of choices."
    )
    low: float | None = Field(default=None, description="Range: smallest value (included).")
    high: float | None = Field(default=None, description="Range: largest value (included).")
    log: bool = Field(
        default=False, description="Range: sample on a log scale (learning rates); needs low > 0."
    )
    step: float | None = Field(
        default=None, gt=0, description="Range: spacing of the values (int default 1)."
    )
    choices: list[str | bool | int | float | None] | None = Field(
        default=None, description="categorical: the values to choose from (null allowed)."
    )

    @model_validator(mode="after")
    def _shape(self) -> SearchDimension:
        if self.type == "categorical":
            if self.low is not None or self.high is not None or self.log or self.step:
                raise ValueError("a categorical dimension takes choices, not low/high/log/step")
            if not self.choices:
                raise ValueError("type categorical needs a non-empty list of choices")
            return self
        if self.choices is not None:
            raise ValueError(f"a {self.type} range takes low and high, not choices")
        if self.low is None or self.high is None:
            raise ValueError(f"a {self.type} range needs both low and high")
        if not self.low < self.high:
            raise ValueError(f"low ({self.low:g}) must be below high ({self.high:g})")
        if self.log and self.low <= 0:
            raise ValueError(f"log: true needs low > 0 (got {self.low:g})")
        if self.log and self.step is not None:
            raise ValueError("give log or step, not both (Optuna samples either)")
        if self.type == "int" and not all(
            float(v).is_integer() for v in (self.low, self.high, self.step or 1)
        ):
            raise ValueError("an int range needs whole numbers for low, high and step")
        return self


def _train_field(name: str) -> Any:
    """The TrainParams field a dotted space name (lr, tfidf.C) points at; ValueError if none."""
    import difflib

    section: type[BaseModel] = TrainParams
    parts = name.split(".")
    for i, part in enumerate(parts):
        field = section.model_fields.get(part)
        if field is None:
            close = difflib.get_close_matches(part, list(section.model_fields), n=1)
            hint = f" (did you mean {'.'.join([*parts[:i], close[0]])!r}?)" if close else ""
            raise ValueError(
                f"{name!r} is not a train param{hint}; name a field of the train section, "
                "dotted for nested ones (e.g. tfidf.C)"
            )
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if i == len(parts) - 1:
                raise ValueError(f"{name!r} is a section; name one of its fields ({name}.<field>)")
            section = annotation
        elif i < len(parts) - 1:
            raise ValueError(f"{'.'.join(parts[: i + 1])!r} is a value, not a section ({name!r})")
    return field


def train_overlay(values: dict[str, Any]) -> dict[str, Any]:
    """{'lr': 1e-4, 'tfidf.C': 2.0} -> {'lr': 1e-4, 'tfidf': {'C': 2.0}}: a train section."""
    tree: dict[str, Any] = {}
    for name, value in values.items():
        *sections, leaf = name.split(".")
        node = tree
        for part in sections:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


class SweepParams(Section):
    """sweep: an Optuna study over train params (flows/sweep.py, nlpflow sweep)."""

    n_trials: int = Field(default=20, ge=1, description="Trials the study runs.")
    parallelism: int = Field(default=2, ge=1, description="Trials trained at the same time.")
    runner: Literal["threads", "processes", "engine", "dask", "ray"] = Field(
        default="processes",
        description="Where trials run: processes or threads of this machine (threads: not for "
        "parallel transformer trials, which share accelerate's state); engine: where the "
        "NLPFLOW_ENGINE setting says (local: one trial at a time in this process; processes; "
        "a Dask or Ray cluster, local or at an address); dask or ray: that cluster, at "
        "NLPFLOW_ENGINE's address when it names one (else NLPFLOW_SWEEP_ADDRESS, the older "
        "setting), else a local cluster of sweep.parallelism workers. dask and ray need "
        "pip install 'nlpflow[dask]' / 'nlpflow[ray]'; their workers need the project folder "
        "at the same path (a shared file system).",
    )
    metric: Literal[
        "val_macro_f1", "val_accuracy", "val_entity_f1", "val_loss", "val_npmi", "val_diversity"
    ] = Field(
        default="val_macro_f1",
        description="Validation metric a trial is judged (and pruned) on, as train reports it "
        "per epoch; a trial's value is its best epoch's. val_loss is minimised (Hugging Face "
        "Trainer families only), the others maximised. val_entity_f1 is token "
        "classification's (its default there); val_npmi (coherence of the topics on the "
        "validation texts, the default there) and val_diversity topic modelling's; the others "
        "classification's.",
    )
    pruner: Literal["median", "none"] = Field(
        default="median",
        description="median stops a trial whose best metric so far is worse than the median of "
        "completed trials at the same epoch; none lets every trial finish.",
    )
    pruner_startup_trials: int = Field(
        default=2, ge=0, description="Completed trials before the pruner judges any trial."
    )
    pruner_warmup_epochs: int = Field(
        default=1, ge=0, description="Epochs every trial completes before it can be pruned."
    )
    seed: int = Field(default=13, description="Seed of the sampler (TPE) of the study.")
    timeout: float | None = Field(
        default=None, gt=0, description="No trial starts after this many seconds; null = none."
    )
    study: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="Study name; its storage is .nlpflow/sweep/<study>/, so an existing name "
        "continues that study. null = a new study named by the time it starts.",
    )
    experiment: str | None = Field(
        default=None,
        description="MLflow experiment of the sweep's runs; null = <register.experiment>-sweep "
        "(kept apart from the pipeline runs the promotion gate compares).",
    )
    output: str = Field(
        default="reports/sweep/best_params.yaml",
        min_length=1,
        description="Where the best trial's values go, as a params file with a train: section "
        "(relative to the project): nlpflow run --config <output>.",
    )
    space: dict[str, SearchDimension] = Field(
        default={},
        description="Train params to search, by name (dotted for nested ones, e.g. tfidf.C): "
        "{type: float|int, low, high, log, step} or {type: categorical, choices: [...]}.",
    )

    @field_validator("space", mode="before")
    @classmethod
    def _known_keys(cls, value: object) -> object:
        # Checked here: the generic 'unknown key' message cannot see into a dict of sections.
        allowed = sorted(SearchDimension.model_fields)
        for name, spec in value.items() if isinstance(value, dict) else ():
            if not isinstance(spec, dict):
                raise ValueError(
                    f"{name}: expected a mapping like {{type: float, low: 0.0, high: 0.3}}, "
                    f"got {spec!r}"
                )
            unknown = sorted(set(spec) - set(allowed))
            if unknown:
                raise ValueError(
                    f"{name}: unknown key {', '.join(map(repr, unknown))}; allowed keys: "
                    f"{', '.join(allowed)}"
                )
        return value

    @field_validator("space")
    @classmethod
    def _train_params(cls, value: dict[str, SearchDimension]) -> dict[str, SearchDimension]:
        checked = {}
        for name, dim in value.items():
            kinds = _kinds(_train_field(name))
            if dim.type == "float" and float not in kinds:
                names = " or ".join(getattr(k, "__name__", str(k)) for k in kinds)
                raise ValueError(f"{name} holds {names} values: use type int or categorical")
            values = dim.choices if dim.type == "categorical" else [dim.low, dim.high]
            checked[name] = dim.model_copy(update=_checked_values(name, dim, values or []))
        return checked

    @property
    def direction(self) -> Literal["maximize", "minimize"]:
        return "minimize" if self.metric.endswith("loss") else "maximize"


def _kinds(field: Any) -> tuple[Any, ...]:
    from typing import get_args

    return get_args(field.annotation) or (field.annotation,)


def _checked_values(name: str, dim: SearchDimension, values: list[Any]) -> dict[str, Any]:
    """Each bound or choice as train would read it (so '1e-5' becomes 1e-05); ValueError naming
    the value train refuses."""
    accepted = []
    for value in values:
        try:
            train = TrainParams.model_validate(train_overlay({name: value}))
        except ValidationError as exc:
            reason = exc.errors()[0]["msg"].removeprefix("Value error, ")
            raise ValueError(f"{name}: {value!r} is not a valid value: {reason}") from None
        node: Any = train
        for part in name.split("."):
            node = getattr(node, part)
        accepted.append(node)
    if dim.type == "categorical":
        return {"choices": accepted}
    return {}
