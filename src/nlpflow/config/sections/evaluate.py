"""evaluate: the test-set evaluation (main metric, bootstrap, slices, behavioural tests)."""

from __future__ import annotations

import re
from itertools import pairwise
from typing import Literal

from pydantic import Field, field_validator, model_validator

from nlpflow.config.sections.base import Section

# The metrics a single number can be chosen from: the one list of them per NLP task
# (nlpflow.config.nlp_tasks, NlpTask.metrics; the gate and the bootstrap score the chosen one).
# Classification's: evaluation.metrics computes these as SCALAR_METRICS.
ClassMetric = Literal["macro_f1", "accuracy", "mcc", "weighted_f1", "micro_f1"]
# Token classification's: entity-level (seqeval's strict) micro and macro F1
EntityMetric = Literal["entity_f1", "entity_macro_f1"]
MainMetric = ClassMetric | EntityMetric


class SliceParams(Section):
    """One configured slice of the test set: rows whose raw text matches."""

    keywords: list[str] | None = Field(
        default=None,
        description="Rows containing any of these words or phrases (case-insensitive, whole words).",
    )
    regex: str | None = Field(
        default=None, description="Rows where this Python regular expression matches (re.search)."
    )

    @model_validator(mode="after")
    def _one_rule(self) -> SliceParams:
        if (self.keywords is None) == (self.regex is None):
            raise ValueError("give a slice either keywords or regex (exactly one)")
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"regex {self.regex!r} does not compile: {exc}") from None
        if self.keywords is not None and not [k for k in self.keywords if k.strip()]:
            raise ValueError("keywords must hold at least one non-blank word")
        return self


class EvaluateParams(Section):
    """evaluate: how deep the test-set evaluation goes."""

    main_metric: MainMetric = Field(
        default="macro_f1",
        description="The metric the bootstrap interval, the slices and the promotion gate use; "
        "one of the NLP task's (entity_f1 or entity_macro_f1 for token-classification, whose "
        "default is entity_f1).",
    )
    bootstrap_samples: int = Field(
        default=1000, ge=100, le=100_000, description="Bootstrap resamples of the test set."
    )
    confidence_level: float = Field(
        default=0.95, gt=0.5, lt=1.0, description="Level of the bootstrap confidence interval."
    )
    seed: int = Field(default=13, description="Seed of the bootstrap and the behavioural tests.")
    length_buckets: list[int] = Field(
        default=[8, 16, 32, 64],
        description="Edges of the text-length slices, in whitespace tokens of the raw text: "
        "[8, 16] gives <=8, 9-16 and >16.",
    )
    negation: bool = Field(
        default=True, description="Add the slice of texts holding a negation (English cues)."
    )
    slices: dict[str, SliceParams] = Field(
        default={},
        description="Named keyword or regex slices, e.g. {refunds: {keywords: [refund]}}.",
    )
    min_slice_size: int = Field(
        default=20,
        ge=1,
        description="Slices with fewer test rows are reported but neither gated nor trusted.",
    )
    calibration_bins: int = Field(
        default=10, ge=2, le=100, description="Equal-width confidence bins of ECE and the diagram."
    )
    worst_errors: int = Field(
        default=25, ge=0, description="Rows in the table of highest-confidence mistakes."
    )
    behavioural: str | None = Field(
        default="behavioural.yaml",
        description="The project's behavioural tests (CheckList style), relative to the project; "
        "null = none. A missing file is an error, not a silent skip. validate checks, before "
        "training, that every label the file names is one of the data's: the sample's "
        "behavioural.yaml as shipped (unedited) runs on other data without its tests that name "
        "absent labels, with a warning; any other file that names one stops the run.",
    )

    @field_validator("length_buckets")
    @classmethod
    def _increasing(cls, value: list[int]) -> list[int]:
        if any(b <= a for a, b in pairwise(value)) or any(v < 1 for v in value):
            raise ValueError("length_buckets must be positive and strictly increasing")
        return value
