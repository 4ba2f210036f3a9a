"""Cached stage results: JSON a real Prefect run reads back as a cache hit, and a record that
names another serializer (a pickle) is a cache miss, never unpickled."""

from __future__ import annotations

import base64
import json
import pickle
from pathlib import Path

import pytest

from nlpflow.pipeline.stages import TrainParamsReport
from nlpflow.tasks.stage_results import (
    REPORTS,
    StageResultSerializer,
    discard_foreign_record,
    report_class,
)
from nlpflow.tasks.stages import StageResult


def _result(run_id: str) -> StageResult:
    report = TrainParamsReport(family="tfidf_logreg", fields=7, path="models/train_params.yaml")
    return StageResult(report, {"models/train_params.yaml": "md5:1"}, run_id, "key1", 1.5)


def test_every_stage_has_a_report_class_and_results_round_trip() -> None:
    from nlpflow.pipeline.stages import STAGE_NAMES

    assert set(REPORTS) == set(STAGE_NAMES)
    assert all(issubclass(report_class(name), object) for name in STAGE_NAMES)
    result = _result("run-a")
    blob = StageResultSerializer().dumps(result)
    assert json.loads(blob)["stage"] == "train_params" and b"__class__" not in blob
    assert StageResultSerializer().loads(blob) == result


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return os.system, (f"touch {self.marker}",)


def test_a_pickled_record_is_a_cache_miss_and_never_runs(prefect_api: str, tmp_path: Path) -> None:
    """The real stage task (train_params: seconds, no data) through Prefect's cache."""
    from prefect import flow

    from nlpflow.pipeline.fingerprint import stage_key
    from nlpflow.config.params import parse_params
    from nlpflow.config.settings import Settings
    from nlpflow.pipeline.stages import StageContext, get_stage
    from nlpflow.tasks.stages import cache_storage, run_stage_cached

    ctx = StageContext(
        root=tmp_path, params=parse_params({}), settings=Settings(project_dir=tmp_path)
    )

    @flow
    def run(run_id: str) -> StageResult:
        return run_stage_cached("train_params", ctx, run_id)

    first = run("run-1")
    assert first.run_id == "run-1"
    record_file = cache_storage(tmp_path) / str(stage_key(get_stage("train_params"), ctx))
    record = json.loads(record_file.read_text())
    assert record["metadata"]["serializer"]["type"] == "nlpflow-stage-result"
    assert json.loads(record["result"])["run_id"] == "run-1"  # JSON inside, no pickle
    assert run("run-2") == first  # read back: a cache hit, the report rebuilt equal
    # Someone swaps in a record of Prefect's pickle serializer whose payload runs a command.
    marker = tmp_path / "ran"
    record["metadata"]["serializer"] = {"type": "pickle", "picklelib": "pickle"}
    record["result"] = base64.b64encode(pickle.dumps(_Payload(marker))).decode()
    record_file.write_text(json.dumps(record))
    assert run("run-3").run_id == "run-3"  # a miss: the stage ran again
    assert not marker.exists()
    rewritten = json.loads(record_file.read_text())
    assert rewritten["metadata"]["serializer"]["type"] == "nlpflow-stage-result"
    assert run("run-4").run_id == "run-3"  # and hits again


@pytest.mark.parametrize("content", [b"\x80\x04garbage", b"{}", b'{"metadata": {}}'])
def test_files_that_are_not_stage_records_are_discarded(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "k").write_bytes(content)
    assert discard_foreign_record(tmp_path / "k") and not (tmp_path / "k").exists()
    assert not discard_foreign_record(tmp_path / "k")  # nothing there: nothing to do
