"""What a pipeline run leaves in MLflow 3, read back with MlflowClient: the model as a logged
model of the run (READY, its test metrics linked to the test dataset), the version registered
from it, the run's three datasets with their digests, the source tags, and a register stage
that emits no warning. Then `nlpflow stage register` inside a DVC experiment: it logs the model
and the gate's verdict but registers nothing and moves no alias, unless
register.experiments=register.

The pipeline runs once, in-process, as `dvc repro` would run it (one `nlpflow stage` per stage),
on a tfidf_logreg project with MLflow on SQLite inside it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.conftest import fast_params, make_project, mlflow_client, project_environment

pytestmark = pytest.mark.slow
MODEL = "mlflow-model-test-classifier"
SPLITS = ("train", "validation", "test")


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The pipeline's stages in order; every Python warning and every log record at WARNING or
    above that the register stage emits is kept."""
    from nlpflow.config.params import load_params
    from nlpflow.config.settings import load_settings
    from nlpflow.pipeline.runs import make_context, run_cli_stage
    from nlpflow.pipeline.stages import STAGE_NAMES

    root = make_project(
        tmp_path_factory.mktemp("mlflow-model") / "project", fast_params(family="tfidf_logreg")
    )
    with project_environment(root, MODEL):
        ctx = make_context(root, load_params(root / "params.yaml"), load_settings())
        for name in STAGE_NAMES[:-1]:
            run_cli_stage(name, ctx)
        logs = _Records()
        logging.getLogger().addHandler(logs)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                report = run_cli_stage(STAGE_NAMES[-1], ctx)
        finally:
            logging.getLogger().removeHandler(logs)
        yield {
            "root": root, "register": report.model_dump(), "warnings": list(caught),
            "logs": logs.records,
        }  # fmt: skip


def _run(root: Path, run_id: str) -> Any:
    return mlflow_client(root).get_run(run_id)


def _logged_models(root: Path, run_id: str) -> list[Any]:
    client = mlflow_client(root)
    experiment = client.get_run(run_id).info.experiment_id
    return list(
        client.search_logged_models([experiment], filter_string=f"source_run_id = '{run_id}'")
    )


def _rows_digest(frame: pd.DataFrame) -> str:
    """sha256 of `raw text TAB label NEWLINE` per row, first 32 hex digits: what the datasets'
    digest is documented to be, computed here without nlpflow."""
    digest = hashlib.sha256()
    for text, label in zip(frame["raw_text"], frame["label"], strict=True):
        digest.update(f"{text}\t{label}\n".encode())
    return digest.hexdigest()[:32]


def test_register_emits_no_warning(project: dict[str, Any]) -> None:
    """No Python warning (MLflow's CloudPickle, input example and type-hint warnings among
    them) and no warning logged by any library while the model is logged, registered, loaded
    back and gated."""
    assert [f"{w.category.__name__}: {w.message}" for w in project["warnings"]] == []
    assert [f"{r.name}: {r.getMessage()}" for r in project["logs"]] == []


def test_the_run_has_one_ready_logged_model_with_the_test_metrics_of_metrics_json(
    project: dict[str, Any],
) -> None:
    root, register = project["root"], project["register"]
    metrics = json.loads((root / "reports/metrics.json").read_text())
    (model,) = _logged_models(root, register["run_id"])
    assert model.model_id == register["model_id"]
    assert (model.status, model.name) == ("READY", "tfidf_logreg")
    assert model.model_type == "text-classification"
    linked = {m.key: m for m in model.metrics}
    assert linked["test/macro_f1"].value == metrics["macro_f1"] == register["score"]
    assert linked["test/accuracy"].value == metrics["accuracy"]
    assert linked["test/macro_f1_ci_low"].value == metrics["ci"]["low"]
    test = pd.read_parquet(root / "data/processed/test.parquet")
    assert {(m.dataset_name, m.dataset_digest) for m in model.metrics} == {
        ("support_tickets-test", _rows_digest(test))
    }
    assert {m.run_id for m in model.metrics} == {register["run_id"]}
    # the run lists it among its outputs (the runs table's Models column) ...
    run = _run(root, register["run_id"])
    assert [o.model_id for o in run.outputs.model_outputs] == [model.model_id]
    # ... and its own test/macro_f1 history holds evaluate's one point, not a second copy
    history = mlflow_client(root).get_metric_history(register["run_id"], "test/macro_f1")
    assert [m.value for m in history] == [metrics["macro_f1"]]
    assert model.params == run.data.params


