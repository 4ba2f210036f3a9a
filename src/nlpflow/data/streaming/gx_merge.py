"""One Great Expectations result per check from the results of many chunks.

A row check (a ColumnMapExpectation) counts rows: its counts add up across chunks, and the
expectation's own `_validate` then decides on the sums, as it decides on one frame's counts
(its `mostly`, its percentages, its output format: the same code, so the same rounding). A
table check (the median, drift) cannot be added up: its metric comes whole from the data-wide
sketch, and `_validate` decides on that. A table check without such a metric (a column being
present; an aggregate a user added to the suite by hand) passes when it passes on every chunk.

The merged result keeps the first `keep` unexpected values and row ids (GX's partial lists:
memory stays bounded when many rows fail); the streaming validator counts offending rows per
split, and writes quarantined rows, chunk by chunk instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nlpflow.data.checks import result_format


@dataclass
class _Check:
    config: Any  # the ExpectationConfiguration, suite parameters filled in
    rows: int = 0
    missing: int = 0
    unexpected: int = 0
    values: list[Any] = field(default_factory=list)
    ids: list[dict[str, Any]] = field(default_factory=list)
    counted: bool = False  # a row check, counted in at least one chunk
    first: Any = None  # a table check's first result, and its first failure
    failed: Any = None

    def add(self, result: Any, keep: int) -> None:
        detail = result.result or {}
        if "element_count" not in detail:  # a table check, or an exception GX caught
            self.first = self.first or result
            if not result.success and self.failed is None:
                self.failed = result
            return
        self.counted = True
        self.rows += int(detail["element_count"])
        self.missing += int(detail.get("missing_count") or 0)
        self.unexpected += int(detail.get("unexpected_count") or 0)
        room = keep - len(self.ids)
        if room > 0:
            self.values += list(detail.get("unexpected_list") or [])[:room]
            self.ids += list(detail.get("unexpected_index_list") or [])[:room]

    def finish(self, metrics: dict[str, Any] | None) -> Any:
        if self.failed is not None and (self.counted or metrics is None):
            return self.failed  # GX raised on a chunk: the check failed, with its reason
        if self.counted:
            expectation = self.config.to_domain_obj()
            name = expectation.map_metric
            metrics = {
                "table.row_count": self.rows,
                "column_values.nonnull.unexpected_count": self.missing,
                f"{name}.unexpected_count": self.unexpected,
                f"{name}.unexpected_values": self.values,
                f"{name}.unexpected_index_list": self.ids,
            }
        elif metrics is None:
            return self.first
        return _validated(self.config, metrics)


def _validated(config: Any, metrics: dict[str, Any]) -> Any:
    """The expectation's own verdict on `metrics`, as GX's Validator wraps it."""
    from great_expectations.core.expectation_validation_result import (
        ExpectationValidationResult,
    )

    out = config.to_domain_obj()._validate(
        metrics=metrics, runtime_configuration={"result_format": result_format()}
    )
    return ExpectationValidationResult(
        success=bool(out["success"]), result=out.get("result") or {}, expectation_config=config
    )


class MergedResults:
    """Add each chunk's results (keyed by check id); `finish` gives one result per check."""

    def __init__(self, keep: int = 20) -> None:
        self.keep = max(keep, 20)  # GX's partial lists hold 20
        self._checks: dict[str, _Check] = {}

    def add(self, results: dict[str, Any]) -> None:
        for key, result in results.items():
            check = self._checks.setdefault(key, _Check(result.expectation_config))
            check.add(result, self.keep)

    def finish(self, table_metrics: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """`table_metrics`: the data-wide metrics of table checks, by check id."""
        return {key: c.finish(table_metrics.get(key)) for key, c in self._checks.items()}
