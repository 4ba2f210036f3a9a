"""Params: everything that changes a model, read from `params.yaml`, one model per section.

Unknown keys are errors (a typo must not silently fall back to a default). `--set a.b=value`
overrides one value; the value is parsed as YAML, so `--set train.lr=3e-5` gives a float.
Each section is a module of nlpflow.config.sections; they are all importable from here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from nlpflow.config.nlp_tasks import DEFAULT_NLP_TASK, NLP_TASKS, get_nlp_task
from nlpflow.config.sections.base import Section
from nlpflow.config.sections.data import DataParams, SampleParams, SplitParams
from nlpflow.config.sections.evaluate import EvaluateParams, MainMetric, SliceParams
from nlpflow.config.sections.families import (
    FAMILIES,
    FAMILY_SECTIONS,
    EmbeddingsParams,
    Family,
    FrozenParams,
    SpacyTextcatParams,
    SvmParams,
    TfidfParams,
)
from nlpflow.config.sections.inference import InferenceParams
from nlpflow.config.sections.preprocess import PreprocessParams
from nlpflow.config.sections.register import CardParams, GateParams, RegisterParams, ServeParams
from nlpflow.config.sections.runtime import RuntimeParams
from nlpflow.config.sections.schedule import ScheduleParams
from nlpflow.config.sections.sweep import SearchDimension, SweepParams, train_overlay
from nlpflow.config.sections.train import (
    DEFAULT_ENCODER,
    AugmentOp,
    AugmentParams,
    CheckpointParams,
    DistributedParams,
    TrainParams,
    baseline_is_model,
    baseline_train,
    family_knobs,
    read_by_train,
)
from nlpflow.config.sections.validate import (
    ROW_CHECKS,
    SCRIPTS,
    TABLE_CHECKS,
    ValidateParams,
)
from nlpflow.errors import ParamsError

__all__ = [
    "DEFAULT_ENCODER", "FAMILIES", "FAMILY_SECTIONS", "ROW_CHECKS", "SCRIPTS",
    "TABLE_CHECKS", "AugmentOp", "AugmentParams", "CardParams", "CheckpointParams", "DataParams",
    "DistributedParams", "EmbeddingsParams", "EvaluateParams", "Family", "FrozenParams", "GateParams",
    "InferenceParams", "MainMetric", "Params", "PreprocessParams", "RegisterParams", "RuntimeParams",
    "SampleParams", "ScheduleParams", "SearchDimension", "ServeParams", "SliceParams",
    "SpacyTextcatParams", "SplitParams", "SvmParams", "SweepParams", "TfidfParams", "TrainParams",
    "ValidateParams", "apply_override", "baseline_is_model", "baseline_train", "family_knobs",
    "flatten", "load_params", "merge", "parse_params",
    "read_by_train", "train_overlay",
]  # fmt: skip


# preprocess switches that change the text (none is on by default)
TEXT_CHANGES = ("lowercase", "lemmatize", "remove_stopwords", "remove_punctuation",
                "remove_numbers", "stem", "strip_accents", "mask_entities", "max_tokens")  # fmt: skip


class Params(Section):
    """The whole params.yaml."""

    task: str = Field(
        default=DEFAULT_NLP_TASK,
        description="The NLP task, named as Hugging Face names it: "
        + "; ".join(f"{t.name}: {t.summary}" for t in NLP_TASKS.values())
        + ". train.family must be a family that serves it.",
    )
    data: DataParams = DataParams()
    validate_: ValidateParams = Field(default=ValidateParams(), alias="validate")
    preprocess: PreprocessParams = PreprocessParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    register_: RegisterParams = Field(default=RegisterParams(), alias="register")
    serve: ServeParams = ServeParams()
    inference: InferenceParams = InferenceParams()
    schedule: ScheduleParams = ScheduleParams()
    sweep: SweepParams = SweepParams()
    runtime: RuntimeParams = RuntimeParams()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("task")
    @classmethod
    def _known_task(cls, value: str) -> str:
        return get_nlp_task(value).name

    @model_validator(mode="after")
    def _family_serves_task(self) -> Params:
        family = FAMILIES[self.train.family]
        if not family.serves(self.task):
            serving = [f.name for f in FAMILIES.values() if f.serves(self.task)]
            raise ValueError(
                f"train.family: {family.name} serves {' and '.join(family.tasks)}, not task "
                f"{self.task}; families that serve {self.task}: {', '.join(serving) or 'none yet'}"
            )
        return self

    @property
    def baseline_family(self) -> str:
        """The family of the baseline stage: train.baseline, else the NLP task's own."""
        return self.train.baseline or get_nlp_task(self.task).baseline

    @model_validator(mode="after")
    def _baseline_serves_task(self) -> Params:
        chosen = self.train.baseline
        choices = [f.name for f in FAMILIES.values() if f.can_be_baseline and f.serves(self.task)]
        if chosen is not None and chosen not in choices:
            raise ValueError(
                f"train.baseline: {chosen} cannot be task {self.task}'s baseline; choose one "
                f"of {', '.join(choices)}, or null for the task's own "
                f"({get_nlp_task(self.task).baseline})"
            )
        return self

    @model_validator(mode="after")
    def _text_rules_have_a_file(self) -> Params:
        """Classification rules are a file a person writes: nothing to learn from train."""
        if "rules" not in (self.train.family, self.baseline_family):
            return self
        if self.task != "text-classification":  # the tagger's own checks: its fit
            return self
        which = "train.family" if self.train.family == "rules" else "train.baseline"
        if self.train.rules.patterns is None:
            raise ValueError(
                f"train.rules.patterns: {which} is rules, which classifies texts with the rules "
                "of a file; give its path, e.g. configs/rules/sms_spam.yaml (its format: "
                "docs/training.md, The rules family)"
            )
        if self.train.rules.from_train:
            raise ValueError(
                "train.rules.from_train: a gazetteer of train entities is for "
                "token-classification; text-classification rules come from "
                "train.rules.patterns only: remove from_train"
            )
        return self

    @model_validator(mode="after")
    def _hybrid_classifies(self) -> Params:
        if self.serve.rules is not None and self.task != "text-classification":
            raise ValueError(
                f"serve.rules: hybrid serving overrides a text classifier's label where a rule "
                f"fires; task {self.task} has no label per text: set serve.rules: null"
            )
        return self

    @model_validator(mode="after")
    def _main_metric_of_task(self) -> Params:
        metrics = get_nlp_task(self.task).metrics
        return self._task_choice("evaluate", "main_metric", metrics, "is no metric of task {task}")

    @model_validator(mode="after")
    def _sweep_metric_of_task(self) -> Params:
        metrics = get_nlp_task(self.task).sweep_metrics
        return self._task_choice(
            "sweep", "metric", metrics, "is not reported by task {task}'s families"
        )

    def _task_choice(self, section: str, field: str, choices: tuple[str, ...], why: str) -> Params:
        """`section.field` must be one of the task's `choices`; left unset, the field's default
        (classification's) becomes the task's first choice."""
        part = getattr(self, section)
        value = getattr(part, field)
        if value in choices:
            return self
        if field in part.model_fields_set:
            raise ValueError(
                f"{section}.{field}: {value} {why.format(task=self.task)}; choose one of "
                f"{', '.join(choices)}"
            )
        object.__setattr__(self, section, part.model_copy(update={field: choices[0]}))
        return self

    @model_validator(mode="after")
    def _task_reads_the_format(self) -> Params:
        formats = get_nlp_task(self.task).formats
        if self.data.format not in formats:
            raise ValueError(
                f"data.format: {self.data.format} is not read for task {self.task}; it reads "
                f"{', '.join(formats)}"
            )
        return self

    @model_validator(mode="after")
    def _targets_given(self) -> Params:
        """Only a task that learns without targets reads unlabelled text."""
        entry = get_nlp_task(self.task)
        if self.data.label_column is None and not entry.targets_optional:
            optional = [t.name for t in NLP_TASKS.values() if t.targets_optional]
            raise ValueError(
                f"data.label_column: null means the text has no labels, but task {self.task} "
                f"learns from them: name the label column (tasks that read unlabelled text: "
                f"{', '.join(optional)})"
            )
        if self.data.time_column is not None and "data.time_column" not in entry.own_params:
            raise ValueError(
                f"data.time_column is read by task topic-modeling only, not {self.task}: remove it"
            )
        return self

    @model_validator(mode="after")
    def _text_kept(self) -> Params:
        """A task whose targets point into the text (entity offsets) takes it as written."""
        if not get_nlp_task(self.task).keeps_text:
            return self
        # remove_urls and remove_emails (on by default, for classification) are not refused:
        # preprocess applies no switch to such a task's text, and says so in its report
        changes = [name for name in TEXT_CHANGES if getattr(self.preprocess, name)]
        if changes:
            raise ValueError(
                f"preprocess: {', '.join(changes)} would change the text, but task {self.task} "
                "keeps it as written: its targets are character offsets into it, and case "
                "marks names. Remove these preprocess settings."
            )
        if self.train.augment.enabled:
            raise ValueError(
                f"train.augment rewrites texts, which would move task {self.task}'s targets "
                "(character offsets): set train.augment.enabled: false."
            )
        if self.data.label_pattern:
            raise ValueError(
                f"data.label_pattern picks a label out of a label column; task {self.task} has "
                "tags, not labels: rename entity types with data.label_map."
            )
        return self

    @model_validator(mode="after")
    def _quantizable(self) -> Params:
        if self.register_.quantize != "none" and not FAMILIES[self.train.family].quantizable:
            raise ValueError(
                f"register.quantize: {self.register_.quantize} quantizes the fine-tuned "
                f"transformer's Linear layers; train.family {self.train.family} has none to "
                "quantize: set register.quantize: none"
            )
        return self

    @model_validator(mode="after")
    def _no_credentials(self) -> Params:
        # Params reach MLflow, Prefect's database, DVC and the manifest: a password in any URL
        # param (data.source, inference.source/output, ...) would leak into all of them.
        from nlpflow.config.secrets import refusal, secret_paths

        found = secret_paths(self.to_dict())
        if found:
            raise ValueError("\n  ".join(refusal(path, value) for path, value in found))
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    def public_dict(self) -> dict[str, Any]:
        """to_dict with passwords and tokens in URLs replaced by ***: what may be logged to
        MLflow or written into a model card (params refuse them; this is the second guard)."""
        from nlpflow.config.secrets import redact_tree

        return dict(redact_tree(self.to_dict()))


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}, as MLflow params."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def apply_override(tree: dict[str, Any], assignment: str) -> None:
    """Apply one `dotted.key=value` to a raw params tree, in place."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key.strip():
        raise ParamsError(f"--set {assignment!r}: expected KEY=VALUE, e.g. --set train.epochs=1")
    parts = key.strip().split(".")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ParamsError(f"--set {assignment!r}: {part!r} is a value, not a section")
        node = child
    try:
        node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ParamsError(
            f"--set {assignment!r}: the value {raw!r} is not valid YAML ({problem}); close its "
            "brackets or quotes, or quote the whole value as text, e.g. --set 'key=\"[1,2\"'"
        ) from None


def _describe(error: dict[str, Any]) -> str:
    path = ".".join(str(p) for p in error["loc"])
    if error["type"] == "extra_forbidden":
        parent: type[BaseModel] = Params
        for part in error["loc"][:-1]:
            field = parent.model_fields.get(str(part)) or next(
                (f for f in parent.model_fields.values() if f.alias == part), None
            )
            annotation = getattr(field, "annotation", None)
            if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
                break
            parent = annotation
        known = sorted(f.alias or n for n, f in parent.model_fields.items())
        return f"{path}: unknown key; allowed keys here: {', '.join(known)}"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] in ("literal_error", "finite_number"):
        message = f"{message} (got {error['input']!r})"
    return f"{path}: {message}" if path else message


def parse_params(tree: dict[str, Any], *, origin: str = "params") -> Params:
    try:
        return Params.model_validate(tree)
    except ValidationError as exc:
        lines = "\n  ".join(_describe(dict(e)) for e in exc.errors())
        raise ParamsError(f"{origin} is invalid:\n  {lines}") from None


def _read_tree(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path} is not valid YAML: {exc}") from None
    if loaded is not None and not isinstance(loaded, dict):
        raise ParamsError(f"{path} must hold a mapping of sections (data, train, ...)")
    return loaded or {}


def _read_params_file(path: Path) -> dict[str, Any]:
    """params.yaml itself: present but empty is a mistake (a truncated write, a wrong copy),
    not a request for every default, which would train on the bundled sample."""
    tree = _read_tree(path)
    if not tree:
        raise ParamsError(
            f"{path} is empty (no params in it): write the params you change, at least "
            "`data: {source: <your data>}`, or delete the file to run on every default "
            "(`nlpflow params` prints them all)."
        )
    return tree


def merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge `overlay` onto `base`: sections merge, values replace."""
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def load_params(
    path: Path, overrides: list[str] | None = None, configs: list[Path] | None = None
) -> Params:
    """params.yaml (missing file = all defaults), then each config file merged on top
    (e.g. configs/mr.yaml), then `--set` overrides; validated once at the end."""
    tree = _read_params_file(path) if path.exists() else {}
    for config in configs or []:
        if not config.is_file():
            raise ParamsError(f"config file {config} does not exist (see configs/ for examples)")
        tree = merge(tree, _read_tree(config))
    for assignment in overrides or []:
        apply_override(tree, assignment)
    origin = " + ".join([path.name, *(str(c) for c in configs or [])])
    return parse_params(tree, origin=origin)
