"""validate beyond single checks: the file-backed GX project, quarantine, drift, script, custom
expectations in the report. Everything runs real GX checkpoints on Parquet files in tmp dirs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from nlpflow.errors import DataValidationError, ParamsError
from nlpflow.config.params import DataParams, ValidateParams, parse_params
from nlpflow.data.checks import length_bin
from nlpflow.data.suites.text_classification import compute_profile
from nlpflow.data.validation import ValidationReport, validate
from tests.data.test_validation import Rows, clean_rows, write_splits

SUITE = "expectations/nlpflow_text_classification.json"


def _run(root: Path, rows: Rows | None = None, **params: object) -> ValidationReport:
    src = root / "gathered"
    if rows is not None:
        write_splits(src, rows)
    return validate(
        src=src, dst=root / "report", params=ValidateParams(**params), data=DataParams(),
        gx_dir=root / "gx", accepted=root / "validated", quarantine=root / "quarantine",
        reference=root / "accepted.json",
    )  # fmt: skip


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# ---------------------------------------------------------------- the gx/ project


def test_project_is_file_backed_and_the_suite_changes_only_with_params(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    first = _run(tmp_path, clean_rows())
    assert "Calculating Metrics" not in capfd.readouterr().err  # GX progress bars are off
    gx = tmp_path / "gx"
    assert first.suite_updated is True
    for rel in ("great_expectations.yml", SUITE, "checkpoints/nlpflow_validate.json",
                "validation_definitions/gathered_data.json"):  # fmt: skip
        assert (gx / rel).is_file(), rel
    before = _digests(gx)
    assert _run(tmp_path).suite_updated is False
    assert _digests(gx) == before  # same params: not one byte of the project changes

    _run(tmp_path, max_chars=4000)
    suite = json.loads((gx / SUITE).read_text())
    lengths = [e for e in suite["expectations"] if e["meta"].get("nlpflow_check") == "text_length"]
    assert lengths[0]["kwargs"]["max_value"] == 4000
    # per-run output stays out of the project: results and report.html are in the report folder
    assert not (gx / "uncommitted").exists()
    assert list((tmp_path / "report" / "results").rglob("*.json"))


def test_data_dependent_values_are_suite_parameters_not_suite_edits(tmp_path: Path) -> None:
    _run(tmp_path, clean_rows())
    suite = json.loads((tmp_path / "gx" / SUITE).read_text())
    by_id = {e["meta"]["nlpflow_check"]: e for e in suite["expectations"]}
    assert by_id["label_in_set"]["kwargs"]["value_set"] == {"$PARAMETER": "allowed_labels"}
    assert by_id["label_drift"]["kwargs"]["reference"] == {"$PARAMETER": "accepted_labels"}


def test_a_users_own_expectation_is_kept_and_enforced(tmp_path: Path) -> None:
    _run(tmp_path, clean_rows())
    path = tmp_path / "gx" / SUITE
    suite = json.loads(path.read_text())
    suite["expectations"].append({
        "type": "expect_column_values_to_match_regex",
        "kwargs": {"column": "text", "regex": "^(?:billing|shipping) "},
        "meta": {}, "description": "texts start with their topic",
    })  # fmt: skip
    path.write_text(json.dumps(suite))
    assert _run(tmp_path, max_chars=4000).success  # params change: the suite is rebuilt...
    kept = json.loads(path.read_text())["expectations"]
    assert next(e["description"] for e in kept if not e["meta"]) == "texts start with their topic"
    rows = clean_rows()
    rows["train"][3] = ("please help with my bill", "billing")
    assert _run(tmp_path / "again", rows).success  # a fresh project has no such expectation...
    (tmp_path / "again" / "gx" / SUITE).write_text(path.read_text())
    with pytest.raises(DataValidationError, match="texts start with their topic"):
        _run(tmp_path / "again")  # ...the copied suite enforces it


def test_custom_expectations_appear_in_the_report(tmp_path: Path) -> None:
    _run(tmp_path, clean_rows())
    results = list((tmp_path / "report" / "results").rglob("*.json"))
    assert len(results) == 1  # this run's result only
    page = (tmp_path / "report" / "report.html").read_text().replace("<wbr>", "")
    for text in ("at most 0.10% of texts hold U+FFFD or control characters",
                 "expect_column_values_to_have_no_encoding_damage",
                 "at least 99% of texts are mostly Latin script",
                 "expect_column_values_to_be_mostly_in_script",
                 "label shares within 0.1 TVD of the accepted snapshot",
                 "expect_column_distribution_to_stay_near"):  # fmt: skip
        assert text in page


# ---------------------------------------------------------------- quarantine


def test_quarantine_moves_offending_rows_and_keeps_the_input(tmp_path: Path) -> None:
    rows = clean_rows()
    rows["train"][1] = ("   ", "billing")
    rows["test"][2] = ("caf\ufffd order lost", "billing")
    write_splits(tmp_path / "gathered", rows)
    before = _digests(tmp_path / "gathered")
    report = _run(
        tmp_path, policy={"text_not_blank": "quarantine", "encoding_damage": "quarantine"}
    )
    assert report.success is True
    assert report.quarantined == {"text_not_blank": 1, "encoding_damage": 1}
    assert report.rows == {"train": 15, "validation": 6, "test": 5}
    assert _digests(tmp_path / "gathered") == before  # the input is never altered
    moved = pd.read_json(tmp_path / "quarantine" / "quarantined.jsonl", lines=True)
    assert sorted(zip(moved["split"], moved["source_row"], moved["checks"].map(tuple), strict=True)) == [
        ("test", 2, ("encoding_damage",)), ("train", 1, ("text_not_blank",)),
    ]  # fmt: skip
    reason = moved.loc[moved["split"] == "train", "reasons"].iloc[0]
    assert reason == ["no empty or whitespace-only text"]
    kept = pd.read_parquet(tmp_path / "validated" / "train.parquet")
    assert len(kept) == 15 and "   " not in set(kept["text"])
    assert list(kept["source_row"]) == [0, *range(2, 16)]


def test_quarantine_within_a_tolerance_still_moves_rows_and_fail_policy_still_stops(
    tmp_path: Path,
) -> None:
    rows = clean_rows()
    rows["train"] += [("billing question 0", "billing")]  # 1 repeat of 29 rows: under 5 %
    report = _run(tmp_path, rows, policy={"duplicates": "quarantine"})
    assert report.quarantined == {"duplicates": 1}
    assert report.rows["train"] == 16
    rows["train"][1] = ("   ", "billing")
    with pytest.raises(DataValidationError, match=r"\[text_not_blank\]") as failure:
        _run(tmp_path / "b", rows, policy={"duplicates": "quarantine"})
    assert "Quarantined first: {'duplicates': 1}" in str(failure.value)


def test_quarantine_that_empties_a_split_stops_the_run(tmp_path: Path) -> None:
    rows = clean_rows()
    rows["test"] = [("", "billing")] * 2
    with pytest.raises(DataValidationError, match="quarantine moved every test row"):
        _run(tmp_path, rows, policy={"text_not_blank": "quarantine", "text_length": "quarantine",
                                     "duplicates": "quarantine"})  # fmt: skip


def test_policy_params_are_checked() -> None:
    with pytest.raises(ParamsError, match="median_tokens judges the data as a whole"):
        parse_params({"validate": {"policy": {"median_tokens": "quarantine"}}})
    with pytest.raises(ParamsError, match="unknown check 'dupes'"):
        parse_params({"validate": {"policy": {"dupes": "fail"}}})
    with pytest.raises(ParamsError, match=r"validate\.policy\.text_length"):
        parse_params({"validate": {"policy": {"text_length": "drop"}}})


# ---------------------------------------------------------------- drift and script


def test_label_drift_against_the_last_accepted_snapshot(tmp_path: Path) -> None:
    first = _run(tmp_path, clean_rows())
    assert first.reference is None  # nothing accepted yet: drift checks pass
    accepted = json.loads((tmp_path / "accepted.json").read_text())
    assert accepted["labels"] == {"billing": 0.5, "shipping": 0.5}

    shifted = clean_rows()
    shifted["train"] += [(f"billing more {i}", "billing") for i in range(12)]  # 26 of 40 billing
    with pytest.raises(DataValidationError, match=r"\[label_drift\]"):
        write_splits(tmp_path / "s", shifted)
        validate(src=tmp_path / "s", dst=tmp_path / "s_report", params=ValidateParams(),
                 data=DataParams(), gx_dir=tmp_path / "gx", reference=tmp_path / "accepted.json")  # fmt: skip
    summary = json.loads((tmp_path / "s_report" / "summary.json").read_text())
    drift = next(c for c in summary["checks"] if c["id"] == "label_drift")
    assert drift["observed"] == pytest.approx(26 / 40 - 0.5, abs=1e-4)  # TVD of two labels
    # the failed run did not replace the accepted profile; a looser tolerance accepts it
    assert json.loads((tmp_path / "accepted.json").read_text()) == accepted
    validate(src=tmp_path / "s", dst=tmp_path / "s_report", params=ValidateParams(max_label_drift=0.2),
             data=DataParams(), gx_dir=tmp_path / "gx", reference=tmp_path / "accepted.json")  # fmt: skip
    assert json.loads((tmp_path / "accepted.json").read_text())["labels"]["billing"] == 0.65


def test_length_drift_and_bins(tmp_path: Path) -> None:
    assert [length_bin(n) for n in (0, 1, 2, 3, 4, 7, 8, 100)] == [
        "0", "1", "2-3", "2-3", "4-7", "4-7", "8-15", "64-127",
    ]  # fmt: skip
    _run(tmp_path, clean_rows())  # 3-token texts
    longer = {
        split: [(f"{text} " + "with many more words added here to the text", label) for text, label in part]
        for split, part in clean_rows().items()
    }  # fmt: skip
    with pytest.raises(DataValidationError, match=r"\[length_drift\].*observed 1.0"):
        write_splits(tmp_path / "long", longer)
        validate(src=tmp_path / "long", dst=tmp_path / "lr", params=ValidateParams(),
                 data=DataParams(), gx_dir=tmp_path / "gx", reference=tmp_path / "accepted.json")  # fmt: skip
    profile = compute_profile(
        pd.DataFrame({"label": ["a", "b", "b", None], "length_bin": ["1"] * 4})
    )
    assert profile == {"rows": 4, "labels": {"a": 0.333333, "b": 0.666667}, "lengths": {"1": 1.0}}


def test_script_check_flags_texts_in_another_script(tmp_path: Path) -> None:
    rows = clean_rows()
    rows["train"][5] = ("Где мой заказ", "billing")
    with pytest.raises(
        DataValidationError,
        match=r"\[script\] \(expect_column_values_to_be_mostly_in_script\): 1 rows",
    ) as failure:
        _run(tmp_path, rows)
    assert "train row 5: label='billing' text='Где мой заказ'" in str(failure.value)
    assert _run(tmp_path / "off", rows, script=None).success
    assert _run(tmp_path / "cyr", rows, script="cyrillic", min_script_share=0.0).success
