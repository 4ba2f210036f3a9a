"""Checking the rows before scoring: Great Expectations checks the text column (present, not
null, not blank, a string, at most the model's max_chars) and the id column (present, not null,
unique). Failing rows stop the run (`on_invalid: fail`) or are set aside with their reasons
(`skip`).

    checked = validate_rows(frame, text_column="text", id_column="id", max_chars=2000,
                            on_invalid="skip")

Input read in chunks is checked chunk by chunk; only id uniqueness spans chunks: a first pass
hashes every id (`id_hashes`), `repeated_ids` keeps the hashes seen more than once, and each
chunk's check rejects the rows holding one of them, as one GX check over the whole input would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from nlpflow.errors import DataValidationError
from nlpflow.serving.batch.plan import ROW
from nlpflow.serving.shaping import InputShape

_GX_ROW = "__nlpflow_row__"  # GX reports offending rows by this column; no user column clashes
# whether the text value as read is a string (or missing): a number or a boolean would pass the
# other checks once turned into text, so the type is checked on this column, then dropped
_GX_IS_STRING = "__nlpflow_text_is_string__"
EXAMPLES = 5  # rows shown per failed check in an on_invalid=fail error


@dataclass(frozen=True)
class RowCheck:
    id: str
    name: str  # plain language, written into the rejected rows' `reasons`
    expectation: Any


@dataclass
class CheckedRows:
    rows_read: int
    valid: pd.DataFrame  # ROW, [id column], text column: the rows to score
    rejected: pd.DataFrame  # ROW, [id column], text column, checks, expectations, reasons
    failed: dict[str, int] = field(default_factory=dict)  # check id -> rows that break it


def build_row_checks(
    text_column: str, id_column: str | None, *, max_chars: int
) -> tuple[list[RowCheck], list[RowCheck]]:
    """(table checks, row checks): a table check failing stops the run whatever on_invalid."""
    import great_expectations.expectations as gxe

    t = text_column
    table = [RowCheck("text_column", f"column {t!r} is present", gxe.ExpectColumnToExist(column=t))]
    rows = [
        RowCheck("text_not_null", "text is not null", gxe.ExpectColumnValuesToNotBeNull(column=t)),
        RowCheck("text_not_blank", "text is not empty or whitespace only",
                 gxe.ExpectColumnValuesToNotMatchRegex(column=t, regex=r"^\s*$")),
        RowCheck("text_is_string", "text is a string (not a number, boolean or other value)",
                 gxe.ExpectColumnValuesToBeInSet(column=_GX_IS_STRING, value_set=[True])),
        # what a missing value becomes when something upstream applied str() to it
        RowCheck("text_not_missing_word", "text is not None, null or nan written as text",
                 gxe.ExpectColumnValuesToNotMatchRegex(
                     column=t, regex=r"^\s*(?i:none|null|nan)\s*$")),
        RowCheck("text_length", f"text is at most {max_chars} characters (the model's max_chars)",
                 gxe.ExpectColumnValueLengthsToBeBetween(column=t, max_value=max_chars)),
    ]  # fmt: skip
    if id_column is not None:
        i = id_column
        table.append(
            RowCheck("id_column", f"column {i!r} is present", gxe.ExpectColumnToExist(column=i))
        )
        rows += [
            RowCheck("id_not_null", "id is not null", gxe.ExpectColumnValuesToNotBeNull(column=i)),
            RowCheck("id_unique", "id is unique (rows sharing it cannot be told apart)",
                     gxe.ExpectColumnValuesToBeUnique(column=i)),
        ]  # fmt: skip
    for check in table + rows:
        check.expectation.meta = {"nlpflow_check": check.id}
    return table, rows


def id_hashes(ids: pd.Series) -> np.ndarray:
    """64-bit hashes of the non-null ids, compared as text (1 and "1" are one id)."""
    present = ids[ids.notna()].astype(str)
    return pd.util.hash_pandas_object(present, index=False).to_numpy(dtype=np.uint64)


def repeated_ids(hashes: list[np.ndarray]) -> np.ndarray:
    """The hashes that occur more than once across `hashes` (sorted): 8 bytes an id while
    counting, then only the repeated ones are kept."""
    if not hashes:
        return np.empty(0, dtype=np.uint64)
    values, counts = np.unique(np.concatenate(hashes), return_counts=True)
    return values[counts > 1]


def _gx_validate(frame: pd.DataFrame, checks: list[RowCheck]) -> dict[str, Any]:
    """Run `checks` on `frame` in an in-memory GX context; results by check id."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        progress_bars=ProgressBarsConfig(globally=False),
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    batch = (
        context.data_sources.add_pandas("inference_input")
        .add_dataframe_asset("rows")
        .add_batch_definition_whole_dataframe("all_rows")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    suite = context.suites.add(
        gx.ExpectationSuite(
            name="nlpflow_inference_input", expectations=[c.expectation for c in checks]
        )
    )
    result = batch.validate(
        suite,
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [_GX_ROW]},
    )
    by_check: dict[str, Any] = {}
    for res in result.results:  # GX does not keep suite order
        expected = res.expectation_config
        by_check[str(((expected.meta if expected else None) or {})["nlpflow_check"])] = res
    return by_check


