"""The behavioural file's schema (one pydantic model per kind of test) and the results.

nlpflow.evaluation.behavioural reads and checks the file; behavioural_run runs it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

Predict = Callable[[list[str]], tuple[list[str], np.ndarray]]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Sourced(_Strict):
    """Tests that run over texts: listed in the file, or drawn from the test split."""

    name: str = Field(min_length=1, description="Unique; names the test in reports and MLflow.")
    texts: list[str] | None = Field(default=None, description="Raw texts to test.")
    from_test: int | None = Field(
        default=None, ge=1, description="Draw up to this many test rows (seeded by evaluate.seed)."
    )
    predicted_as: str | None = Field(
        default=None,
        description="from_test draws only rows the model predicts as this label (directional "
        "tests with expect: flip default to their `label`: only those can flip away from it).",
    )

    @model_validator(mode="after")
    def _one_source(self) -> _Sourced:
        if (self.texts is None) == (self.from_test is None):
            raise ValueError("give either texts or from_test (exactly one)")
        if self.texts is not None and not self.texts:
            raise ValueError("texts is empty")
        return self


class InvarianceTest(_Sourced):
    type: Literal["invariance"]
    perturbation: Literal["typos", "person_names", "punctuation"]
    typos: int = Field(default=1, ge=1, le=5, description="typos: adjacent swaps per text.")


class DirectionalTest(_Sourced):
    type: Literal["directional"]
    transform: Literal["add_negation"] | None = None
    append: str | None = Field(default=None, description="Text added at the end (after a space).")
    prepend: str | None = Field(default=None, description="Text put in front (then a space).")
    label: str = Field(description="The label whose probability or prediction is expected to move.")
    expect: Literal["increase", "decrease", "flip"]

    @model_validator(mode="after")
    def _one_transform(self) -> DirectionalTest:
        given = [v for v in (self.transform, self.append, self.prepend) if v is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of transform (add_negation), append or prepend")
        return self


class MftExample(_Strict):
    text: str = Field(min_length=1)
    label: str


class MftTest(_Strict):
    name: str = Field(min_length=1)
    type: Literal["mft"]
    examples: list[MftExample] = Field(min_length=1)


BehaviouralTest = Annotated[InvarianceTest | DirectionalTest | MftTest, Field(discriminator="type")]


class BehaviouralSuite(_Strict):
    tests: list[BehaviouralTest]

    @model_validator(mode="after")
    def _unique_names(self) -> BehaviouralSuite:
        refuse_repeated_names([t.name for t in self.tests])
        return self


def refuse_repeated_names(names: list[str]) -> None:
    """A suite's tests are told apart by name (reports, MLflow metrics): every task's suite."""
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"test names must be unique; repeated: {', '.join(repeated)}")


class BehaviouralResult(BaseModel):
    name: str
    type: str
    cases: int
    passed: int
    skipped: int  # texts the test does not apply to (unchanged by the perturbation, ...)
    pass_rate: float | None
    failures: list[dict[str, Any]]
    not_run: str | None = None  # why the whole test did not run (the sample's, on other labels)


class BehaviouralReport(BaseModel):
    pass_rate: float | None  # passed cases over all cases; None without cases
    cases: int
    tests: list[BehaviouralResult]

    def summary(self) -> dict[str, Any]:
        return {"pass_rate": self.pass_rate, "tests": {t.name: t.pass_rate for t in self.tests}}


def named_labels(test: InvarianceTest | DirectionalTest | MftTest) -> list[str]:
    if isinstance(test, MftTest):
        return [e.label for e in test.examples]
    if isinstance(test, DirectionalTest):
        return [n for n in (test.label, test.predicted_as) if n is not None]
    return [n for n in (test.predicted_as,) if n is not None]
