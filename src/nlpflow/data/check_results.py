"""From the suite's Great Expectations results to nlpflow's: which rows a check quarantines,
the rows that are kept, one CheckResult per check, and the message a failed run prints.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel

from nlpflow.config.params import ValidateParams
from nlpflow.data.checks import ROW_ID, Check
from nlpflow.data.splits import SPLITS
from nlpflow.errors import DataValidationError

QUARANTINE_FILE = "quarantined.jsonl"


class CheckResult(BaseModel):
    id: str
    check: str
    expectation: str
    policy: str = "fail"
    success: bool
    unexpected_count: int = 0
    unexpected_percent: float | None = None  # GX's: of the non-null values checked
    by_split: dict[str, int] = {}  # offending rows per split
    observed: Any = None
    details: dict[str, Any] = {}  # e.g. a drift check's shares and their change
    examples: list[dict[str, Any]] = []
    fix: str = ""  # what to change, when the generic advice (validate.policy) would be wrong


class ValidationReport(BaseModel):
    success: bool
    rows: dict[str, int]  # rows after quarantine (what goes on if the checks pass), per split
    rows_gathered: dict[str, int] = {}  # rows read, per split, before any quarantine
    label_counts: dict[str, dict[str, int]] = {}  # split -> label -> rows after quarantine
    allowed_labels: list[str]
    checks: list[CheckResult]
    quarantined: dict[str, int] = {}  # rows moved to quarantine, per check id
    quarantined_rows: int = 0  # distinct rows moved (a row can break several checks)
    quarantine_file: str
    reference: dict[str, Any] | None = None  # the accepted profile drift was measured against
    suite_updated: bool = False  # the gx/ suite file was rewritten from params in this run
    warnings: list[str] = []  # what the run should know but need not stop for
    seconds: float = 0.0
    # The page to open first: self-contained HTML, readable offline and in MLflow's viewer
    report_html: str
    # validated chunk by chunk (runtime.max_memory_mb): rows per chunk, chunks, passes
    streamed: dict[str, Any] | None = None
    # the gathered splits came with the source (an official test set), from its manifest
    split_from_source: bool | None = None

    @property
    def failed(self) -> list[CheckResult]:
        """Broken checks that stop the run (warn-policy ones only warn)."""
        return [c for c in self.checks if not c.success and c.policy != "warn"]

    @property
    def warned(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.success and c.policy == "warn"]


LEAK_CHECKS = ("leak_exact", "leak_normalized", "leak_subphrase")


def leak_fix(
    check_id: str, *, split_from_source: bool | None, subphrases_grouped: bool = False
) -> str:
    """The fix of a leak check: True, the splits came with the source; False, nlpflow made
    them; None, not known (no gather manifest). Quarantine would move the flagged rows, which
    are test (or validation) rows: on a source's own test split, an official benchmark's, it
    would cut the set every published figure is measured on, so the fix drops from train."""
    if check_id not in LEAK_CHECKS:
        return ""
    if check_id == "leak_subphrase":
        lead = "the splits came with the source"
        given = (
            "keep its validation and test sets whole: remove the train rows holding these texts from the source, or accept the overlap "
            "(validate.policy.leak_subphrase: warn); data.test_overlap: drop_from_train drops "
            "only train rows equal to a test text, and quarantine would cut rows from the "
            "source's own test set"
        )
        made = (
            "these texts lie inside several longer texts, and data.split.group_subphrases "
            "keeps a text with the first of them only: set validate.policy.leak_subphrase: "
            "quarantine to move them aside, or raise validate.subphrase_min_tokens"
            if subphrases_grouped
            else "set data.split.group_subphrases: true, so a text inside another lands in "
            "its split (gather splits again), or raise validate.subphrase_min_tokens"
        )
    else:
        lead = "the test split came with the source"
        given = (
            "set data.test_overlap: drop_from_train, "
            "which drops the train and validation rows repeating a test text and keeps the "
            "test set whole (quarantine would cut rows from the source's own test set)"
        )
        made = (
            "set data.split.group_duplicates: true (texts equal up to case, accents, spacing "
            "and punctuation land in one split), or data.dedupe: normalized"
        )
    if split_from_source is None:
        return f"if {lead}: {given}; if nlpflow split the data: {made}."
    return (f"{lead}: {given}" if split_from_source else made) + "."


def with_fixes(
    checks: list[CheckResult], *, split_from_source: bool | None, subphrases_grouped: bool = False
) -> list[CheckResult]:
    """Failed checks given their fix where quarantine is the wrong advice: the leak checks
    (leak_fix), and repeats that lie in a source's own test split (quarantine moves the later
    copy, there the test row)."""
    out = []
    for c in checks:
        fix = ""
        if not c.success and c.id in LEAK_CHECKS:
            fix = leak_fix(
                c.id, split_from_source=split_from_source, subphrases_grouped=subphrases_grouped
            )
        elif not c.success and c.id == "duplicates" and split_from_source and "test" in c.by_split:
            fix = (
                "some repeats are in the test split, which came with the source: set "
                "data.test_overlap: drop_from_train (drops train and validation copies of test "
                "texts) and data.dedupe: normalized for repeats within a split; quarantine "
                "would cut rows from the source's own test set."
            )
        out.append(c.model_copy(update={"fix": fix}) if fix else c)
    return out


def warning_text(check: CheckResult) -> str:
    """A warn-policy check that broke, as the run's warnings list it."""
    where = ", ".join(f"{s} {n}" for s, n in check.by_split.items())
    text = f"{check.check} [{check.id}]: {check.unexpected_count} rows ({where})"
    return text + (f". Fix: {check.fix}" if check.fix else "")


