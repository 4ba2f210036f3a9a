"""What a leak check tells the user to do (issue 18). Quarantine moves the flagged rows, which
are test rows: on a source's own (official) test split that cuts the set every published
figure is measured on, so the fix must name data.test_overlap: drop_from_train; on a split
nlpflow made, grouping (data.split.group_duplicates / group_subphrases) is the fix.
leak_subphrase warns by default and fails only when validate.policy says so.

    .venv/bin/python -m pytest tests/data/test_leak_fixes.py -q
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from nlpflow.config.params import DataParams, ValidateParams
from nlpflow.data.validation import validate
from nlpflow.errors import DataValidationError

LABELS = ("pos", "neg")


def write_splits(root: Path, *, from_source: bool, repeats: bool = False) -> Path:
    """8 train sentences a label; test row 0 repeats a train sentence up to case (a
    normalised leak), test row 1 is a 5-word phrase of another (a sub-phrase leak);
    `repeats`: test rows 2 and 3 copy train sentences exactly (duplicates, 2 of 28 rows)."""
    src = root / "gathered"
    src.mkdir(parents=True)
    train = [(f"the {label} film number {i} was shown late", label) for label in LABELS for i in range(8)]  # fmt: skip
    validation = [(f"a {label} review {i}", label) for label in LABELS for i in range(3)]
    test = [(f"an {label} essay {i}", label) for label in LABELS for i in range(3)]
    test[0] = ("THE POS FILM NUMBER 2 WAS SHOWN LATE!", "pos")
    test[1] = ("film number 5 was shown", "pos")
    if repeats:
        test[2], test[3] = train[3], train[12]
    for name, rows in (("train", train), ("validation", validation), ("test", test)):
        pd.DataFrame(rows, columns=["text", "label"]).assign(
            source_row=range(len(rows))
        ).to_parquet(src / f"{name}.parquet", index=False)
    manifest = {"source": "data/x.csv", "format": "csv", "split_from_source": from_source}
    (src / "manifest.json").write_text(json.dumps(manifest))
    return src


def run(root: Path, *, from_source: bool, policy: dict[str, str], repeats: bool = False) -> str:
    src = write_splits(root, from_source=from_source, repeats=repeats)
    with pytest.raises(DataValidationError) as caught:
        validate(
            src=src, dst=root / "report", params=ValidateParams(policy=policy),  # type: ignore[arg-type]
            data=DataParams(), gx_dir=root / "gx",
        )  # fmt: skip
    return str(caught.value)


def test_a_source_s_own_test_split_is_told_to_drop_from_train_not_to_quarantine(
    tmp_path: Path,
) -> None:
    error = run(tmp_path, from_source=True, policy={"leak_subphrase": "fail"}, repeats=True)
    assert "[leak_normalized]" in error and "[leak_subphrase]" in error
    normalized = error[error.index("[leak_normalized]") :]
    assert (
        "Fix: the test split came with the source: set data.test_overlap: drop_from_train"
        in normalized
    )
    assert "quarantine would cut rows from the source's own test set" in normalized
    # the generic advice, quarantine, is not given when every failed check has its own fix
    assert "quarantine moves offending rows aside" not in error
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    by_id = {c["id"]: c for c in summary["checks"]}
    # the phrase and the three repeats
    assert by_id["leak_subphrase"]["by_split"] == {"test": 4}
    assert summary["split_from_source"] is True
    # repeats in the source's test split: quarantine would move the test copies
    duplicates = error[error.index("[duplicates]") :]
    assert "Fix: some repeats are in the test split, which came with the source" in duplicates
    assert "[leak_exact]" in error


def test_a_split_nlpflow_made_is_told_to_group(tmp_path: Path) -> None:
    error = run(tmp_path, from_source=False, policy={"leak_subphrase": "fail"})
    assert "Fix: set data.split.group_duplicates: true" in error
    assert "Fix: set data.split.group_subphrases: true" in error
    assert "drop_from_train" not in error


def test_leak_subphrase_warns_by_default_and_the_run_goes_on_to_the_other_checks(
    tmp_path: Path,
) -> None:
    error = run(tmp_path, from_source=True, policy={})
    assert "[leak_normalized]" in error and "[leak_subphrase]" not in error
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    (warning,) = summary["warnings"]
    assert warning.startswith("no validation or test text of 4+ words appears inside a train")
    assert "[leak_subphrase]: 2 rows (test 2)" in warning
    assert "remove the train rows holding these texts" in warning


def test_with_group_subphrases_on_the_fix_is_not_to_turn_it_on() -> None:
    """A text inside several sentences follows the first only, so leaks can remain with the
    option on (the bundled sample: 14 flagged rows, 6 with it); the fix must then say why."""
    from nlpflow.data.check_results import leak_fix

    fix = leak_fix("leak_subphrase", split_from_source=False, subphrases_grouped=True)
    assert "set data.split.group_subphrases: true" not in fix
    assert fix.startswith("these texts lie inside several longer texts")
    assert "validate.policy.leak_subphrase: quarantine" in fix
