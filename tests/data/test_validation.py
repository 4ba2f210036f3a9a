"""validate: the Great Expectations suite really runs on gathered-style Parquet files.

Each dataset below is validated once per module (GX is slow to start); the tests read the
cached outcome. Every failure kind has its own dataset and its own test.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from nlpflow.errors import DataValidationError
from nlpflow.config.params import DataParams, ValidateParams
from nlpflow.data.suites.text_classification import build_checks
from nlpflow.data.validation import ValidationReport, validate

LABELS = ("billing", "shipping")
Rows = dict[str, list[tuple[Any, Any]]]

# (id, plain-language name, GX expectation) of every check the default params build, in order.
CHECKS = [
    ("text_column", "column 'text' is present", "expect_column_to_exist"),
    ("label_column", "column 'label' is present", "expect_column_to_exist"),
    ("text_not_null", "no null text", "expect_column_values_to_not_be_null"),
    ("label_not_null", "no null label", "expect_column_values_to_not_be_null"),
    ("text_not_blank", "no empty or whitespace-only text", "expect_column_values_to_not_match_regex"),
    ("label_in_set", "labels are in the allowed set ['billing', 'shipping']", "expect_column_values_to_be_in_set"),
    ("label_variants", "no two labels differ only in case, spacing, Unicode form or control characters",
     "expect_column_values_to_be_in_set"),
    ("text_length", "text length is 1..5000 characters", "expect_column_value_lengths_to_be_between"),
    ("class_min_count", "each label has at least 5 train examples", "expect_column_values_to_be_between"),
    ("duplicates", "at most 5.0% of texts repeat an earlier text", "expect_column_values_to_be_in_set"),
    ("leak_exact", "no test text appears in train", "expect_column_values_to_be_in_set"),
    ("leak_normalized", "no test text appears in train up to case, accents, spacing and punctuation",
     "expect_column_values_to_be_in_set"),
    ("leak_subphrase", "no validation or test text of 4+ words appears inside a train text (whole words, "
     "up to case, accents, spacing and punctuation)", "expect_column_values_to_be_between"),
    ("class_imbalance", "largest class is at most 20x each class in train", "expect_column_values_to_be_between"),
    ("encoding_damage", "at most 0.10% of texts hold U+FFFD or control characters",
     "expect_column_values_to_have_no_encoding_damage"),
    ("median_tokens", "median length is at least 1 tokens", "expect_column_median_to_be_between"),
    ("p95_tokens", "95th percentile length is at most 512 tokens", "expect_column_values_to_be_between"),
    ("p95_chars", "95th percentile length is at most 3000 characters",
     "expect_column_value_lengths_to_be_between"),
    ("script", "at least 99% of texts are mostly Latin script", "expect_column_values_to_be_mostly_in_script"),
    ("label_drift", "label shares within 0.1 TVD of the accepted snapshot", "expect_column_distribution_to_stay_near"),
    ("length_drift", "length histogram within 0.15 TVD of the accepted snapshot",
     "expect_column_distribution_to_stay_near"),
]  # fmt: skip
CHECK_NAMES = [name for _, name, _ in CHECKS]
EXPECTATIONS = [expectation for _, _, expectation in CHECKS]
ID = {name: check_id for check_id, name, _ in CHECKS} | {
    "text length is 1..40 characters": "text_length"
}


def clean_rows() -> Rows:
    """16 train, 6 validation, 6 test rows; 8 train rows per label, no repeats."""
    return {
        "train": [(f"{label} question {i}", label) for label in LABELS for i in range(8)],
        "validation": [(f"{label} check {i}", label) for label in LABELS for i in range(3)],
        "test": [(f"{label} case {i}", label) for label in LABELS for i in range(3)],
    }


def _null_text() -> Rows:
    rows = clean_rows()
    rows["train"][2] = (None, "billing")
    return rows


def _empty_text() -> Rows:
    rows = clean_rows()
    rows["validation"][1] = ("", "billing")
    rows["validation"][4] = ("   ", "shipping")
    return rows


def _unknown_test_label() -> Rows:
    rows = clean_rows()
    rows["test"][5] = ("refund my last order", "refund")
    return rows


def _label_outside_explicit_set() -> Rows:
    rows = clean_rows()
    rows["train"] += [(f"returns question {i}", "returns") for i in range(5)]
    return rows


def _too_long() -> Rows:
    rows = clean_rows()
    rows["train"][0] = ("Please refund the double charge on my card from last week", "billing")
    return rows


def _too_few_examples() -> Rows:
    rows = clean_rows()
    rows["train"] += [("returns question 0", "returns"), ("returns question 1", "returns")]
    return rows


def _duplicates() -> Rows:
    rows = clean_rows()
    rows["train"] += [("billing question 0", "billing")] * 3
    return rows


def _leakage() -> Rows:
    rows = clean_rows()
    rows["test"][0] = ("billing question 3", "billing")
    return rows


CASES: dict[str, tuple[Callable[[], Rows], ValidateParams, DataParams]] = {
    "clean": (clean_rows, ValidateParams(), DataParams()),
    "null_text": (_null_text, ValidateParams(), DataParams()),
    "empty_text": (_empty_text, ValidateParams(), DataParams()),
    "unknown_test_label": (_unknown_test_label, ValidateParams(), DataParams()),
    "label_outside_explicit_set": (
        _label_outside_explicit_set,
        ValidateParams(),
        DataParams(labels=list(LABELS)),
    ),
    "too_long": (_too_long, ValidateParams(max_chars=40), DataParams()),
    "too_few_examples": (_too_few_examples, ValidateParams(), DataParams()),
    "duplicates": (_duplicates, ValidateParams(), DataParams()),
    "leakage": (_leakage, ValidateParams(), DataParams()),
}


@dataclass
class Outcome:
    dst: Path
    report: ValidationReport | None
    error: str | None
    summary: dict[str, Any]

    def check(self, name: str) -> dict[str, Any]:
        matches = [c for c in self.summary["checks"] if c["check"] == name]
        assert len(matches) == 1, f"no single check named {name!r}"
        return matches[0]

    @property
    def failed(self) -> set[str]:
        return {c["check"] for c in self.summary["checks"] if not c["success"]}

    def block(self, name: str) -> list[str]:
        """The error-message lines under `✗ name`: the header and its example rows."""
        assert self.error is not None
        lines = self.error.splitlines()
        starts = [i for i, line in enumerate(lines) if line.startswith(f"  ✗ {name} [")]
        assert len(starts) == 1, f"{name!r} is not named once as failed in:\n{self.error}"
        out = [lines[starts[0]]]
        for line in lines[starts[0] + 1 :]:
            if not line.startswith("      "):
                break
            out.append(line.strip())
        return out


def write_splits(folder: Path, rows: Rows) -> None:
    folder.mkdir(parents=True)
    for split, part in rows.items():
        pd.DataFrame(
            {
                "text": pd.Series([t for t, _ in part], dtype=object),
                "label": pd.Series([label for _, label in part], dtype=object),
                "source_row": list(range(len(part))),
            }
        ).to_parquet(folder / f"{split}.parquet", index=False)


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Outcome]:
    cache: dict[str, Outcome] = {}

    def run(case: str) -> Outcome:
        if case not in cache:
            make_rows, params, data = CASES[case]
            root = tmp_path_factory.mktemp(case)
            write_splits(root / "gathered", make_rows())
            dst = root / "validation"
            report, error = None, None
            try:
                report = validate(src=root / "gathered", dst=dst, params=params, data=data)
            except DataValidationError as exc:
                error = str(exc)
            summary = json.loads((dst / "summary.json").read_text(encoding="utf-8"))
            cache[case] = Outcome(dst=dst, report=report, error=error, summary=summary)
        return cache[case]

    return run


def failed_outcome(outcome: Callable[[str], Outcome], case: str) -> Outcome:
    result = outcome(case)
    assert result.error is not None, f"{case}: validate did not raise DataValidationError"
    assert result.error.startswith("[NLP003] data validation failed:")
    assert result.report is None
    assert result.summary["success"] is False
    assert (
        f"data validation failed: {len(result.failed)} of {len(CHECK_NAMES)} checks."
        in result.error
    )
    assert result.error.endswith(
        f"Full report: {result.dst / 'report.html'}. Fix the data, or the "
        "validate.* params (validate.policy.<check id>: quarantine moves offending rows aside "
        "instead)."
    )
    failed = [c for c in result.summary["checks"] if not c["success"]]
    assert all(c["examples"] for c in failed)  # every failed check shows offending rows
    return result


# ---------------------------------------------------------------- clean data


def test_clean_data_passes(outcome: Callable[[str], Outcome]) -> None:
    result = outcome("clean")
    assert result.error is None
    assert result.report is not None
    assert result.report.success is True
    assert result.report.failed == []
    assert result.report.rows == {"train": 16, "validation": 6, "test": 6}
    assert result.report.allowed_labels == ["billing", "shipping"]
    assert result.summary["success"] is True
    assert [c["success"] for c in result.summary["checks"]] == [True] * len(CHECK_NAMES)
    assert all(c["examples"] == [] for c in result.summary["checks"])
    page = result.dst / "report.html"  # tests/data/test_validation_report.py reads it
    assert "PASSED" in page.read_text(encoding="utf-8")
    assert result.summary["report_html"] == str(page)
    assert not (result.dst / "data_docs").exists()  # GX Data Docs need a CDN: not built


def test_clean_run_reports_exactly_the_suites_checks(
    outcome: Callable[[str], Outcome],
) -> None:
    result = outcome("clean")
    checks = build_checks(ValidateParams())
    assert [c.id for c in checks] == [i for i, _, _ in CHECKS]
    assert [c.name for c in checks][6:] == CHECK_NAMES[6:]
    assert [c["check"] for c in result.summary["checks"]] == CHECK_NAMES
    assert [c["id"] for c in result.summary["checks"]] == [i for i, _, _ in CHECKS]
    assert sorted(c["expectation"] for c in result.summary["checks"]) == sorted(EXPECTATIONS)


def test_each_check_reports_its_own_expectation(outcome: Callable[[str], Outcome]) -> None:
    # GX returns results grouped by column, not in suite order; names must follow their results
    result = outcome("clean")
    assert [c["expectation"] for c in result.summary["checks"]] == EXPECTATIONS


# ---------------------------------------------------------------- one test per failure kind


def test_null_text_fails(outcome: Callable[[str], Outcome]) -> None:
    result = failed_outcome(outcome, "null_text")
    assert result.failed == {"no null text"}
    check = result.check("no null text")
    assert check["unexpected_count"] == 1
    assert [(e["split"], e["source_row"]) for e in check["examples"]] == [("train", 2)]
    header, *examples = result.block("no null text")
    assert (
        header == "  ✗ no null text [text_not_null] (expect_column_values_to_not_be_null): 1 rows"
    )
    assert len(examples) == 1
    assert examples[0].startswith("train row 2: label='billing' text=")


def test_empty_or_whitespace_text_fails(outcome: Callable[[str], Outcome]) -> None:
    result = failed_outcome(outcome, "empty_text")
    name = "no empty or whitespace-only text"
    # "" is also 0 characters long, below min_chars=1; "   " is 3 characters and passes that
    assert result.failed == {name, "text length is 1..5000 characters"}
    assert result.check(name)["unexpected_count"] == 2
    assert result.check("text length is 1..5000 characters")["unexpected_count"] == 1
    assert result.block(name) == [
        f"  ✗ {name} [{ID[name]}] (expect_column_values_to_not_match_regex): 2 rows",
        "validation row 1: label='billing' text=''",
        "validation row 4: label='shipping' text='   '",
    ]


def test_label_in_test_but_not_in_train_fails(outcome: Callable[[str], Outcome]) -> None:
    result = failed_outcome(outcome, "unknown_test_label")
    name = "labels are in the allowed set ['billing', 'shipping']"
    # 'refund' also has 0 train examples, below min_examples_per_class=5
    assert result.failed == {name, "each label has at least 5 train examples"}
    assert result.summary["allowed_labels"] == ["billing", "shipping"]
    assert result.check(name)["unexpected_count"] == 1
    assert result.block(name) == [
        f"  ✗ {name} [{ID[name]}] (expect_column_values_to_be_in_set): 1 rows",
        "test row 5: label='refund' text='refund my last order'",
    ]


def test_label_outside_explicit_labels_fails(outcome: Callable[[str], Outcome]) -> None:
    result = failed_outcome(outcome, "label_outside_explicit_set")
    name = "labels are in the allowed set ['billing', 'shipping']"
    assert result.failed == {name}  # 'returns' has 5 train rows, so only the set check fails
    assert result.summary["allowed_labels"] == ["billing", "shipping"]
    assert result.check(name)["unexpected_count"] == 5
    header, *examples = result.block(name)
    assert header == f"  ✗ {name} [{ID[name]}] (expect_column_values_to_be_in_set): 5 rows"
    assert examples == [
        f"train row {16 + i}: label='returns' text='returns question {i}'" for i in range(5)
    ]


def test_text_longer_than_max_chars_fails(outcome: Callable[[str], Outcome]) -> None:
    result = failed_outcome(outcome, "too_long")
    name = "text length is 1..40 characters"
    assert result.failed == {name}
    assert result.check(name)["unexpected_count"] == 1
    assert result.block(name) == [
        f"  ✗ {name} [{ID[name]}] (expect_column_value_lengths_to_be_between): 1 rows",
        "train row 0: label='billing' "
        "text='Please refund the double charge on my card from last week'",
    ]


def test_class_with_too_few_train_examples_fails(outcome: Callable[[str], Outcome]) -> None:
    result = failed_outcome(outcome, "too_few_examples")
    name = "each label has at least 5 train examples"
    assert result.failed == {name}
    assert result.check(name)["unexpected_count"] == 2
    assert result.block(name) == [
        f"  ✗ {name} [{ID[name]}] (expect_column_values_to_be_between): 2 rows",
        "train row 16: label='returns' text='returns question 0'",
        "train row 17: label='returns' text='returns question 1'",
    ]


def test_duplicate_rate_above_limit_fails(outcome: Callable[[str], Outcome]) -> None:
    result = failed_outcome(outcome, "duplicates")
    name = "at most 5.0% of texts repeat an earlier text"
    assert result.failed == {name}
    check = result.check(name)
    # 31 rows, three repeat "billing question 0": 3/31 = 9.7 % > 5 %; the first stays
    assert check["unexpected_count"] == 3
    assert result.block(name) == [
        f"  ✗ {name} [duplicates] (expect_column_values_to_be_in_set): 3 rows",
        *[f"train row {i}: label='billing' text='billing question 0'" for i in (16, 17, 18)],
    ]


def test_test_text_also_in_train_fails(outcome: Callable[[str], Outcome]) -> None:
    result = failed_outcome(outcome, "leakage")
    name = "no test text appears in train"
    # one repeat in 28 rows (27/28 unique) stays under the 5 % duplicate limit; an exact
    # repeat is also a normalised one
    assert result.failed == {name, CHECK_NAMES[11]}
    assert result.check(name)["unexpected_count"] == 1
    block = result.block(name)
    assert block[:2] == [
        f"  ✗ {name} [{ID[name]}] (expect_column_values_to_be_in_set): 1 rows",
        "test row 0: label='billing' text='billing question 3'",
    ]
    # no gather manifest says where the splits came from: the fix for both (issue 18: an
    # official test set must not be told to quarantine its rows)
    assert block[2].startswith(
        "Fix: if the test split came with the source: set data.test_overlap: drop_from_train"
    )
    assert "if nlpflow split the data: set data.split.group_duplicates: true" in block[2]


def _validate_rows(tmp_path: Path, rows: Rows, **params: object) -> DataValidationError | None:
    from nlpflow.data.validation import validate

    src = tmp_path / "gathered"
    src.mkdir(parents=True)
    for split, pairs in rows.items():
        frame = pd.DataFrame(pairs, columns=["text", "label"]).assign(source_row=range(len(pairs)))
        frame.to_parquet(src / f"{split}.parquet", index=False)
    try:
        validate(
            src=src, dst=tmp_path / "report", params=ValidateParams(**params), data=DataParams()
        )
    except DataValidationError as exc:
        return exc
    return None


def test_normalised_leak_is_caught_when_exact_check_passes(tmp_path: Path) -> None:
    rows = clean_rows()
    rows["test"][0] = ("BILLING question 3 !!", "billing")  # train has "billing question 3"
    error = _validate_rows(tmp_path, rows)
    assert error is not None
    assert f"✗ {CHECK_NAMES[11]}" in str(error)
    assert "[leak_exact]" not in str(error)


def test_imbalance_damage_and_token_lengths(tmp_path: Path) -> None:
    rows = clean_rows()
    rows["train"] += [(f"billing extra {i}", "billing") for i in range(40)]  # 48 vs 8: 6x
    rows["train"][0] = ("caf\ufffd is closed", "billing")  # encoding damage in 1 of 68 rows
    error = _validate_rows(tmp_path, rows, max_imbalance_ratio=5, max_p95_tokens=2)
    assert error is not None
    message = str(error)
    assert "✗ largest class is at most 5x each class in train" in message
    assert "✗ at most 0.10% of texts hold U+FFFD or control characters" in message
    assert "✗ 95th percentile length is at most 2 tokens" in message
    assert "median length" not in message
    # loosened bounds pass the same rows
    assert (
        _validate_rows(tmp_path / "ok", rows, max_imbalance_ratio=6, max_damaged_share=0.02) is None
    )