def run_checks(
    checkpoint: Any, frame: pd.DataFrame, suite_params: dict[str, Any]
) -> dict[str, Any]:
    """Run the checkpoint; results keyed by check id (a user's own expectation by its type)."""
    result = checkpoint.run(
        batch_parameters={"dataframe": frame}, expectation_parameters=suite_params
    )
    return keyed_results(next(iter(result.run_results.values())).results)


def keyed_results(results: list[Any]) -> dict[str, Any]:
    """GX's results of a suite, keyed by check id (a user's own expectation by its type)."""
    by_check: dict[str, Any] = {}
    for res in results:  # GX does not keep suite order
        config = res.expectation_config
        key = (config.meta or {}).get("nlpflow_check") or f"user:{config.type}:{config.id}"
        by_check[key] = res
    return by_check


def offending(result: Any) -> list[int]:
    """The row ids a GX result names (the ROW_ID of each unexpected row)."""
    return [int(row[ROW_ID]) for row in (result.result or {}).get("unexpected_index_list") or []]


def quarantine_rows(
    checks: list[Check], results: dict[str, Any], params: ValidateParams
) -> dict[int, list[Check]]:
    """row id -> the quarantine-policy checks it breaks (even within a `mostly` tolerance:
    quarantine means these rows are not trained on)."""
    rows: dict[int, list[Check]] = {}
    for check in checks:
        if params.action(check.id) == "quarantine":
            for row in offending(results[check.id]):
                rows.setdefault(row, []).append(check)
    return rows


def quarantine_frame(frame: pd.DataFrame, rows: dict[int, list[Check]]) -> pd.DataFrame:
    """The rows of `frame` among `rows`, with the checks they broke and why."""
    keep = [c for c in ("split", "source_row", "source_file", "text", "label") if c in frame]
    out = frame[frame[ROW_ID].isin(rows)].set_index(ROW_ID)[keep]
    out["checks"] = [[c.id for c in rows[i]] for i in out.index]
    out["reasons"] = [[c.name for c in rows[i]] for i in out.index]
    return out


def write_quarantine(frame: pd.DataFrame, rows: dict[int, list[Check]], folder: Path) -> Path:
    """The quarantined rows with the checks they broke, one JSON object a line."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / QUARANTINE_FILE
    quarantine_frame(frame, rows).to_json(path, orient="records", lines=True, force_ascii=False)
    return path


def kept_splits(
    frame: pd.DataFrame, splits: dict[str, pd.DataFrame], drop: set[int]
) -> dict[str, pd.DataFrame]:
    kept: dict[str, pd.DataFrame] = {}
    for name, original in splits.items():
        ids = frame.loc[(frame["split"] == name) & ~frame[ROW_ID].isin(drop), ROW_ID]
        offset = int(frame.loc[frame["split"] == name, ROW_ID].min()) if len(original) else 0
        kept[name] = original.iloc[(ids - offset).to_numpy()].reset_index(drop=True)
        if len(original) and kept[name].empty:
            raise emptied_split(name)
    return kept


def emptied_split(name: str) -> DataValidationError:
    return DataValidationError(
        f"quarantine moved every {name} row: nothing is left to {name} on. "
        "See the quarantine file, fix the data or set the checks' policy to fail."
    )


def example_rows(frame: pd.DataFrame, ids: list[int]) -> list[dict[str, Any]]:
    """Rows `ids` of build_frame's table as a report shows them (long texts cut)."""
    rows = frame.set_index(ROW_ID).loc[ids, ["split", "source_row", "text", "label"]]
    return [
        {k: (v[:80] + "…" if isinstance(v, str) and len(v) > 80 else v) for k, v in row.items()}
        | {"row_id": int(i)}
        for i, row in zip(ids, rows.to_dict("records"), strict=True)
    ]


