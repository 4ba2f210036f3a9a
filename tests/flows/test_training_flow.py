"""The training flow end to end on the bundled sample: Prefect, MLflow, DVC and GX all real."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from nlpflow.pipeline.stages import STAGES
from tests.conftest import fast_params, make_project, mlflow_client, use_mlflow_store

pytestmark = pytest.mark.slow
MODEL_NAME = "flow-test-classifier"


@pytest.fixture(scope="module")
def flow_run(prefect_api: str, tiny_encoder: Path, tmp_path_factory: pytest.TempPathFactory):
    from nlpflow.flows.training import training_flow

    params = yaml.safe_load(fast_params(pretrained=tiny_encoder))
    # A random 2-layer encoder trained for 3 epochs is not meant to beat tf-idf or pass the
    # behavioural tests; this test is about the flow (tests/integration/test_promotion.py and
    # tests/unit/test_gate.py are about the gate), so only the champion comparison gates here.
    params["register"]["gate"].update({"beat_baseline": False, "min_behavioural_pass_rate": 0.0})
    root = make_project(
        tmp_path_factory.mktemp("flow") / "project", yaml.safe_dump(params, sort_keys=False)
    )
    with pytest.MonkeyPatch.context() as mp:
        # Only the flow parameter names the project, as when a worker runs a deployment
        # from another directory.
        mp.delenv("NLPFLOW_PROJECT_DIR", raising=False)
        mp.setenv("NLPFLOW_REGISTERED_MODEL", MODEL_NAME)
        mp.delenv("NLPFLOW_TRACKING_URI", raising=False)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        state = training_flow(project_dir=str(root), return_state=True)
        yield root, state, state.result(), mp


def _client(root: Path):
    return mlflow_client(root)


def test_mlflow_run_holds_params_metrics_tags_and_artifacts(flow_run) -> None:
    root, state, result, _ = flow_run
    client = _client(root)
    run = client.get_run(result["run_id"])
    assert run.info.status == "FINISHED"
    assert result["gather"]["source"] == str(root / "data/sample/support_tickets.csv")
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == "nlpflow"
    assert run.data.params["train.family"] == "transformer"
    assert run.data.params["data.split.seed"] == "13"
    # per-epoch history, one point per epoch the trainer reported
    epochs = result["train"]["epochs"]
    val_f1 = client.get_metric_history(run.info.run_id, "val/macro_f1")
    assert [m.step for m in val_f1] == list(range(1, epochs + 1))
    assert len(client.get_metric_history(run.info.run_id, "train/loss")) == epochs
    # per-step loss, learning rate and tokens/s; throughput, MFU, memory and device facts
    steps = client.get_metric_history(run.info.run_id, "step/loss")
    assert len(steps) >= 2 and [m.step for m in steps] == sorted(m.step for m in steps)
    assert client.get_metric_history(run.info.run_id, "step/learning_rate")
    assert 0 < run.data.metrics["perf/mfu"] < 1
    assert run.data.metrics["perf/tokens_per_second"] > 0
    assert run.data.metrics["perf/peak_memory_mb"] > 100
    import torch

    assert run.data.tags["device.torch"] == torch.__version__
    assert run.data.tags["device.device"] == "cpu"
    metrics = json.loads((root / "reports/metrics.json").read_text())
    assert run.data.metrics["test/accuracy"] == pytest.approx(metrics["accuracy"])
    assert run.data.metrics["test/macro_f1"] == pytest.approx(metrics["macro_f1"])
    assert run.data.metrics["test_class/billing/f1"] == pytest.approx(
        metrics["per_class"]["billing"]["f1"]
    )
    # lineage tags
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True
    ).stdout
    assert run.data.tags["git.commit"] == head.strip()
    assert run.data.tags["prefect.flow_run_id"] == str(state.state_details.flow_run_id)
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    assert run.data.tags["dvc.data/gathered"] == lock["gather"]["outs"][0]["md5"]
    assert run.data.tags["dvc.data/processed"] == lock["preprocess"]["outs"][0]["md5"]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "validation")}
    wanted = {"validation/summary.json", "validation/report.html", "validation/quarantine"}
    assert wanted <= artifacts
    assert "validation/data_docs" not in artifacts  # GX Data Docs need a CDN: report.html instead
    # the run's snapshot passed, so it is the reference of the next run's drift checks
    (profile,) = (root / ".nlpflow/accepted").glob("data_sample_support_tickets_csv-*.json")
    accepted = json.loads(profile.read_text())
    assert accepted["rows"] == sum(result["validate"]["rows"].values())
    evaluation = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
    assert {"evaluation/confusion_matrix.png", "evaluation/metrics.json"} <= evaluation


def test_registered_with_aliases_and_dvc_is_up_to_date(flow_run, venv_env) -> None:
    root, _, result, _ = flow_run
    version = _client(root).get_model_version_by_alias(MODEL_NAME, "champion")
    assert int(version.version) == result["register"]["version"] == 1
    assert set(version.aliases) == {"champion", "challenger"}
    assert version.run_id == result["run_id"]
    status = subprocess.run(
        ["dvc", "status"], cwd=root, capture_output=True, text=True, env=venv_env
    )
    assert status.returncode == 0, status.stderr
    assert "Data and pipelines are up to date" in status.stdout
    dry = subprocess.run(
        ["dvc", "repro", "--dry"], cwd=root, capture_output=True, text=True, env=venv_env
    )
    assert "didn't change, skipping" in dry.stdout and "Running stage" not in dry.stdout


def test_flow_and_dvc_yaml_run_the_same_stages_in_order(flow_run) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    root, state, _, _ = flow_run

    async def task_names() -> list[str]:
        async with get_client() as client:
            runs = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(
                    id=FlowRunFilterId(any_=[state.state_details.flow_run_id])
                )
            )
        # task-run names are "<task name>-<suffix>"
        return [r.name.rsplit("-", 1)[0] for r in sorted(runs, key=lambda r: r.start_time)]

    names = asyncio.run(task_names())
    dvc_stages = list(yaml.safe_load((root / "dvc.yaml").read_text())["stages"])
    assert [n for n in names if n in dvc_stages] == dvc_stages
    # the lock's dead runs closed, then the run opened before any stage and closed last
    assert names[:2] == ["close-dead-runs", "start-tracking"] and names[-1] == "end-tracking"
    for stage in STAGES:  # every declared output was written by the flow
        for out in stage.outs:
            assert (root / out).exists(), out


def test_registered_pyfunc_predicts_raw_text_like_in_process(flow_run, monkeypatch) -> None:
    import mlflow

    from nlpflow.training.families import load_model
    from nlpflow.config.params import PreprocessParams
    from nlpflow.data.preprocess import TextPreprocessor
    from nlpflow.serving.pyfunc import predict_frame

    root, _, _, _ = flow_run
    raw = [
        "Hi, I was billed twice for my subscription, see https://example.com/invoice/9",
        "My parcel is stuck in customs since Monday",
        "   The app crashes when I upload a photo!!  ",
        "Please delete my account and all my data: jane@example.com",
    ]
    use_mlflow_store(monkeypatch, root)
    served = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@champion").predict(
        pd.DataFrame({"text": raw})
    )
    local = predict_frame(
        load_model(root / "models/model"), TextPreprocessor(PreprocessParams()), raw
    )
    assert list(served.columns) == [
        "label",
        "score",
        *[f"proba_{name}" for name in sorted(["account", "billing", "shipping", "technical"])],
    ]
    assert served["label"].tolist() == local["label"].tolist()
    pd.testing.assert_frame_equal(served.reset_index(drop=True), local, atol=1e-6)


def test_worse_model_does_not_take_champion_and_overrides_leave_dvc_lock(flow_run) -> None:
    from nlpflow.flows.training import training_flow

    root, _, first, _ = flow_run
    lock_before = (root / "dvc.lock").read_bytes()
    second: dict[str, Any] = training_flow(
        overrides=["train.lr=1e-9", "train.epochs=1"], project_dir=str(root)
    )
    assert (root / "dvc.lock").read_bytes() == lock_before
    assert second["dvc_lock_updated"] is False
    reg = second["register"]
    assert reg["version"] == 2 and reg["previous_champion"] == 1
    assert reg["score"] < first["register"]["score"]  # an untrained model really is worse
    client = _client(root)
    assert int(client.get_model_version_by_alias(MODEL_NAME, "champion").version) == 1
    assert int(client.get_model_version_by_alias(MODEL_NAME, "challenger").version) == 2
    assert reg["promoted"] is False
    assert reg["reasons"].startswith("margin: macro_f1")  # the gate says why


def test_invalid_data_fails_the_run_and_registers_nothing(flow_run) -> None:
    from nlpflow.flows.training import training_flow
    from nlpflow.errors import DataValidationError

    root, _, _, _ = flow_run
    bad = root / "data" / "bad.csv"
    frame = pd.read_csv(root / "data/sample/support_tickets.csv")
    frame.loc[3, "label"] = "refunds"  # a label the train split does not know ...
    frame.loc[7, "text"] = "   "  # ... and a blank text
    frame.to_csv(bad, index=False)
    client = _client(root)
    versions_before = len(client.search_model_versions(f"name='{MODEL_NAME}'"))
    state = training_flow(
        overrides=[f"data.source={bad}"], project_dir=str(root), return_state=True
    )
    assert state.is_failed()
    with pytest.raises(DataValidationError) as info:
        state.result()
    assert "no empty or whitespace-only text" in str(info.value)
    assert len(client.search_model_versions(f"name='{MODEL_NAME}'")) == versions_before
    runs = client.search_runs(
        [client.get_experiment_by_name("nlpflow").experiment_id],
        order_by=["attributes.start_time DESC"],
    )
    assert runs[0].info.status == "FAILED"
    summary = json.loads((root / "reports/validation/summary.json").read_text())
    assert summary["success"] is False
