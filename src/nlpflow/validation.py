"""validate: check the gathered data with a Great Expectations 1.x suite built from params.

Writes `summary.json` and the GX Data Docs site under the output folder. When any expectation
fails, raises DataValidationError naming each failed check with a few offending rows, so no later
stage runs and nothing is registered.

    nlpflow stage validate
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel

from nlpflow.data import SPLITS, load_splits
from nlpflow.errors import DataValidationError
from nlpflow.params import DataParams, ValidateParams
from nlpflow.text import normalize_text

ROW_ID = "row_id"
# U+FFFD (bytes that were not UTF-8) and C0/C1 controls other than tab and line breaks.
_DAMAGE = "[\ufffd\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"


class CheckResult(BaseModel):
    check: str
    expectation: str
    success: bool
    unexpected_count: int = 0
    observed: Any = None
    examples: list[dict[str, Any]] = []


class ValidationReport(BaseModel):
    success: bool
    rows: dict[str, int]
    allowed_labels: list[str]
    checks: list[CheckResult]
    data_docs: str

    @property
    def failed(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.success]


def build_frame(splits: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """All splits in one table, plus the derived columns the cross-split checks need."""
    frame = pd.concat([df.assign(split=name) for name, df in splits.items()], ignore_index=True)
    frame.insert(0, ROW_ID, range(len(frame)))
    train = frame[frame["split"] == "train"]
    counts = train["label"].value_counts()
    frame["train_examples_of_label"] = frame["label"].map(counts).fillna(0).astype(int)
    frame["label_imbalance_ratio"] = frame["train_examples_of_label"].map(
        lambda n: float(counts.max() / n) if n and len(counts) else 0.0
    )
    is_test = frame["split"] == "test"
    frame["test_text_in_train"] = is_test & frame["text"].isin(set(train["text"].dropna()))
    normalized = frame["text"].map(lambda t: normalize_text(t) if isinstance(t, str) else None)
    train_keys = set(normalized[frame["split"] == "train"].dropna())
    frame["test_text_in_train_normalized"] = is_test & normalized.isin(train_keys)
    text = frame["text"].fillna("")
    frame["text_has_damage"] = text.str.contains(_DAMAGE, regex=True)
    frame["text_tokens"] = text.str.split().str.len()
    return frame


def build_suite(params: ValidateParams, allowed: list[str]) -> list[tuple[str, Any]]:
    """(plain-language check, GX expectation) pairs; import GX only when validating."""
    import great_expectations.expectations as gxe

    return [
        ("column 'text' is present", gxe.ExpectColumnToExist(column="text")),
        ("column 'label' is present", gxe.ExpectColumnToExist(column="label")),
        ("no null text", gxe.ExpectColumnValuesToNotBeNull(column="text")),
        ("no null label", gxe.ExpectColumnValuesToNotBeNull(column="label")),
        (
            "no empty or whitespace-only text",
            gxe.ExpectColumnValuesToNotMatchRegex(column="text", regex=r"^\s*$"),
        ),
        (
            f"labels are in the allowed set {allowed}",
            gxe.ExpectColumnValuesToBeInSet(column="label", value_set=allowed),
        ),
        (
            f"text length is {params.min_chars}..{params.max_chars} characters",
            gxe.ExpectColumnValueLengthsToBeBetween(
                column="text", min_value=params.min_chars, max_value=params.max_chars
            ),
        ),
        (
            f"each label has at least {params.min_examples_per_class} train examples",
            gxe.ExpectColumnValuesToBeBetween(
                column="train_examples_of_label", min_value=params.min_examples_per_class
            ),
        ),
        (
            f"duplicate rate is at most {params.max_duplicate_rate:.1%}",
            gxe.ExpectColumnProportionOfUniqueValuesToBeBetween(
                column="text", min_value=1.0 - params.max_duplicate_rate
            ),
        ),
        (
            "no test text appears in train",
            gxe.ExpectColumnValuesToBeInSet(column="test_text_in_train", value_set=[False]),
        ),
        (
            "no test text appears in train up to case, accents, spacing and punctuation",
            gxe.ExpectColumnValuesToBeInSet(
                column="test_text_in_train_normalized", value_set=[False]
            ),
        ),
        (
            f"largest class is at most {params.max_imbalance_ratio:g}x each class in train",
            gxe.ExpectColumnValuesToBeBetween(
                column="label_imbalance_ratio", max_value=params.max_imbalance_ratio
            ),
        ),
        (
            f"at most {params.max_damaged_share:.2%} of texts hold U+FFFD or control characters",
            gxe.ExpectColumnValuesToBeInSet(
                column="text_has_damage", value_set=[False], mostly=1.0 - params.max_damaged_share
            ),
        ),
        (
            f"median length is at least {params.min_median_tokens} tokens",
            gxe.ExpectColumnMedianToBeBetween(
                column="text_tokens", min_value=params.min_median_tokens
            ),
        ),
        (
            # "95% of texts have at most N tokens" is "the 95th percentile is at most N"; GX's
            # quantile expectation cannot serialise its own numpy results (GX 1.24, numpy 2).
            f"95th percentile length is at most {params.max_p95_tokens} tokens",
            gxe.ExpectColumnValuesToBeBetween(
                column="text_tokens", max_value=params.max_p95_tokens, mostly=0.95
            ),
        ),
    ]


def _context(docs_dir: Path) -> Any:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    context.add_data_docs_site(
        site_name="nlpflow",
        site_config={
            "class_name": "SiteBuilder",
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(docs_dir),
            },
        },
    )
    return context


def run_checkpoint(frame: pd.DataFrame, suite: list[tuple[str, Any]], docs_dir: Path) -> Any:
    import great_expectations as gx

    context = _context(docs_dir)
    batch = (
        context.data_sources.add_pandas("gathered")
        .add_dataframe_asset("rows")
        .add_batch_definition_whole_dataframe("all_splits")
    )
    gx_suite = context.suites.add(gx.ExpectationSuite(name="nlpflow_text_classification"))
    for _, expectation in suite:
        gx_suite.add_expectation(expectation)  # assigns expectation.id
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name="gathered_data", data=batch, suite=gx_suite)
    )
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name="nlpflow_validate",
            validation_definitions=[definition],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=["nlpflow"])],
            result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [ROW_ID]},
        )
    )
    result = checkpoint.run(batch_parameters={"dataframe": frame})
    return next(iter(result.run_results.values()))


def _examples(frame: pd.DataFrame, result: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    ids = [row[ROW_ID] for row in result.get("unexpected_index_list") or []][:limit]
    if not ids and "observed_value" in result:  # table-level check: show the repeated texts
        dupes = frame[frame["text"].duplicated(keep=False) & frame["text"].notna()]
        ids = list(dupes.drop_duplicates("text")[ROW_ID][:limit])
    rows = frame.set_index(ROW_ID).loc[ids, ["split", "source_row", "text", "label"]]
    return [
        {k: (v[:80] + "…" if isinstance(v, str) and len(v) > 80 else v) for k, v in row.items()}
        | {"row_id": int(i)}
        for i, row in zip(ids, rows.to_dict("records"), strict=True)
    ]


def validate(*, src: Path, dst: Path, params: ValidateParams, data: DataParams) -> ValidationReport:
    """Validate `src/*.parquet`; write `dst/summary.json` and `dst/data_docs/`."""
    splits = load_splits(src)
    frame = build_frame(splits)
    allowed = (
        list(data.labels) if data.labels else sorted(splits["train"]["label"].dropna().unique())
    )
    suite = build_suite(params, allowed)
    dst.mkdir(parents=True, exist_ok=True)
    outcome = run_checkpoint(frame, suite, dst / "data_docs")
    # GX does not return results in suite order: match them to our checks by expectation id.
    by_id = {res.expectation_config.id: res for res in outcome.results}
    checks = []
    for name, expectation in suite:
        res = by_id[expectation.id]
        detail = res.result or {}
        checks.append(
            CheckResult(
                check=name,
                expectation=res.expectation_config.type,
                success=bool(res.success),
                unexpected_count=int(detail.get("unexpected_count") or 0),
                observed=detail.get("observed_value"),
                examples=[] if res.success else _examples(frame, detail, params.show_examples),
            )
        )
    report = ValidationReport(
        success=all(c.success for c in checks),
        rows={s: len(splits[s]) for s in SPLITS},
        allowed_labels=allowed,
        checks=checks,
        data_docs=str(dst / "data_docs" / "index.html"),
    )
    (dst / "summary.json").write_text(
        json.dumps(report.model_dump(mode="json"), indent=2, default=str)
    )
    if not report.success:
        raise DataValidationError(format_failures(report))
    return report


def format_failures(report: ValidationReport) -> str:
    lines = [f"data validation failed: {len(report.failed)} of {len(report.checks)} checks."]
    for check in report.failed:
        count = (
            f"{check.unexpected_count} rows"
            if check.unexpected_count
            else f"observed {check.observed}"
        )
        lines.append(f"  ✗ {check.check} ({check.expectation}): {count}")
        for ex in check.examples:
            lines.append(
                f"      {ex['split']} row {ex['source_row']}: label={ex['label']!r} text={ex['text']!r}"
            )
    lines.append(f"  Full report: {report.data_docs}. Fix the data or the validate.* params.")
    return "\n".join(lines)
