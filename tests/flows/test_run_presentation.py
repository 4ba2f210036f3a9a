"""What a person sees of training runs in MLflow's and Prefect's UIs: names, tags, params, grouped
metrics, and trained / reused / skipped runs told apart (skips and reuses folded under the run
that trained their model). Real flows, a real Prefect test server, MLflow on SQLite.

.venv/bin/pytest tests/flows/test_run_presentation.py -q
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import fast_params, make_project, mlflow_client

pytestmark = pytest.mark.slow
NAME = "tfidf_logreg · support_tickets · C 10 · seed 13"


def _flow_run(flow_run_id: str) -> Any:
    from prefect.client.orchestration import get_client

    async def read() -> Any:
        async with get_client() as client:
            return await client.read_flow_run(flow_run_id)

    return asyncio.run(read())


def _log_lines(flow_run_id: str) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    async def read() -> Any:
        async with get_client() as client:
            flt = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
            return await client.read_logs(log_filter=flt)

    return [log.message for log in asyncio.run(read())]


def _artifacts(flow_run_id: str) -> dict[str, Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async def read() -> Any:
        async with get_client() as client:
            flt = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
            return await client.read_artifacts(artifact_filter=flt)

    return {a.key: a for a in asyncio.run(read())}


@pytest.fixture(scope="module")
def three_runs(prefect_api: str, tmp_path_factory: pytest.TempPathFactory):
    """A run that trains, an unchanged one that skips, and one with skipping off that reuses
    every cached stage."""
    from nlpflow.flows.training import training_flow

    root = make_project(
        tmp_path_factory.mktemp("presentation") / "weekly-tickets",
        fast_params(family="tfidf_logreg"),
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NLPFLOW_REGISTERED_MODEL", "presentation-classifier")
        for name in ("NLPFLOW_PROJECT_DIR", "NLPFLOW_TRACKING_URI", "MLFLOW_TRACKING_URI"):
            mp.delenv(name, raising=False)
        states = [
            training_flow(project_dir=str(root), return_state=True),
            training_flow(project_dir=str(root), return_state=True),
            training_flow(
                project_dir=str(root), overrides=["schedule.skip_unchanged_data=false"],
                return_state=True,
            ),
        ]  # fmt: skip
    yield root, states


def test_runs_are_named_tagged_and_their_states_say_what_they_did(three_runs) -> None:
    _, states = three_runs
    trained, skipped, reused = (state.result() for state in states)
    assert [s.type.value for s in states] == ["COMPLETED"] * 3
    assert [s.name for s in states] == ["Completed", "Skipped", "Cached"]
    assert skipped["skipped"] and reused["outcome"] == "reused"
    for result in (trained, skipped, reused):
        flow_run = _flow_run(result["flow_run_id"])
        assert flow_run.name == NAME
        expected = {"project:weekly-tickets", "family:tfidf_logreg", "data:support_tickets"}
        assert expected <= set(flow_run.tags)
    artifacts = _artifacts(trained["flow_run_id"])
    gate = artifacts["nlpflow-gate"].data
    assert "promoted to champion" in gate and "| name | passed | applicable | reason |" in gate
    evaluate = artifacts["nlpflow-evaluate"].data
    assert f"| macro_f1 | {trained['evaluate']['metrics']['macro_f1']:.4g} |" in evaluate
    assert "{" not in evaluate  # tables, not Python dicts
    # training's own progress lines are in the flow run's log, beside Prefect's
    lines = _log_lines(trained["flow_run_id"])
    assert "training tfidf_logreg on 508 examples" in lines, lines
    assert any(line.startswith("trained in ") and "val macro_f1" in line for line in lines)


def test_mlflow_runs_compare_by_name_params_and_grouped_metrics(three_runs) -> None:
    root, states = three_runs
    trained, skipped, reused = (state.result() for state in states)
    client = mlflow_client(root)
    experiment = client.get_experiment(trained["experiment_id"])
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    run = client.get_run(trained["run_id"])
    assert run.info.run_name == NAME
    assert run.data.tags["nlpflow.run_kind"] == "trained"
    assert "mlflow.parentRunId" not in run.data.tags  # a top-level row of the table
    params = run.data.params
    assert params["train.tfidf.C"] == "10.0" and params["train.family"] == "tfidf_logreg"
    # nothing of the other families, nor the sections no stage reads
    assert not [k for k in params if k.startswith(("train.svm", "train.frozen", "train.spacy"))]
    assert "train.lr" not in params and "train.epochs" not in params
    assert not [k for k in params if k.startswith(("sweep.", "inference.", "schedule."))]
    metrics = run.data.metrics
    assert metrics["test/macro_f1"] == pytest.approx(trained["evaluate"]["metrics"]["macro_f1"])
    groups = {key.split("/")[0] for key in metrics}
    assert {"test", "val", "baseline", "behavioural", "data"} <= groups
    assert all("/" in key for key in metrics)  # every metric sits in a chart group
    # the skip and the reuse are folded under the run that trained the model
    for result, kind in ((skipped, "skipped"), (reused, "reused")):
        folded = client.get_run(result["run_id"])
        assert folded.info.run_name == f"{kind} · {NAME}"
        assert folded.data.tags["nlpflow.run_kind"] == kind
        assert folded.data.tags["mlflow.parentRunId"] == trained["run_id"]
        assert folded.data.tags["mlflow.note.content"]
        assert folded.info.status == "FINISHED"


def test_transformer_params_leave_out_the_baselines_tfidf_under_train(tiny_encoder: Path) -> None:
    import yaml

    from nlpflow.config.naming import logged_params, run_name
    from nlpflow.config.params import parse_params

    params = parse_params(yaml.safe_load(fast_params(pretrained=tiny_encoder)))
    logged = logged_params(params)
    assert run_name(params) == "transformer · support_tickets · lr 0.003 · seed 13"
    assert logged["train.lr"] == 0.003 and logged["baseline.tfidf.C"] == 10.0
    assert not [k for k in logged if k.startswith(("train.tfidf", "train.svm", "train.frozen"))]
