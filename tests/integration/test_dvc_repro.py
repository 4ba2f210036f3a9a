"""`dvc repro` replays the pipeline through `nlpflow stage NAME`, one MLflow run per replay."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from nlpflow.pipeline.stages import STAGE_NAMES
from tests.conftest import fast_params, make_project, mlflow_client

pytestmark = pytest.mark.slow


def _repro(root: Path, env: dict[str, str], *args: str) -> list[str]:
    done = subprocess.run(
        ["dvc", "repro", *args], cwd=root, capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return re.findall(r"Running stage '(\w+)'", done.stdout)


def _runs(root: Path):
    client = mlflow_client(root)
    experiment = client.get_experiment_by_name("nlpflow")
    return client, client.search_runs(
        [experiment.experiment_id], order_by=["attributes.start_time ASC"]
    )


def test_repro_runs_all_then_nothing_then_only_what_a_param_touches(
    tmp_path: Path, venv_env
) -> None:
    root = make_project(tmp_path / "project", fast_params(family="tfidf_logreg"))
    env = venv_env | {"NLPFLOW_PROJECT_DIR": str(root), "NLPFLOW_REGISTERED_MODEL": "repro-model"}
    env.pop("NLPFLOW_TRACKING_URI", None)
    env.pop("MLFLOW_TRACKING_URI", None)

    assert _repro(root, env) == list(STAGE_NAMES)
    client, runs = _runs(root)
    assert [r.info.status for r in runs] == ["FINISHED"]
    run = runs[0]
    assert run.data.tags["nlpflow.runner"] == "dvc"
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    assert run.data.tags["dvc.data/gathered"] == lock["gather"]["outs"][0]["md5"]
    assert run.data.tags["dvc.models/model"] == lock["train"]["outs"][0]["md5"]
    assert run.data.params["train.family"] == "tfidf_logreg"
    assert run.data.metrics["test/accuracy"] > 0.7  # tf-idf separates the sample's topics
    assert {"val/macro_f1", "data/rows_train", "data/validation_success"} <= set(run.data.metrics)
    assert client.get_model_version_by_alias("repro-model", "champion").run_id == run.info.run_id
    assert not (root / ".nlpflow" / "active_run.json").exists()

    assert _repro(root, env) == []  # nothing changed: a no-op
    assert len(_runs(root)[1]) == 1

    params = yaml.safe_load((root / "params.yaml").read_text())
    params["train"]["tfidf"]["C"] = 1.0
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # the baseline is tf-idf too: its params changed with the model's
    assert _repro(root, env) == ["train_params", "train", "baseline", "evaluate", "register"]
    client, runs = _runs(root)
    assert [r.info.status for r in runs] == ["FINISHED", "FINISHED"]
    assert runs[1].data.params["train.tfidf.C"] == "1.0"
    versions = client.search_model_versions("name='repro-model'")
    assert sorted(int(v.version) for v in versions) == [1, 2]
    params["evaluate"]["worst_errors"] = 5  # evaluation only: the models stay
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert _repro(root, env) == ["evaluate", "register"]
    # a knob of another family: train_params notes that nothing train reads changed, and no
    # MLflow run is opened (none would close it)
    params["train"]["lr"] = 0.5  # the transformer's
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert _repro(root, env) == ["train_params"]
    assert [r.info.status for r in _runs(root)[1]] == ["FINISHED"] * 3
    # DVC runs part of the pipeline (a stage's inputs changed, or the user named stages): the
    # stages of one `dvc repro` share a run, which ends FINISHED whichever stage ran last, and
    # the next `dvc repro` never continues it
    for _ in range(2):
        assert _repro(root, env, "--force", "--single-item", "preprocess", "evaluate") == [
            "preprocess", "evaluate"
        ]  # fmt: skip
    _, runs = _runs(root)
    assert [r.info.status for r in runs] == ["FINISHED"] * 5
    assert len({r.info.run_id for r in runs}) == 5
    assert {"perf/preprocess_texts_per_second", "test/accuracy"} <= set(runs[-1].data.metrics)


def test_failed_stage_marks_the_run_failed(tmp_path: Path, venv_env) -> None:
    params = yaml.safe_load(fast_params(family="tfidf_logreg"))
    params["validate"]["min_examples_per_class"] = 10_000  # no class can meet this
    root = make_project(tmp_path / "project", yaml.safe_dump(params))
    env = venv_env | {"NLPFLOW_PROJECT_DIR": str(root), "NLPFLOW_REGISTERED_MODEL": "repro-fail"}
    env.pop("NLPFLOW_TRACKING_URI", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run(["dvc", "repro"], cwd=root, capture_output=True, text=True, env=env)
    assert done.returncode != 0
    assert "each label has at least 10000 train examples" in done.stderr + done.stdout
    client, runs = _runs(root)
    assert [r.info.status for r in runs] == ["FAILED"]
    assert client.search_registered_models() == []
