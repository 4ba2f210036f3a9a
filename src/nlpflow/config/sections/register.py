"""register and serve: the promotion gate, the model card, and the served model's limits."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from nlpflow.config.sections.base import Section


class GateParams(Section):
    """register.gate: what a challenger must show before it becomes champion."""

    min_improvement: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Margin: the challenger's main metric must exceed the champion's by at least "
        "this, on the same test set.",
    )
    significance: Literal["mcnemar", "bootstrap"] = Field(
        default="mcnemar",
        description="Paired test that the challenger beats the champion: McNemar's exact test "
        "on the rows one gets right and the other wrong, or a paired bootstrap of the main metric.",
    )
    alpha: float = Field(
        default=0.05, gt=0.0, lt=1.0, description="Significance level of that test (one-sided)."
    )
    max_slice_drop: float = Field(
        default=0.05,
        ge=0.0,
        le=1.0,
        description="Largest drop of the main metric on any slice (of at least "
        "evaluate.min_slice_size rows) against the champion.",
    )
    min_behavioural_pass_rate: float = Field(
        default=0.8, ge=0.0, le=1.0, description="Smallest pass rate over all behavioural cases."
    )
    beat_baseline: bool = Field(
        default=True,
        description="The challenger must score above the baseline trained on the same data "
        "(train.baseline; for text-classification tfidf_logreg by default); not checked "
        "when train.family is the baseline's family.",
    )


class CardParams(Section):
    """register.card: the words of the model card that no metric can supply."""

    intended_use: str | None = Field(
        default=None,
        min_length=1,
        description="What the model is for, and what it is not for. null: the card states "
        "only what the run knows (the NLP task, its labels, the data) and asks for this to be "
        "set; it never guesses a purpose.",
    )
    limitations: list[str] = Field(
        default=[], description="Known limits, one sentence each (measured ones are added)."
    )


class RegisterParams(Section):
    """register: where runs are tracked, the promotion gate, and the model card."""

    experiment: str = Field(
        default="nlpflow", description="MLflow experiment of the pipeline runs."
    )
    model_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="Registered model the run registers to and the commands serve from. "
        "null: `nlpflow-` + the data's name (data/tickets.csv -> nlpflow-tickets), so each "
        "dataset gets its own champion. NLPFLOW_REGISTERED_MODEL, when set, wins over both.",
    )
    gate: GateParams = GateParams()
    card: CardParams = CardParams()
    quantize: Literal["none", "dynamic_int8"] = Field(
        default="none",
        description="dynamic_int8: the served transformer runs its Linear layers in int8 "
        "(torch dynamic quantization); see README for its measured speed and accuracy.",
    )
    experiments: Literal["log", "register"] = Field(
        default="log",
        description="What register does in a DVC experiment (dvc exp run): log logs the model "
        "and the gate's verdict to the experiment's MLflow run and registers no version, so no "
        "alias moves; register registers and gates it as `nlpflow run` does.",
    )


class ServeParams(Section):
    """serve: limits the registered model enforces on every request (baked in at registration)."""

    max_chars: int = Field(
        default=5000, ge=1, description="Longest text accepted, in characters (longer: 400)."
    )
    max_batch: int = Field(default=256, ge=1, description="Most texts in one request (more: 400).")
    rules: str | None = Field(
        default=None,
        min_length=1,
        description="Hybrid serving (text-classification): a rules file (the format of "
        "train.rules.patterns; its default label is not used) whose rules override the "
        "model's label wherever one fires; elsewhere the model decides. Relative to the "
        "project folder; copied into the registered version, which the gate then scores as "
        "served. null = the model alone.",
    )
