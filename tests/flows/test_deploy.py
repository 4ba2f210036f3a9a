"""`nlpflow deploy --cron` creates a scheduled deployment that the Prefect API reports."""

from __future__ import annotations

import asyncio
import subprocess

import pytest


def _read_deployment(name: str):
    from prefect.client.orchestration import get_client

    async def read():
        async with get_client() as client:
            return await client.read_deployment_by_name(name)

    return asyncio.run(read())


def test_deploy_creates_a_cron_schedule(prefect_api: str, venv_env, tmp_path) -> None:
    env = venv_env | {"PREFECT_API_URL": prefect_api, "NLPFLOW_PROJECT_DIR": str(tmp_path)}
    done = subprocess.run(
        ["nlpflow", "deploy", "--cron", "0 3 * * 1", "--name", "weekly", "--timezone", "Europe/Paris"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    deployment = _read_deployment("nlpflow-training/weekly")
    assert deployment.parameters == {"project_dir": str(tmp_path)}
    [schedule] = deployment.schedules
    assert schedule.active is True
    assert schedule.schedule.cron == "0 3 * * 1"
    assert schedule.schedule.timezone == "Europe/Paris"


def test_deploy_rejects_a_bad_cron(prefect_api: str, venv_env) -> None:
    env = venv_env | {"PREFECT_API_URL": prefect_api}
    done = subprocess.run(["nlpflow", "deploy", "--cron", "every monday"],
                          capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert done.returncode == 2
    assert "not a valid cron expression" in done.stderr
    from prefect.exceptions import ObjectNotFound

    with pytest.raises(ObjectNotFound):
        _read_deployment("nlpflow-training/scheduled-training")