@dataclass
class Evidence:
    """What the report says of each check beyond GX's result, by check key: its offending rows
    per split, the first of them, and a failed check's own details (Check.details). From the
    validated frame (frame_evidence), or gathered chunk by chunk (nlpflow.data.streaming)."""

    by_split: dict[str, dict[str, int]] = field(default_factory=dict)
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    details: dict[str, dict[str, Any]] = field(default_factory=dict)


def frame_evidence(
    checks: list[Check], results: dict[str, Any], frame: pd.DataFrame, *, limit: int
) -> Evidence:
    split_of = frame.set_index(ROW_ID)["split"]
    evidence = Evidence()
    for check in checks:
        if check.details is not None and check.id in results and not results[check.id].success:
            evidence.details[check.id] = check.details(frame)
    for key, res in results.items():
        ids = offending(res)
        evidence.by_split[key] = _by_split(split_of, ids)
        evidence.examples[key] = [] if res.success else example_rows(frame, ids[:limit])
    return evidence


def _by_split(split_of: pd.Series, rows: list[int]) -> dict[str, int]:
    counts = split_of.loc[rows].value_counts()
    return {str(s): int(counts[s]) for s in SPLITS if s in counts}


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers, so reports serialise as numbers, not strings."""
    return value.item() if hasattr(value, "item") else value


def check_results(
    checks: list[Check],
    results: dict[str, Any],
    evidence: Evidence,
    *,
    params: ValidateParams,
    suite_params: dict[str, Any],
) -> list[CheckResult]:
    named = {
        c.id: c.report_name(suite_params) if c.report_name is not None else c.name for c in checks
    }
    out = []
    for key, res in results.items():
        detail = res.result or {}
        percent = detail.get("unexpected_percent")
        gx_details = detail.get("details")
        out.append(CheckResult(
            id=key, check=named.get(key, res.expectation_config.description or key),
            expectation=res.expectation_config.type,
            policy=params.action(key) if key in named else "fail",
            success=bool(res.success), unexpected_count=int(detail.get("unexpected_count") or 0),
            unexpected_percent=None if percent is None else float(percent),
            by_split=evidence.by_split.get(key, {}),
            observed=_plain(detail.get("observed_value")),
            # a failed check's own details where it has them, else GX's
            details=evidence.details[key] if key in evidence.details
            else gx_details if isinstance(gx_details, dict) else {},
            examples=[] if res.success else evidence.examples.get(key, []),
        ))  # fmt: skip
    order = {c.id: i for i, c in enumerate(checks)}
    return sorted(out, key=lambda c: order.get(c.id, len(order)))


def label_map_hint(mapping: dict[str, str]) -> str:
    """A params.yaml line that merges the variants: YAML's double-quoted strings read JSON's
    escapes, so a label holding a line break or a trailing space survives the copy."""
    pairs = ", ".join(f"{_quoted(k)}: {_quoted(v)}" for k, v in mapping.items())
    return f"data.label_map: {{{pairs}}}"


def _quoted(text: str) -> str:
    """A double-quoted string with invisible characters (a zero-width space) escaped: a
    terminal shows them as nothing, and a copy would lose them."""
    import unicodedata

    return "".join(
        f"\\u{ord(ch):04x}" if unicodedata.category(ch) in ("Cf", "Zl", "Zp") else ch
        for ch in json.dumps(text, ensure_ascii=False)
    )


def format_failures(report: ValidationReport) -> str:
    lines = [f"data validation failed: {len(report.failed)} of {len(report.checks)} checks."]
    for check in report.failed:
        count = (
            f"{check.unexpected_count} rows"
            if check.unexpected_count
            else f"observed {check.observed}"
        )
        lines.append(f"  ✗ {check.check} [{check.id}] ({check.expectation}): {count}")
        for ex in check.examples:
            lines.append(
                f"      {ex['split']} row {ex['source_row']}: label={ex['label']!r} text={ex['text']!r}"
            )
        if check.fix:
            lines.append(f"      Fix: {check.fix}")
        if check.id == "label_variants" and check.details.get("label_map"):
            for keep, variants in check.details["groups"].items():
                shown = ", ".join(repr(v) for v in variants)
                lines.append(f"      {shown} look like {keep!r} (the spelling most rows use)")
            lines.append(
                "      Merge them in params.yaml (add to any label_map you have): "
                + label_map_hint(check.details["label_map"])
            )
    if report.quarantined:
        lines.append(f"  Quarantined first: {report.quarantined} (see {report.quarantine_file}).")
    advice = "Fix the data, or the validate.* params"
    # on a source's own test split, quarantining leaks cuts it: each leak check's fix says so
    if not (report.split_from_source and all(c.fix for c in report.failed)):
        advice += " (validate.policy.<check id>: quarantine moves offending rows aside instead)"
    lines.append(f"  Full report: {report.report_html}. {advice}.")
    return "\n".join(lines)