def _as_text(value: Any) -> str | None:
    """Text as the model will see it: strings kept, missing values None, others as str."""
    if isinstance(value, str):
        return value
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return None
    return str(value)


def shape_rows(frame: pd.DataFrame, shape: InputShape) -> pd.DataFrame:
    """`frame` with its text as the model was trained on it: the one text column as read, or
    the fields joined as gather joined them under `shape.text_name` (title+description).
    DataValidationError naming the columns the input lacks and the setting that fixes it."""
    missing = shape.missing(frame.columns)
    if missing:
        have = ", ".join(map(str, frame.columns)) or "none"
        headerless = (
            f" (read as a headerless file with columns [{', '.join(shape.columns)}])"
            if shape.columns
            else ""
        )
        raise DataValidationError(
            f"input validation failed: no column(s) {', '.join(map(repr, missing))} in the "
            f"input{headerless}; its columns: {have}. The text is {shape.describe()}: set "
            "inference.text_column to the input's text column(s) (a list is joined by a "
            "space), and for a csv/tsv file without a header row inference.columns to its "
            "column names ([] when it has a header)."
        )
    if len(shape.text_columns) == 1:
        return frame
    return frame.assign(**{shape.text_name: shape.texts(frame)})


def validate_rows(
    frame: pd.DataFrame,
    *,
    text_column: str,
    id_column: str | None,
    max_chars: int,
    on_invalid: Literal["fail", "skip"],
    first_row: int = 0,
    repeated: np.ndarray | None = None,
) -> CheckedRows:
    """Check the rows with GX; split them into rows to score and rejected rows (skip), or
    raise DataValidationError naming the checks and a few rows (fail).

    A chunk of a larger input: `first_row` is its first row's number in the input, and
    `repeated` the ids repeated anywhere in the input (`repeated_ids`), which decide id_unique
    in place of GX's look at this chunk alone."""
    table_checks, row_checks = build_row_checks(text_column, id_column, max_chars=max_chars)
    across = repeated is not None and id_column is not None
    gx_checks = [c for c in row_checks if not (across and c.id == "id_unique")]
    present = [c for c in (text_column, id_column) if c is not None and c in frame.columns]
    checked = frame[present].copy()
    if text_column in checked:
        values = checked[text_column]
        checked[_GX_IS_STRING] = [isinstance(v, str) or _as_text(v) is None for v in values]
        checked[text_column] = values.map(_as_text).astype(object)
    else:  # the table check reports the missing column
        checked[_GX_IS_STRING] = True
    checked.insert(0, _GX_ROW, range(first_row, first_row + len(checked)))
    results = _gx_validate(checked, table_checks + gx_checks)
    checked = checked.drop(columns=_GX_IS_STRING)
    missing = [c for c in table_checks if not results[c.id].success]
    if missing:
        columns = ", ".join(map(str, frame.columns))
        names = " and ".join(repr(c.expectation.column) for c in missing)
        raise DataValidationError(
            f"input validation failed: no column {names} in the input (its columns: {columns}). "
            "Set inference.text_column / inference.id_column to the right columns."
        )
    reasons: dict[int, list[RowCheck]] = {}
    failed: dict[str, int] = {}
    for check in row_checks:
        if check.id not in results:  # id_unique across chunks
            assert repeated is not None and id_column is not None
            hashes = pd.Series(np.uint64(0), index=checked.index, dtype=np.uint64)
            present = checked[id_column].notna()
            hashes[present] = id_hashes(checked[id_column])
            twins = checked.loc[present & hashes.isin(repeated), _GX_ROW].tolist()
            for row in twins:
                reasons.setdefault(int(row), []).append(check)
            failed[check.id] = len(twins)
            continue
        res = results[check.id]
        if not res.success and (res.exception_info or {}).get("raised_exception"):
            raise DataValidationError(
                f"input check {check.id} could not run: {res.exception_info['exception_message']}"
            )
        for found in (res.result or {}).get("unexpected_index_list") or []:
            reasons.setdefault(int(found[_GX_ROW]), []).append(check)
        failed[check.id] = int((res.result or {}).get("unexpected_count") or 0)
    failed = {k: v for k, v in failed.items() if v}
    checked = checked.rename(columns={_GX_ROW: ROW})
    bad = checked[ROW].isin(reasons)
    rejected = checked[bad].copy()
    for column, says in (("checks", lambda c: c.id), ("reasons", lambda c: c.name),
                         ("expectations", lambda c: c.expectation.expectation_type)):  # fmt: skip
        # object columns even when empty: every chunk's rejected rows have one schema
        values = ["; ".join(says(c) for c in reasons[r]) for r in rejected[ROW]]
        rejected[column] = pd.Series(values, index=rejected.index, dtype=object)
    rejected = rejected[[*checked.columns, "checks", "expectations", "reasons"]]
    if len(rejected) and on_invalid == "fail":
        raise DataValidationError(
            invalid_message(rejected, rows=len(checked), broken=len(rejected), failed=failed,
                            checks=row_checks, text_column=text_column, id_column=id_column)
        )  # fmt: skip
    return CheckedRows(
        rows_read=len(frame), valid=checked[~bad].reset_index(drop=True),
        rejected=rejected.reset_index(drop=True), failed=failed,
    )  # fmt: skip


