"""The data roles of the NLP task axis: every registered task has a Data module (gather) and a
Suite module (validate), and the stages do what the task's modules say (a test-only task with
modules of its own shows it)."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import nlpflow.data.nlp.text_classification as tc
import nlpflow.data.suites.text_classification as tc_suite
from nlpflow.config.nlp_tasks import NLP_TASKS, NlpTask
from nlpflow.config.params import DataParams, SplitParams, ValidateParams
from nlpflow.data.gather import gather
from nlpflow.data.nlp import Data, data_role
from nlpflow.data.splits import SPLIT_COLUMN, SPLITS
from nlpflow.data.suites import Suite, suite_role
from nlpflow.data.validation import validate

FAKE = "fake-data-test"


@pytest.mark.parametrize("task", sorted(NLP_TASKS))
def test_every_registered_task_has_a_data_module_and_a_suite(task: str) -> None:
    role = data_role(task)
    assert isinstance(role, Data)
    assert role.__name__ == f"nlpflow.data.nlp.{NLP_TASKS[task].data}"  # type: ignore[attr-defined]
    checks = suite_role(task)
    assert isinstance(checks, Suite)
    assert checks.__name__ == f"nlpflow.data.suites.{NLP_TASKS[task].suite}"  # type: ignore[attr-defined]


def test_a_module_missing_part_of_the_role_is_no_data_module() -> None:
    partial = types.ModuleType("partial")
    partial.shape = tc.shape  # type: ignore[attr-defined]
    partial.build_frame = tc_suite.build_frame  # type: ignore[attr-defined]
    assert not isinstance(partial, Data)
    assert not isinstance(partial, Suite)


def _fake_modules(calls: list[str]) -> tuple[types.ModuleType, types.ModuleType]:
    """Data and Suite modules unlike classification's: labels upper-cased and never deduped,
    splits by row position, counts keyed `tag:<label>`, a suite of two checks, one class is
    enough."""
    fake = types.ModuleType("nlpflow.data.nlp.fake_data")
    fake_suite = types.ModuleType("nlpflow.data.suites.fake_data")

    def shape(frame: pd.DataFrame, params: DataParams) -> tuple[pd.DataFrame, int]:
        calls.append("shape")
        return frame.assign(label=frame["label"].str.upper()), 0

    def assign_splits(frame: pd.DataFrame, params: SplitParams, *, from_source: bool) -> Any:
        calls.append(f"assign_splits(from_source={from_source})")
        position = pd.Series(range(len(frame)), index=frame.index) % 5
        return frame.assign(
            **{SPLIT_COLUMN: position.map({0: "test", 1: "validation"}).fillna("train")}
        )

    def target_counts(frame: pd.DataFrame, *, missing: bool = False) -> dict[str, int]:
        return {f"tag:{k}": v for k, v in tc.target_counts(frame, missing=missing).items()}

    def build_checks(params: ValidateParams) -> list[Any]:
        calls.append("build_checks")
        keep = ("text_not_null", "label_in_set")
        return [c for c in tc_suite.build_checks(params) if c.id in keep]

    def compute_profile(frame: pd.DataFrame) -> dict[str, Any]:
        return {"rows": len(frame), "fake": True}

    def refuse_untrainable(report: Any, data: DataParams) -> None:
        calls.append("refuse_untrainable")

    fake.__dict__.update(
        read=tc.read, shape=shape, assign_splits=assign_splits, target_counts=target_counts
    )
    fake_suite.__dict__.update(
        target_counts=target_counts, build_frame=tc_suite.build_frame, build_checks=build_checks,
        allowed_labels=tc_suite.allowed_labels, suite_params=tc_suite.suite_params,
        compute_profile=compute_profile, refuse_untrainable=refuse_untrainable,
    )  # fmt: skip
    return fake, fake_suite


def test_gather_and_validate_go_through_the_data_module_of_their_nlp_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    for module in _fake_modules(calls):
        monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(NLP_TASKS, FAKE, NlpTask(FAKE, "test only", data="fake_data",
                        suite="fake_data", scoring="text_classification",
                        output="text_classification"))  # fmt: skip
    assert isinstance(data_role(FAKE), Data) and isinstance(suite_role(FAKE), Suite)
    source = tmp_path / "one_class.csv"
    # one label only, and one repeated text: classification would dedupe it and split by label
    source.write_text("text,label\n" + "".join(f"note {i % 9} here,x\n" for i in range(10)))

    params = DataParams(dedupe="exact")
    classified = gather(source=source, dst=tmp_path / "tc", params=params)
    assert (classified.labels, classified.duplicates_dropped) == ({"x": 9}, 1)

    report = gather(source=source, dst=tmp_path / "g", params=params, task=FAKE)
    assert calls == ["shape", "assign_splits(from_source=False)"]
    assert (report.labels, report.duplicates_dropped) == ({"tag:X": 10}, 0)
    assert report.rows == {"train": 6, "validation": 2, "test": 2}
    test = pd.read_parquet(tmp_path / "g" / "test.parquet")
    assert test["source_row"].tolist() == [0, 5]

    reference = tmp_path / "accepted.json"
    validated = validate(
        src=tmp_path / "g", dst=tmp_path / "v", params=ValidateParams(), data=DataParams(),
        reference=reference, task=FAKE,
    )  # fmt: skip
    assert calls[2:] == ["build_checks", "refuse_untrainable"]
    # classification's suite has 17 checks and refuses a single class; the fake's has two
    assert [c.id for c in validated.checks] == ["text_not_null", "label_in_set"]
    assert validated.checks[1].check == "labels are in the allowed set ['X']"
    assert validated.label_counts == {s: {"tag:X": report.rows[s]} for s in SPLITS}
    assert json.loads(reference.read_text()) == {"rows": 10, "fake": True}
