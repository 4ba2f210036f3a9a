"""dvc.yaml, the stage table and the flow's tasks must describe the same pipeline (dvc.yaml is
generated from the table: tests/unit/test_dvc_yaml.py)."""

from __future__ import annotations

import yaml

from nlpflow.pipeline.stages import (
    STAGE_NAMES,
    STAGES,
    get_stage,
    model_stage,
    snapshot_stage,
    stage_names,
)
from tests.conftest import REPO

DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def _paths(entries: list) -> list[str]:
    return [e if isinstance(e, str) else next(iter(e)) for e in entries]


def test_same_stages_in_the_same_order() -> None:
    from nlpflow.tasks.stages import STAGE_TASKS

    assert list(DVC) == list(STAGE_NAMES) == list(STAGE_TASKS)
    assert [t.name for t in STAGE_TASKS.values()] == list(STAGE_NAMES)


def test_same_outputs_commands_and_params() -> None:
    for stage in STAGES:
        spec = DVC[stage.name]
        assert spec["cmd"] == f"nlpflow stage {stage.name}"
        written = _paths(spec.get("outs", []) + spec.get("metrics", []) + spec.get("plots", []))
        assert sorted(written) == sorted(stage.outs), stage.name
        assert set(stage.deps) <= set(_paths(spec["deps"])), stage.name
        assert list(spec.get("params", [])) == list(stage.params), stage.name


def test_each_stage_depends_on_its_own_code() -> None:
    code = {
        "gather": "src/nlpflow/data/gather.py", "validate": "src/nlpflow/data/validation.py",
        "preprocess": "src/nlpflow/data/preprocess.py", "train_params": "src/nlpflow/config/params.py",
        "train": "src/nlpflow/training/train.py",
        "baseline": "src/nlpflow/training/train.py", "evaluate": "src/nlpflow/evaluation/evaluate.py",
        "register": "src/nlpflow/release/registry.py",
    }  # fmt: skip
    for name, path in code.items():
        assert path in DVC[name]["deps"]
        assert path.removeprefix("src/") in get_stage(name).code_files()
        assert (REPO / path).is_file()


def test_what_differs_by_stage_is_a_field_of_its_row() -> None:
    def named(flag: str) -> list[str]:
        return [s.name for s in STAGES if getattr(s, flag)]

    assert named("pushed") == ["gather", "validate", "preprocess", "train", "baseline"]
    assert named("prepares") == ["gather", "validate", "preprocess"]  # a sweep's data stages
    assert named("gpu") == ["train"]
    assert named("records_run") == ["evaluate"]
    assert named("registers") == ["register"]
    assert [s.name for s in STAGES if not s.tracked] == ["train_params"]
    keyed = [s.name for s in STAGES if s.key_parts is not None]
    assert keyed == ["gather", "train", "baseline", "register"]
    assert (model_stage().name, model_stage().model) == ("train", "models/model")
    assert (snapshot_stage().name, snapshot_stage().snapshot) == ("gather", "data/gathered")
    assert stage_names() == STAGE_NAMES
    for stage in STAGES:  # the report class each stage's cached result is rebuilt as
        assert stage.report_class().__name__ == stage.report.split(":")[1]


def test_retries_only_where_a_rerun_can_succeed() -> None:
    from nlpflow.tasks.stages import STAGE_TASKS

    retries = {name: task.retries for name, task in STAGE_TASKS.items()}
    assert retries == {
        "gather": 2,
        "validate": 0,
        "preprocess": 0,
        "train_params": 0,
        "train": 1,  # resumes from its last checkpoint
        "baseline": 0,
        "evaluate": 0,
        "register": 2,
    }


def test_user_errors_are_not_retried_but_io_errors_are() -> None:
    from prefect.states import Failed

    from nlpflow.errors import DataSourceError
    from nlpflow.tasks.stages import retry_unless_user_error

    assert (
        retry_unless_user_error(None, None, Failed(data=DataSourceError("missing column"))) is False
    )
    assert (
        retry_unless_user_error(None, None, Failed(data=ConnectionError("reset by peer"))) is True
    )


def test_train_takes_the_gpu_tag_only_when_it_trains_on_a_gpu(tmp_path) -> None:
    from nlpflow.config.params import load_params
    from nlpflow.config.settings import Settings
    from nlpflow.pipeline.stages import StageContext
    from nlpflow.tasks.stages import wants_gpu

    def ctx(*overrides: str) -> StageContext:
        params = load_params(REPO / "params.yaml", list(overrides))
        return StageContext(root=tmp_path, params=params, settings=Settings(project_dir=tmp_path))

    assert wants_gpu(ctx("train.device=cuda")) is True  # the limit then holds it back
    assert wants_gpu(ctx("train.device=cpu")) is False
    assert wants_gpu(ctx("train.device=cuda", "train.family=tfidf_logreg")) is False
