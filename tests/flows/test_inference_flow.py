"""The inference flow on files (CSV in, Parquet out), version pinning, the `nlpflow infer` command
and `nlpflow deploy --flow inference`: real Prefect, a real MLflow registry (SQLite), real GX."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import uuid
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import mlflow_client
from tests.integration.test_batch_inference import (
    BLANK,
    GOOD,
    LONG,
    Registered,
    register_model,
    served_predictions,
)


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Registered:
    root = tmp_path / "project"
    root.mkdir()
    reg = register_model(root, f"infer-{uuid.uuid4().hex[:6]}")
    monkeypatch.setenv("NLPFLOW_PROJECT_DIR", str(root))
    monkeypatch.setenv("NLPFLOW_TRACKING_URI", reg.tracking_uri)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("NLPFLOW_ARTIFACT_ROOT", raising=False)
    monkeypatch.setenv("NLPFLOW_REGISTERED_MODEL", reg.name)
    return reg


def _write_input(root: Path) -> Path:
    """A CSV without an id column: rows 2 (blank) and 5 (too long) are bad."""
    source = root / "incoming" / "tickets.csv"
    source.parent.mkdir(parents=True)
    texts = [GOOD[0], GOOD[1], BLANK, GOOD[2], GOOD[3], LONG, GOOD[4]]
    pd.DataFrame({"message": texts, "channel": ["mail"] * len(texts)}).to_csv(source, index=False)
    return source


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_file_source_to_parquet(prefect_api: str, registered: Registered) -> None:
    from nlpflow.flows.inference import inference_flow

    source = _write_input(registered.root)
    before = _digest(source)
    result = inference_flow(
        overrides=[
            "inference.source=incoming/tickets.csv",  # relative: the data root (the project)
            "inference.text_column=message", "inference.output=scored/tickets.parquet",
            "inference.batch_size=2",
        ]
    )  # fmt: skip
    out = registered.root / "scored" / "tickets.parquet"
    predictions = pd.read_parquet(out)
    assert predictions["row"].tolist() == [0, 1, 3, 4, 6]  # the join key without an id column
    expected = served_predictions(registered, [GOOD[0], GOOD[1], GOOD[2], GOOD[3], GOOD[4]])
    proba = [c for c in expected.columns if c.startswith("proba_")]
    pd.testing.assert_frame_equal(
        predictions[["label", "score", *proba]], expected[["label", "score", *proba]]
    )
    assert list(predictions.columns) == [
        "row", "label", "score", *proba, "model_name", "model_version", "scored_at", "run_id",
    ]  # fmt: skip
    assert set(predictions["model_version"]) == {registered.version}
    assert str(predictions["scored_at"].dtype) == "datetime64[us, UTC]"
    assert predictions["scored_at"].nunique() == 1
    rejected = pd.read_parquet(registered.root / "scored" / "tickets.rejected.parquet")
    assert rejected["row"].tolist() == [2, 5]
    assert rejected["message"].tolist() == [BLANK, LONG]
    assert rejected["checks"].tolist() == ["text_not_blank", "text_length"]
    assert _digest(source) == before  # the input file is untouched
    assert (result["rows_read"], result["rows_valid"], result["rows_scored"]) == (7, 5, 5)
    assert result["rejected_by_check"] == {"text_not_blank": 1, "text_length": 1}
    assert result["output"] == str(out)
    # the counts as the Prefect UI shows them, for this flow run
    from prefect.artifacts import Artifact

    artifact = Artifact.get("nlpflow-inference")
    assert artifact is not None
    run = mlflow_client(registered.root).get_run(result["run_id"])
    assert str(artifact.flow_run_id) == run.data.tags["prefect.flow_run_id"]
    assert "| rows read | 7 |" in artifact.data and "| rows scored | 5 |" in artifact.data
    assert "| text_length | 1 |" in artifact.data


def test_alias_is_resolved_once_and_that_version_scores(registered: Registered) -> None:
    """The alias moving after resolution changes nothing: the run holds its version."""
    from nlpflow.config.settings import Settings
    from nlpflow.serving.batch import load_version
    from nlpflow.tracking.refs import resolve_model
    from nlpflow.tracking.tracker import Tracker

    tracker = Tracker(Settings(project_dir=registered.root, tracking_uri=registered.tracking_uri))
    ref = resolve_model(tracker, registered.name, alias="champion")
    # a second version with only two labels takes the alias while the run is under way
    second = register_model(registered.root, registered.name, labels=["billing", "shipping"])
    assert second.version == ref.version + 1
    model = load_version(tracker, ref, max_chars=5000, max_batch=256)
    scored = model.pyfunc.predict(pd.DataFrame({"text": GOOD}))
    assert len([c for c in scored.columns if c.startswith("proba_")]) > 2  # the first version
    assert model.max_chars == 300 and model.max_batch == 16  # its model_config, not params
    assert resolve_model(tracker, registered.name, alias="champion").version == second.version


def _nlpflow(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["nlpflow", *args], capture_output=True, text=True, env=env, timeout=300)


def test_infer_command_exits_non_zero_on_bad_rows_and_writes_nothing(
    prefect_api: str, registered: Registered, venv_env: dict[str, str]
) -> None:
    source = _write_input(registered.root)
    before = _digest(source)
    env = venv_env | {
        "PREFECT_API_URL": prefect_api, "NLPFLOW_PROJECT_DIR": str(registered.root),
        "NLPFLOW_TRACKING_URI": registered.tracking_uri,
        "NLPFLOW_REGISTERED_MODEL": registered.name,
    }  # fmt: skip
    common = ["--set", f"inference.source={source}", "--set", "inference.text_column=message"]
    done = _nlpflow(
        [
            "infer",
            *common,
            "--set",
            "inference.output=out.csv",
            "--set",
            "inference.on_invalid=fail",
        ],
        env,
    )
    assert done.returncode == 3, done.stderr
    assert "[NLP003] input validation failed: 2 of 7 rows break 2 check(s)" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (registered.root / "out.csv").exists()
    assert not (registered.root / "out.rejected.csv").exists()
    assert _digest(source) == before
    # writing over the input is refused before anything runs
    done = _nlpflow(["infer", *common, "--set", f"inference.output={source}"], env)
    assert done.returncode == 2 and "the input file itself" in done.stderr
    assert _digest(source) == before
    # and the happy path prints the counts
    done = _nlpflow(["infer", *common, "--set", "inference.output=out.jsonl"], env)
    assert done.returncode == 0, done.stderr
    assert f"Scored 5 of 7 rows with {registered.name} version 1 (champion)" in done.stdout
    lines = pd.read_json(registered.root / "out.jsonl", lines=True)
    assert lines["row"].tolist() == [0, 1, 3, 4, 6] and set(lines["model_version"]) == {1}


def _read_deployment(name: str):
    from prefect.client.orchestration import get_client

    async def read():
        async with get_client() as client:
            return await client.read_deployment_by_name(name)

    return asyncio.run(read())


def test_deploy_the_inference_flow(prefect_api: str, venv_env, tmp_path) -> None:
    env = venv_env | {"PREFECT_API_URL": prefect_api, "NLPFLOW_PROJECT_DIR": str(tmp_path)}
    overrides = ["inference.source=new/tickets.csv", "inference.output=scored/tickets.parquet"]
    done = _nlpflow(
        ["deploy", "--flow", "inference", "--cron", "15 * * * *",
         "--set", overrides[0], "--set", overrides[1]],
        env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "nlpflow-inference/scheduled-inference" in done.stdout
    deployment = _read_deployment("nlpflow-inference/scheduled-inference")
    assert deployment.parameters == {"project_dir": str(tmp_path), "overrides": overrides}
    assert deployment.entrypoint.endswith("flows/inference.py:inference_flow")
    [schedule] = deployment.schedules
    assert schedule.active is True
    assert schedule.schedule.cron == "15 * * * *" and schedule.schedule.timezone == "UTC"
    # an unknown flow, and overrides a scheduled run would choke on, fail now
    done = _nlpflow(["deploy", "--flow", "scoring", "--cron", "15 * * * *"], env)
    assert done.returncode == 2 and "choose one of training, inference" in done.stderr
    done = _nlpflow(
        ["deploy", "--flow", "inference", "--cron", "15 * * * *", "--name", "bad",
         "--set", "inference.on_invalid=ignore"],
        env,
    )  # fmt: skip
    assert done.returncode == 2 and "inference.on_invalid" in done.stderr
    from prefect.exceptions import ObjectNotFound

    with pytest.raises(ObjectNotFound):
        _read_deployment("nlpflow-inference/bad")