def test_the_version_is_registered_from_that_logged_model(project: dict[str, Any]) -> None:
    root, register = project["root"], project["register"]
    client = mlflow_client(root)
    (model,) = _logged_models(root, register["run_id"])
    version = client.get_model_version(MODEL, str(register["version"]))
    # MLflow's SQL registry keeps no model_id on a version; the FileStore and Databricks do.
    assert (version.model_id or version.tags["model_id"]) == model.model_id
    assert version.source == model.artifact_location
    assert version.run_id == register["run_id"]
    assert json.loads(model.tags["mlflow.modelVersions"]) == [
        {"name": MODEL, "version": str(register["version"])}
    ]
    assert model.tags["gate.decision"] == version.tags["gate.decision"] == "promoted"
    assert model.tags["test_set_sha256"] == version.tags["test_set_sha256"]
    # test_set_sha256 covers the same rows as the test dataset's digest
    test_digest = {m.dataset_digest for m in model.metrics}
    assert test_digest == {version.tags["test_set_sha256"][:32]}


def test_the_run_inputs_are_its_three_splits_with_contexts_and_digests(
    project: dict[str, Any],
) -> None:
    root, register = project["root"], project["register"]
    run = _run(root, register["run_id"])
    inputs = {
        tag.value: found.dataset
        for found in run.inputs.dataset_inputs
        for tag in found.tags
        if tag.key == "mlflow.data.context"
    }
    assert sorted(inputs) == sorted(SPLITS) and len(run.inputs.dataset_inputs) == 3
    for split, dataset in inputs.items():
        frame = pd.read_parquet(root / f"data/processed/{split}.parquet")
        assert dataset.name == f"support_tickets-{split}"
        assert dataset.digest == _rows_digest(frame)
        assert json.loads(dataset.profile)["num_rows"] == len(frame)
        assert dataset.source_type == "local"
        assert json.loads(dataset.source) == {"uri": str(root / "data/sample/support_tickets.csv")}
        columns = {c["name"] for c in json.loads(dataset.schema)["mlflow_colspec"]}
        assert {"text", "raw_text", "label"} <= columns
    assert len({d.digest for d in inputs.values()}) == 3


def test_the_run_names_its_source_project_and_commit(project: dict[str, Any]) -> None:
    root, register = project["root"], project["register"]
    tags = _run(root, register["run_id"]).data.tags
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert tags["mlflow.source.type"] == "PROJECT"
    assert tags["mlflow.source.name"] == str(root)  # no remote: the project folder
    assert tags["mlflow.source.git.commit"] == tags["git.commit"] == head
    assert "mlflow.source.git.repoURL" not in tags
    assert tags["mlflow.project.entryPoint"]


def test_the_registered_pyfunc_is_code_not_a_pickle_and_predicts_as_evaluate(
    project: dict[str, Any], tmp_path: Path
) -> None:
    import mlflow.models
    import yaml

    from nlpflow.config.settings import load_settings
    from nlpflow.tracking.tracker import Tracker

    root, register = project["root"], project["register"]
    with project_environment(root, MODEL):
        tracker = Tracker(load_settings())
    pyfunc = tracker.load_version(MODEL, register["version"], tmp_path / "model")
    evaluated = pd.read_parquet(root / "reports/evaluation/predictions.parquet")
    got = pyfunc.predict(pd.DataFrame({"text": evaluated["raw_text"].tolist()}))
    assert got["label"].tolist() == evaluated["predicted"].tolist()
    folder = next((tmp_path / "model").rglob("MLmodel")).parent  # dst/<the location's name>
    described = yaml.safe_load((folder / "MLmodel").read_text())
    flavor = described["flavors"]["python_function"]
    assert flavor["loader_module"] == "mlflow.pyfunc.loaders.code_model"
    assert Path(flavor["model_code_path"]).name == "pyfunc_entry.py"
    assert described["model_id"] == register["model_id"]
    assert not (folder / "python_model.pkl").exists()
    assert (folder / "code" / "nlpflow" / "serving" / "pyfunc.py").is_file()
    # the request example MLflow keeps is one the model answers, read as its server reads it
    answer = tmp_path / "answer.json"
    mlflow.models.predict(
        str(folder), input_path=str(folder / "serving_input_example.json"),
        output_path=str(answer), env_manager="local",
    )  # fmt: skip
    (row,) = json.loads(answer.read_text())["predictions"]
    assert row["label"] in evaluated["label"].unique() and 0 < row["score"] <= 1