def _breaks(rejected: pd.DataFrame, check: str) -> pd.Series:
    """Which rejected rows broke `check` (their `checks` hold it among others)."""
    return rejected["checks"].map(lambda joined: check in joined.split("; "))


def invalid_examples(rejected: pd.DataFrame) -> pd.DataFrame:
    """The rejected rows an on_invalid=fail message shows: the first EXAMPLES of each check."""
    keep = set()
    for check in {c for joined in rejected["checks"] for c in joined.split("; ")}:
        breaking = rejected[_breaks(rejected, check)]
        keep.update(breaking[ROW].nsmallest(EXAMPLES).tolist())
    return rejected[rejected[ROW].isin(keep)]


def invalid_message(
    rejected: pd.DataFrame,
    *,
    rows: int,
    broken: int,
    failed: dict[str, int],
    checks: list[RowCheck],
    text_column: str,
    id_column: str | None,
) -> str:
    """on_invalid=fail's message: `broken` of `rows` rows break checks (`failed`: rows per
    check); `rejected` holds them, or at least their invalid_examples."""
    lines = [
        f"input validation failed: {broken} of {rows} rows break {len(failed)} check(s), "
        "and inference.on_invalid is fail; nothing was written."
    ]
    by_row = rejected.set_index(ROW).sort_index()
    for check in (c for c in checks if c.id in failed):
        lines.append(f"  ✗ {check.name} [{check.id}]: {failed[check.id]} rows")
        examples = by_row[_breaks(by_row, check.id)]
        for r, row in examples.head(EXAMPLES).iterrows():
            ident = f" {id_column}={row[id_column]!r}" if id_column else ""
            text = row[text_column]
            shown = (
                text[:80] + f"… ({len(text)} chars)"
                if isinstance(text, str) and len(text) > 80
                else text
            )
            lines.append(f"      row {r}{ident}: {shown!r}")
    lines.append(
        "  Fix these rows, or set inference.on_invalid=skip to score the others and write "
        "these beside the output with their reasons."
    )
    return "\n".join(lines)
