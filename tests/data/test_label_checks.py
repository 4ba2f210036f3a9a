"""Labels checked before training: spellings of one label ("Billing", "billing ",
"billing\\nteam") are a validation check with a fail/quarantine policy and a ready label_map, and
labels that are not classes (fractions, lists) are refused by gather, naming the column."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from nlpflow.data.gather import gather
from nlpflow.errors import DataSourceError, DataValidationError
from nlpflow.config.params import DataParams, ValidateParams
from nlpflow.data.text import label_key
from nlpflow.data.suites.text_classification import label_variants
from nlpflow.data.validation import validate

VARIANTS = {"Billing": 3, "billing ": 2, "billing\nteam": 2, "bill\u200bing team": 1}


def _rows() -> list[dict[str, str]]:
    rows = [{"text": f"my parcel {i} is late", "label": "shipping"} for i in range(20)]
    rows += [{"text": f"refund my card {i}", "label": "billing"} for i in range(20)]
    rows += [{"text": f"billing team call me {i}", "label": "billing team"} for i in range(20)]
    n = 0
    for label, count in VARIANTS.items():
        for _ in range(count):
            rows.append({"text": f"charged twice on invoice {n}", "label": label})
            n += 1
    return rows


def _gather_and_validate(tmp_path: Path, data: DataParams, **validate_params: object):
    tmp_path.mkdir(exist_ok=True)
    source = tmp_path / "tickets.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in _rows()))
    gather(source=source, dst=tmp_path / "gathered", params=data)
    return validate(
        src=tmp_path / "gathered", dst=tmp_path / "report",
        params=ValidateParams(min_examples_per_class=1, **validate_params), data=data,
        accepted=tmp_path / "validated", quarantine=tmp_path / "quarantine",
    )  # fmt: skip


def test_label_key_merges_case_spacing_unicode_form_and_control_characters() -> None:
    same = ["billing team", "Billing Team", " billing  team ", "billing\nteam", "billing\tteam",
            "BILLING\u00a0TEAM", "bill\u200bing team", "ｂｉｌｌｉｎｇ team"]  # fmt: skip
    assert {label_key(s) for s in same} == {"billing team"}
    # accents and punctuation may tell classes apart: not merged
    assert len({label_key(s) for s in ("resume", "résumé", "re-sume")}) == 3


def test_variants_map_to_the_spelling_most_rows_use() -> None:
    labels = pd.Series(["a", "a", "A", "b", "B", "B", None, "c"])
    assert label_variants(labels) == {"A": "a", "b": "B"}


def test_label_variants_fail_validation_with_groups_and_a_ready_label_map(
    tmp_path: Path,
) -> None:
    with pytest.raises(DataValidationError) as info:
        _gather_and_validate(tmp_path, DataParams())
    message = str(info.value)
    assert "[label_variants]" in message
    assert "'Billing', 'billing ' look like 'billing' (the spelling most rows use)" in message
    assert "'billing\\nteam', 'bill\\u200bing team' look like 'billing team'" in message
    snippet = message.split("Merge them in params.yaml (add to any label_map you have): ")[1]
    snippet = snippet.splitlines()[0]
    assert '"bill\\u200bing team": "billing team"' in snippet  # the invisible one, escaped
    # the hint is YAML that, pasted into params.yaml, merges every variant
    label_map = yaml.safe_load(snippet.replace("data.label_map: ", "", 1))
    assert label_map == {
        "Billing": "billing", "billing ": "billing",
        "bill\u200bing team": "billing team", "billing\nteam": "billing team",
    }  # fmt: skip
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    check = next(c for c in summary["checks"] if c["id"] == "label_variants")
    assert (check["success"], check["unexpected_count"]) == (False, 8)
    assert not (tmp_path / "validated").exists()

    report = _gather_and_validate(tmp_path / "fixed", DataParams(label_map=label_map))
    assert report.success
    assert report.allowed_labels == ["billing", "billing team", "shipping"]


def test_label_variants_can_be_quarantined(tmp_path: Path) -> None:
    report = _gather_and_validate(tmp_path, DataParams(), policy={"label_variants": "quarantine"})
    assert report.success
    assert report.quarantined == {"label_variants": 8}
    moved = pd.read_json(tmp_path / "quarantine" / "quarantined.jsonl", lines=True)
    assert sorted(moved["label"].unique()) == sorted(VARIANTS)
    kept = pd.concat(pd.read_parquet(p) for p in (tmp_path / "validated").glob("*.parquet"))
    assert sorted(kept["label"].unique()) == ["billing", "billing team", "shipping"]


# ---------------------------------------------------------------- label types, in gather


def _gather_labels(tmp_path: Path, labels: list[object], **params: object) -> list[str]:
    rows = [{"text": f"text number {i}", "label": v} for i, v in enumerate(labels)]
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    gather(source=source, dst=tmp_path / "out", params=DataParams(**params))
    frames = [pd.read_parquet(p) for p in (tmp_path / "out").glob("*.parquet")]
    return sorted(pd.concat(frames)["label"].dropna().unique())


def test_fractional_labels_are_refused_naming_the_column_and_label_map(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError) as info:
        _gather_labels(tmp_path, [0.5, 1.5, 2.5] * 10, label_column="label")
    message = str(info.value)
    assert "data.label_column 'label' holds numbers with a fraction (0.5, 1.5, 2.5)" in message
    assert "data.label_map" in message and "{'0.5': <class name>" in message
    # mapped to names, they are classes
    mapped = {"0.5": "low", "1.5": "mid", "2.5": "high"}
    assert _gather_labels(tmp_path, [0.5, 1.5, 2.5] * 10, label_map=mapped) == [
        "high", "low", "mid",
    ]  # fmt: skip


def test_integral_float_labels_are_the_same_classes_as_ints(tmp_path: Path) -> None:
    # a number column with a gap is stored as floats: 1.0 and 1 must be one class, "1"
    assert _gather_labels(tmp_path, [1, 2.0, 1.0, 2, None] * 6) == ["1", "2"]


def test_list_labels_are_refused_as_multi_label(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError) as info:
        _gather_labels(tmp_path, ["a", ["a", "b"]] * 10)
    assert "rows.jsonl row 1: the label is a list (['a', 'b'])" in str(info.value)
    assert "one label per row" in str(info.value)


def _validate_rows(tmp_path: Path, rows: list[dict[str, str]], data: DataParams) -> str:
    tmp_path.mkdir()
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    gather(source=source, dst=tmp_path / "gathered", params=data)
    with pytest.raises(DataValidationError) as info:
        validate(
            src=tmp_path / "gathered", dst=tmp_path / "report",
            params=ValidateParams(min_examples_per_class=1), data=data,
        )  # fmt: skip
    return str(info.value)


def test_one_class_or_a_listed_label_without_rows_stops_before_training(tmp_path: Path) -> None:
    one = [{"text": f"refund my card {i}", "label": "billing"} for i in range(20)]
    message = _validate_rows(tmp_path / "one", one, DataParams())
    assert "the train split holds 1 label(s) (billing) after validation" in message
    two = one + [{"text": f"my parcel {i} is late", "label": "shipping"} for i in range(20)]
    listed = DataParams(labels=["billing", "shipping", "account"])
    message = _validate_rows(tmp_path / "listed", two, listed)
    assert "data.labels lists account, which no train row has" in message
