"""What a registered version is a model of: its NLP task, its labels and its data source.

    ours = identity_of(params, labels=["neg", "pos"])
    version_tags |= identity_tags(ours)                 # on every registered version
    check = identity_check(ours, theirs, version=3, name=name, params=params)

The gate compares a challenger with a champion only when both are models of the same thing: a
news-topic model scored against a sentiment champion on the news test rows "beat" it 0.87 to
0.00 and replaced it, and predict then answered sentiment questions with news topics. So a
champion of another task, label set or data source is not compared: the challenger is
registered, not promoted, and the reason names both sides and how to register under a name of
its own. The source is shown with secrets masked (nlpflow.config.secrets.redact). Pure: the
registry reads the champion's identity (nlpflow.release.evidence.version_identity).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nlpflow.release.gate import Check

if TYPE_CHECKING:
    from nlpflow.config.naming import RegisteredName
    from nlpflow.config.params import Params

TASK, LABELS, SOURCE, FINGERPRINT = (
    "identity.task", "identity.labels", "identity.source", "identity.fingerprint",
)  # fmt: skip


@dataclass(frozen=True)
class ModelIdentity:
    """None in a field: not known (a version registered before nlpflow recorded it, whose run
    did not say either)."""

    task: str | None
    labels: tuple[str, ...] | None
    source: str | None
    origin: str = "this run"  # where a version's identity was read: its tags, or its run

    @property
    def fingerprint(self) -> str:
        """Short hash of task, labels and source: equal fingerprints, same kind of model."""
        text = json.dumps([self.task, list(self.labels or []), self.source])
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def describe(self) -> str:
        if self.labels is not None:
            more = f", ... {len(self.labels)} in all" if len(self.labels) > 12 else ""
            labels = "[" + ", ".join(self.labels[:12]) + more + "]"
        else:  # not recorded, or topic ids, which say nothing of the data
            labels = "unknown" if labels_of(self.task, ()) is not None else "not compared (topics)"
        return f"task {self.task or 'unknown'}, labels {labels}, source {self.source or 'unknown'}"

    def differences(self, other: ModelIdentity) -> list[str]:
        """The fields known on both sides that differ."""
        pairs = {"task": (self.task, other.task), "labels": (self.labels, other.labels),
                 "data source": (self.source, other.source)}  # fmt: skip
        return [k for k, (a, b) in pairs.items() if a is not None and b is not None and a != b]

    def unknown(self) -> list[str]:
        fields = {"task": self.task, "data source": self.source}
        topics = self.labels is None and labels_of(self.task, ()) is None
        return [k for k, v in fields.items() if v is None] + (
            ["labels"] if self.labels is None and not topics else []
        )


def source_of(params: Params) -> str:
    """data.source as a person reads it, with any password or token masked; a Hugging Face
    dataset with its config (hf:nyu-mll/glue config sst2 and config cola are other data)."""
    from nlpflow.config.secrets import redact
    from nlpflow.config.source_kinds import is_hf

    data = params.data
    config = f" (config {data.hf_config})" if is_hf(data.source) and data.hf_config else ""
    return redact(data.source.strip()) + config


def labels_of(
    task: str | None, labels: list[str] | tuple[str, ...] | None
) -> tuple[str, ...] | None:
    """A model's labels as its identity holds them: sorted; None (not compared) where its NLP
    task's labels are not the data's (topic ids: a model of 8 topics and one of 12 are models
    of the same data)."""
    from nlpflow.config.nlp_tasks import NLP_TASKS

    known = NLP_TASKS.get(task or "")
    if labels is None or (known is not None and not known.labels_are_the_datas):
        return None
    return tuple(sorted(map(str, labels)))


def identity_of(params: Params, *, labels: list[str] | tuple[str, ...]) -> ModelIdentity:
    return ModelIdentity(task=params.task, labels=labels_of(params.task, labels),
                         source=source_of(params))  # fmt: skip


def identity_tags(identity: ModelIdentity) -> dict[str, str]:
    """As tags of a registered version (and its run), read back by identity_from_tags."""
    return {
        TASK: identity.task or "",
        LABELS: json.dumps(None if identity.labels is None else list(identity.labels))[:4900],
        SOURCE: (identity.source or "")[:4900],
        FINGERPRINT: identity.fingerprint,
    }


def identity_from_tags(tags: dict[str, str]) -> ModelIdentity | None:
    """None when the version was registered before nlpflow recorded its identity."""
    if FINGERPRINT not in tags:
        return None
    task = tags.get(TASK) or None
    labels = labels_of(task, json.loads(tags.get(LABELS) or "null"))
    return ModelIdentity(task=task, labels=labels, source=tags.get(SOURCE) or None,
                         origin="its tags")  # fmt: skip


def identity_check(
    ours: ModelIdentity, theirs: ModelIdentity | None, *, version: int | None,
    name: RegisteredName, params: Params,
) -> Check:  # fmt: skip
    """The gate's first check: is the champion a model of the same task, labels and data?"""
    if theirs is None or version is None:
        return Check(name="identity", passed=True, applicable=False, reason="no champion yet")
    v = f"champion v{version}"
    unknown = theirs.unknown()
    said = f" ({', '.join(unknown)} unknown: not recorded on it, nor by its run)" if unknown else ""
    differ = ours.differences(theirs)
    if not differ:
        return Check(name="identity", passed=True,
                     reason=f"same task, labels and data source as {v}{said}")  # fmt: skip
    reason = (
        f"refused to compare: {v} of {name.name!r} is a model of other data "
        f"({' and '.join(differ)} {'differs' if len(differ) == 1 else 'differ'}): {v} has {theirs.describe()}; this model has "
        f"{ours.describe()}. Not compared, not promoted; {v} stays champion. "
        + register_elsewhere(name, params)
    )
    return Check(name="identity", passed=False, reason=reason)


def register_elsewhere(name: RegisteredName, params: Params) -> str:
    """The fix: how to give this data a registered model of its own."""
    from nlpflow.config.naming import default_model_name

    own = default_model_name(params)
    if name.origin == "NLPFLOW_REGISTERED_MODEL":
        fix = (
            f"NLPFLOW_REGISTERED_MODEL={name.name} named it: unset it to let the name follow "
            f"the data ({own}), or give this data a name of its own in params "
            "register.model_name"
        )
    elif own != name.name:
        fix = (
            f"set params register.model_name to a name of its own (or remove it: the name "
            f"then follows the data, {own})"
        )
    else:
        fix = "set params register.model_name to a name of its own for this data"
    return f"To register this data under its own name, {fix}, and run again."
