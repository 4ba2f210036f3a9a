"""nlpflow's own Great Expectations: text checks GX does not ship, written as GX custom
expectations so they run inside the same Checkpoint and appear in Data Docs like built-in ones.

Importing this module registers them with GX (it imports great_expectations, so only the
validate stage imports it).

- ExpectColumnValuesToHaveNoEncodingDamage: no U+FFFD or control characters (row-level).
- ExpectColumnValuesToBeMostlyInScript: letters mostly in one script, e.g. Latin (row-level).
- ExpectColumnListValuesToBeInSet: every item of each row's list (a sentence's tags) in a
  set (row-level).
- ExpectColumnDistributionToStayNear: total variation distance of a column's value shares
  (the items' shares, for a column of lists) from a reference (the last accepted snapshot) at
  most a tolerance (aggregate).
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import (
    ColumnAggregateExpectation,
    ColumnMapExpectation,
)
from great_expectations.expectations.metrics.column_aggregate_metric_provider import (
    ColumnAggregateMetricProvider,
    column_aggregate_value,
)
from great_expectations.expectations.metrics.map_metric_provider import (
    ColumnMapMetricProvider,
    column_condition_partial,
)

from nlpflow.config import params

# U+FFFD (bytes that were not UTF-8) and C0/C1 controls other than tab and line breaks.
DAMAGE = "[\ufffd\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"
# Scripts as Unicode character names begin ("LATIN SMALL LETTER A", "CYRILLIC ...").
SCRIPTS = tuple(s.upper() for s in params.SCRIPTS)


@lru_cache(maxsize=65536)
def _letter_script(char: str) -> str:
    name = unicodedata.name(char, "")
    return next((s for s in SCRIPTS if name.startswith(s)), "OTHER")


def script_share(text: object, script: str) -> float:
    """Share of a text's letters written in `script`; 1.0 for a text without letters."""
    if not isinstance(text, str) or (script == "LATIN" and text.isascii()):
        return 1.0  # the common case, decided without looking at each letter
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return 1.0
    return sum(_letter_script(c) == script for c in letters) / len(letters)


def _is_list(value: object) -> bool:
    # Parquet gives lists back as numpy arrays
    return isinstance(value, (list, tuple, np.ndarray))


# ---------------------------------------------------------------- metrics


class ColumnValuesNoEncodingDamage(ColumnMapMetricProvider):
    condition_metric_name = "column_values.nlpflow_no_encoding_damage"

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, **kwargs: Any) -> pd.Series:
        return ~column.astype(str).str.contains(DAMAGE, regex=True)


class ColumnValuesInScript(ColumnMapMetricProvider):
    condition_metric_name = "column_values.nlpflow_in_script"
    condition_value_keys = ("script", "min_letter_share")

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(
        cls, column: pd.Series, script: str, min_letter_share: float, **kwargs: Any
    ) -> pd.Series:
        return column.map(lambda t: script_share(t, script) >= min_letter_share).astype(bool)


class ColumnListValuesInSet(ColumnMapMetricProvider):
    condition_metric_name = "column_values.nlpflow_list_items_in_set"
    condition_value_keys = ("value_set",)

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, value_set: Any, **kwargs: Any) -> pd.Series:
        allowed = set(value_set)
        return column.map(lambda items: _is_list(items) and set(items) <= allowed).astype(bool)


class ColumnValueShares(ColumnAggregateMetricProvider):
    metric_name = "column.nlpflow_value_shares"

    @column_aggregate_value(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, **kwargs: Any) -> dict[str, float]:
        values = column.dropna()
        if len(values) and _is_list(values.iloc[0]):  # a column of lists: each item counts
            values = values.explode().dropna()
        shares = values.astype(str).value_counts(normalize=True)
        return {str(k): float(v) for k, v in shares.items()}


# ---------------------------------------------------------------- expectations


class ExpectColumnValuesToHaveNoEncodingDamage(ColumnMapExpectation):
    """Expect text without U+FFFD or control characters, the marks of a wrong decoding."""

    map_metric = "column_values.nlpflow_no_encoding_damage"
    success_keys = ("mostly",)
    library_metadata: ClassVar[dict[str, Any]] = {"tags": ["nlpflow", "text"]}


class ExpectColumnValuesToBeMostlyInScript(ColumnMapExpectation):
    """Expect at least `min_letter_share` of each text's letters in `script` (e.g. LATIN)."""

    script: str = "LATIN"
    min_letter_share: float = 0.5

    map_metric = "column_values.nlpflow_in_script"
    success_keys = ("script", "min_letter_share", "mostly")
    library_metadata: ClassVar[dict[str, Any]] = {"tags": ["nlpflow", "text"]}


class ExpectColumnListValuesToBeInSet(ColumnMapExpectation):
    """Expect each value to be a list whose items all lie in `value_set` (e.g. a sentence's
    tags in the allowed tag set); a value that is not a list is unexpected."""

    value_set: list[str] | dict[str, Any]  # a list, or a {"$PARAMETER": ...} suite parameter

    map_metric = "column_values.nlpflow_list_items_in_set"
    success_keys = ("value_set", "mostly")
    library_metadata: ClassVar[dict[str, Any]] = {"tags": ["nlpflow", "tokens"]}


class ExpectColumnDistributionToStayNear(ColumnAggregateExpectation):
    """Expect the column's value shares within `max_distance` total variation distance of
    `reference` ({value: share}); an empty reference (no accepted snapshot yet) passes."""

    reference: dict[str, Any]
    max_distance: float

    metric_dependencies = ("column.nlpflow_value_shares",)
    success_keys = ("reference", "max_distance")
    library_metadata: ClassVar[dict[str, Any]] = {"tags": ["nlpflow", "drift"]}

    def _validate(
        self,
        metrics: dict[str, Any],
        runtime_configuration: dict[str, Any] | None = None,
        execution_engine: Any = None,
    ) -> dict[str, Any]:
        shares: dict[str, float] = metrics["column.nlpflow_value_shares"]
        reference = {str(k): float(v) for k, v in (self.reference or {}).items()}
        if not reference:
            return {"success": True, "result": {"observed_value": None,
                                                "details": {"note": "no accepted snapshot yet"}}}  # fmt: skip
        distance = compute_tvd(shares, reference)
        changes = {
            k: round(shares.get(k, 0.0) - reference.get(k, 0.0), 4)
            for k in sorted(set(shares) | set(reference))
        }
        return {
            "success": distance <= float(self.max_distance),
            "result": {
                "observed_value": round(distance, 4),
                "details": {
                    "shares": {k: round(v, 4) for k, v in sorted(shares.items())},
                    "change": changes,
                },
            },
        }


def compute_tvd(p: dict[str, float], q: dict[str, float]) -> float:
    """Total variation distance: half the L1 distance of two share vectors (0 same, 1 disjoint)."""
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in set(p) | set(q))
