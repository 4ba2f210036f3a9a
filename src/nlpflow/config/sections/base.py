"""The base of every params section: unknown keys are errors, values are frozen."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    # allow_inf_nan=False: no knob means anything at inf or nan (lr=inf trained a broken model;
    # nan passes no bound, and `ge=0` lets inf through)
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
