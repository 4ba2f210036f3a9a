"""Cached stage results stored as JSON, read back without running code.

Prefect persists a task's result with cloudpickle by default, and when it reads a record it
uses whichever serializer the record itself names: whoever could write `.nlpflow/cache/`
could make the next run execute code. So stage results are written by StageResultSerializer
(plain JSON: the stage, its report as JSON, the output fingerprints, run id, key, seconds) and
any file at the key that names another serializer (an old pickled entry, a swapped file) is
deleted before Prefect looks the key up (discard_foreign_record): a cache miss, so the stage
runs again and its new result takes the file's place. The report is rebuilt with the class
this module names for the stage, never a class named in the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from prefect.serializers import Serializer
from pydantic import BaseModel

from nlpflow.pipeline.stages import STAGES, get_stage

SERIALIZER_TYPE = "nlpflow-stage-result"
# Each stage's report class ("module:Class"), as its library function returns it (Stage.report)
REPORTS: dict[str, str] = {stage.name: stage.report for stage in STAGES}


def report_class(stage: str) -> type[BaseModel]:
    if stage not in REPORTS:
        raise ValueError(f"no stage {stage!r} has cached results")
    return get_stage(stage).report_class()


@dataclass(frozen=True)
class StageResult:
    """What a stage task returns, and its cache holds."""

    report: BaseModel
    outputs: dict[str, str]  # out path -> fingerprint, as the stage left it
    run_id: str  # the MLflow run the stage ran in (another run's id: a cache hit)
    key: str | None  # the cache key it was stored under (None: not cacheable)
    seconds: float = 0.0  # the stage function's own time, without its task's bookkeeping


class StageResultSerializer(Serializer):  # not Serializer[Any]: that breaks its registration
    """A StageResult as JSON, and back (the report through its stage's own pydantic class)."""

    type: Literal["nlpflow-stage-result"] = "nlpflow-stage-result"  # SERIALIZER_TYPE

    def dumps(self, obj: Any) -> bytes:
        # The stage whose report class this is (baseline and train share TrainReport: either
        # rebuilds the same class).
        stage = next(s for s in REPORTS if report_class(s) is type(obj.report))
        return json.dumps({
            "stage": stage, "report": obj.report.model_dump(mode="json"),
            "outputs": obj.outputs, "run_id": obj.run_id, "key": obj.key,
            "seconds": obj.seconds,
        }).encode()  # fmt: skip

    def loads(self, blob: bytes) -> Any:
        data = json.loads(blob)
        return StageResult(
            report=report_class(str(data["stage"])).model_validate(data["report"]),
            outputs={str(k): str(v) for k, v in dict(data["outputs"]).items()},
            run_id=str(data["run_id"]),
            key=None if data["key"] is None else str(data["key"]),
            seconds=float(data["seconds"]),
        )


def is_stage_record(content: bytes) -> bool:
    """Whether `content` is a Prefect result record written by StageResultSerializer."""
    try:
        record = json.loads(content)
        return bool(record["metadata"]["serializer"]["type"] == SERIALIZER_TYPE)
    except (ValueError, TypeError, KeyError):
        return False


def discard_foreign_record(path: Path) -> bool:
    """Delete the cache file at `path` unless StageResultSerializer wrote it (True: deleted).

    Prefect reads a record with whichever serializer the record names, so a file of any other
    kind must be gone before Prefect looks up the key: the lookup then misses, the stage runs
    again and its new result takes the file's place. A storage block that refuses such reads
    would be tighter, but Prefect requires custom blocks to be saved on the server first.
    """
    if path.is_file() and not is_stage_record(path.read_bytes()):
        path.unlink(missing_ok=True)
        return True
    return False
