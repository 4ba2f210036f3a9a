"""Deployments that write the project run one flow run at a time, later ones queued: two
workers on shared storage never overlap (read back from the Prefect API of the test server)."""

from __future__ import annotations

import asyncio
import subprocess

from nlpflow.orchestration.deployments import FLOWS


def _read_deployment(name: str):
    from prefect.client.orchestration import get_client

    async def run():
        async with get_client() as client:
            return await client.read_deployment_by_name(name)

    return asyncio.run(run())


def test_training_and_sweep_deployments_queue_a_second_run(
    prefect_api: str, venv_env, tmp_path
) -> None:
    env = venv_env | {"PREFECT_API_URL": prefect_api, "NLPFLOW_PROJECT_DIR": str(tmp_path)}
    done = subprocess.run(["nlpflow", "deploy", "--name", "one-at-a-time", "--pool", "limits"],
                          capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    for spec in FLOWS.values():
        deployment = _read_deployment(f"{spec.flow_name}/one-at-a-time")
        if spec.key == "inference":  # reads the registry only
            assert deployment.global_concurrency_limit is None
            continue
        assert deployment.global_concurrency_limit is not None, spec.key
        assert deployment.global_concurrency_limit.limit == 1
        assert deployment.concurrency_options is not None
        assert deployment.concurrency_options.collision_strategy == "ENQUEUE"
