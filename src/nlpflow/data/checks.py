"""What every NLP task's validate suite is made of: Check (one Great Expectations
expectation, with its id and plain-language name), the row id each check reports rows by, and
the length bins drift is measured on. Each task builds its own suite from these (its Data
module, nlpflow.data.nlp: build_frame, build_checks, compute_profile).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

ROW_ID = "row_id"
LENGTH_BIN = "length_bin"


def result_format() -> dict[str, Any]:
    """GX's result format for every check, a new dict on each call: GX fills its defaults into
    the dict it is given, so one shared dict, once used to validate a chunk, no longer equals
    the stored checkpoint's and gx/ was rewritten (and validate's cache missed)."""
    return {"result_format": "COMPLETE", "unexpected_index_column_names": [ROW_ID]}


@dataclass(frozen=True)
class Check:
    id: str  # stable key, as in validate.policy
    name: str  # plain-language description, shown in reports and in the GX results
    expectation: Any
    # What the report says beyond GX's result, from run-time values the suite file cannot
    # hold: the name with the suite parameters filled in (the allowed labels), and a failed
    # check's details from the validated frame (the label_map that merges label variants).
    report_name: Callable[[dict[str, Any]], str] | None = None
    details: Callable[[pd.DataFrame], dict[str, Any]] | None = None


def length_bin(tokens: int) -> str:
    """Power-of-two bins of token counts: '0', '1', '2-3', '4-7', ... ."""
    if tokens <= 1:
        return str(max(tokens, 0))
    low = 1 << (int(tokens).bit_length() - 1)
    return f"{low}-{2 * low - 1}"


def spelling_variants(values: pd.Series) -> dict[str, str]:
    """Each value spelled differently from another of the same label_key ("billing ",
    "Billing"), mapped to the spelling most rows use (ties: the first in sorted order): the
    label_variants check of every task's suite."""
    counts = values.dropna().astype(str).value_counts()
    return variants_of_counts({str(k): int(v) for k, v in counts.items()})


def variants_of_counts(counts: Mapping[str, int]) -> dict[str, str]:
    """spelling_variants from each value's row count (the streaming path counts chunk by chunk)."""
    from nlpflow.data.text import label_key

    groups: dict[str, list[str]] = {}
    for value in sorted(counts):
        groups.setdefault(label_key(value), []).append(value)
    out: dict[str, str] = {}
    for spellings in groups.values():
        if len(spellings) > 1:
            keep = max(spellings, key=lambda s: (counts[s], -spellings.index(s)))
            out |= {s: keep for s in spellings if s != keep}
    return out


def variant_details(mapping: dict[str, str]) -> dict[str, Any]:
    """The groups of spellings of one value, and the data.label_map that merges them."""
    groups: dict[str, list[str]] = {}
    for variant, keep in mapping.items():
        groups.setdefault(keep, []).append(variant)
    return {"groups": groups, "label_map": mapping}