def test_the_registered_pyfunc_loads_where_nlpflow_is_not_installed(
    project: dict[str, Any], tmp_path: Path
) -> None:
    from nlpflow.config.settings import load_settings
    from nlpflow.tracking.tracker import Tracker

    root, register = project["root"], project["register"]
    with project_environment(root, MODEL):
        tracker = Tracker(load_settings())
    texts = ["I was charged twice", "my parcel never arrived", "the app crashes on start"]
    expected = tracker.load_version(MODEL, register["version"], tmp_path / "model")
    folder = next((tmp_path / "model").rglob("MLmodel")).parent
    script = (
        "import importlib.util, json, sys\n"
        "sys.meta_path = [f for f in sys.meta_path if 'editable' not in repr(f)]\n"
        "sys.path = [p for p in sys.path if p and not p.endswith('/src')]\n"
        "assert importlib.util.find_spec('nlpflow') is None, 'nlpflow is still importable'\n"
        "import mlflow.pyfunc, pandas as pd\n"
        "model = mlflow.pyfunc.load_model(sys.argv[1])\n"
        "labels = model.predict(pd.DataFrame({'text': json.loads(sys.argv[2])}))['label']\n"
        "import nlpflow\n"
        "print(json.dumps({'labels': labels.tolist(), 'nlpflow': nlpflow.__file__}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(folder), json.dumps(texts)], cwd=tmp_path,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(got["nlpflow"]).is_relative_to(folder / "code")
    assert got["labels"] == expected.predict(pd.DataFrame({"text": texts}))["label"].tolist()


def test_a_version_pickled_before_models_from_code_still_serves(
    project: dict[str, Any], tmp_path: Path
) -> None:
    """Versions registered by an older nlpflow hold a cloudpickled TextClassifierModel: they
    load and predict as the new ones do."""
    import mlflow.pyfunc

    from nlpflow.config.settings import load_settings
    from nlpflow.serving.pyfunc import MODEL_ARTIFACT, TextClassifierModel
    from nlpflow.tracking.tracker import Tracker

    root, register = project["root"], project["register"]
    with project_environment(root, MODEL):
        tracker = Tracker(load_settings())
    old = tmp_path / "old"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the warnings this old way of saving gave
        mlflow.pyfunc.save_model(
            path=old, python_model=TextClassifierModel(),
            artifacts={MODEL_ARTIFACT: str(root / "models/model")},
            code_paths=[str(Path(sys.modules["nlpflow"].__file__ or "").parent)],
        )  # fmt: skip
    assert (old / "python_model.pkl").is_file()
    client = tracker.client
    run_id = register["run_id"]
    client.log_artifacts(run_id, str(old), "model")
    client.create_registered_model(f"{MODEL}-old")
    source = f"{client.get_run(run_id).info.artifact_uri}/model"
    client.create_model_version(f"{MODEL}-old", source, run_id=run_id)
    texts = pd.DataFrame({"text": ["I was charged twice", "my parcel never arrived"]})
    pickled = tracker.load_version(f"{MODEL}-old", 1, tmp_path / "a").predict(texts)
    current = tracker.load_version(MODEL, register["version"], tmp_path / "b")
    pd.testing.assert_frame_equal(pickled, current.predict(texts))


# ------------------------------------------------------------------ DVC experiments


def _register_stage(root: Path, *args: str) -> dict[str, Any]:
    """`nlpflow stage register` as dvc.yaml runs it, in this process's environment."""
    from tests.conftest import _venv_env

    env = _venv_env() | {"NLPFLOW_PROJECT_DIR": str(root), "NLPFLOW_REGISTERED_MODEL": MODEL}
    env.pop("NLPFLOW_TRACKING_URI", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run(
        ["nlpflow", "stage", "register", *args], cwd=root, capture_output=True, text=True,
        env=env, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return dict(json.loads((root / "reports/registration.json").read_text()))


def _registry(root: Path) -> tuple[list[int], dict[str, int]]:
    client = mlflow_client(root)
    versions = sorted(int(v.version) for v in client.search_model_versions(f"name='{MODEL}'"))
    aliases = {a: int(v) for a, v in client.get_registered_model(MODEL).aliases.items()}
    return versions, aliases


def test_a_dvc_experiment_logs_its_model_but_registers_nothing_and_moves_no_alias(
    project: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project["root"]
    before = _registry(root)
    monkeypatch.setenv("DVC_EXP_NAME", "try-c-3")
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "0" * 40)
    report = _register_stage(root)
    assert _registry(root) == before  # no version, and challenger and champion stayed
    assert report["version"] is None and report["aliases"] == [] and not report["promoted"]
    assert "try-c-3" in report["not_registered"]
    assert "register.experiments" in report["not_registered"]
    run = _run(root, report["run_id"])
    assert report["run_id"] != project["register"]["run_id"]
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert "try-c-3" in tags["registry.not_registered"]
    verdict = "passed" if report["gate_passed"] else "rejected"
    assert tags["gate.decision"] == verdict
    assert tags["gate.reasons"] == report["reasons"]
    assert tags["mlflow.project.entryPoint"] == "dvc exp run"
    (model,) = _logged_models(root, report["run_id"])
    assert model.model_id == report["model_id"] and model.status == "READY"
    assert model.tags["gate.decision"] == verdict
    assert "mlflow.modelVersions" not in model.tags
    assert report["model_uri"] == f"models:/{model.model_id}"
    assert {m.key for m in model.metrics} >= {"test/macro_f1", "test/accuracy"}
    card = (root / "reports/model_card.md").read_text()
    assert f"# Model card: {MODEL} (not registered)" in card and "try-c-3" in card


def test_a_dvc_experiment_registers_when_the_user_asks(
    project: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project["root"]
    versions, aliases = _registry(root)
    monkeypatch.setenv("DVC_EXP_NAME", "try-register")
    report = _register_stage(root, "--set", "register.experiments=register")
    new = max(versions) + 1
    assert report["version"] == new and report["not_registered"] is None
    after_versions, after = _registry(root)
    assert after_versions == [*versions, new]
    assert after["challenger"] == new
    assert after["champion"] == (new if report["promoted"] else aliases["champion"])
    version = mlflow_client(root).get_model_version(MODEL, str(new))
    assert version.tags["model_id"] == report["model_id"]


# ------------------------------------------------------------------ the source tags


def test_entry_point_names_what_started_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    from nlpflow.tracking.tracker import entry_point

    for name in ("DVC_EXP_NAME", "DVC_STAGE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "argv", ["/venv/bin/nlpflow", "run", "--set", "train.seed=1"])
    assert entry_point() == "nlpflow run"
    monkeypatch.setenv("DVC_STAGE", "train")
    assert entry_point() == "dvc repro"
    monkeypatch.setenv("DVC_EXP_NAME", "exp-1")
    assert entry_point() == "dvc exp run"


def test_git_tags_name_the_remote_without_its_credentials(tmp_path: Path) -> None:
    from nlpflow.tracking.tracker import git_tags

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=tmp_path, capture_output=True, text=True, check=True
        ).stdout.strip()

    git("init", "-q", "-b", "main")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "x")
    git("remote", "add", "origin", "https://someone:s3cret@github.com/acme/tickets.git")
    tags = git_tags(tmp_path)
    assert tags["mlflow.source.name"] == "https://github.com/acme/tickets.git"
    assert tags["mlflow.source.git.repoURL"] == "https://github.com/acme/tickets.git"
    assert tags["mlflow.source.git.commit"] == git("rev-parse", "HEAD")
    assert tags["mlflow.source.git.branch"] == "main"
    assert "s3cret" not in json.dumps(tags)
