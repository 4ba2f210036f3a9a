"""`nlpflow deploy` and `nlpflow worker` against a real Prefect server (the `prefect_api`
fixture): work pools, deployments, schedules, the `gpu` concurrency limit, and a deployment
run triggered through the API and executed by a real worker subprocess.

.venv/bin/pytest tests/flows/test_deploy.py -q
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time

import pytest
import yaml

from nlpflow.orchestration.deployments import DEFAULT_POOL, FLOWS, GPU_TAG, load_flow
from tests.conftest import REPO, fast_params, make_project, mlflow_client

K8S_TEMPLATE = REPO / "infra" / "k8s" / "base-job-template.json"
SET_WORKDIR = "prefect.deployments.steps.set_working_directory"


def _api(call):
    """Run `await call(client)` on a Prefect client of the test server."""
    from prefect.client.orchestration import get_client

    async def run():
        async with get_client() as client:
            return await call(client)

    return asyncio.run(run())


def _read_deployment(name: str):
    return _api(lambda client: client.read_deployment_by_name(name))


def _nlpflow(args: list[str], env: dict[str, str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["nlpflow", *args], capture_output=True, text=True, env=env,
                          timeout=180, **kwargs)  # fmt: skip


def test_deploy_creates_a_cron_schedule(prefect_api: str, venv_env, tmp_path) -> None:
    env = venv_env | {"PREFECT_API_URL": prefect_api, "NLPFLOW_PROJECT_DIR": str(tmp_path)}
    done = subprocess.run(
        ["nlpflow", "deploy", "--cron", "0 3 * * 1", "--name", "weekly", "--timezone", "Europe/Paris"],
        capture_output=True, text=True, env=env, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    deployment = _read_deployment("nlpflow-training/weekly")
    assert deployment.parameters == {"project_dir": str(tmp_path)}
    [schedule] = deployment.schedules
    assert schedule.active is True
    assert schedule.schedule.cron == "0 3 * * 1"
    assert schedule.schedule.timezone == "Europe/Paris"
    # Without --flow all three flows are deployed on the default process pool; the cron is
    # training's, the others run when triggered. Each starts in the project folder.
    for spec in FLOWS.values():
        deployment = _read_deployment(f"{spec.flow_name}/weekly")
        assert deployment.work_pool_name == DEFAULT_POOL
        assert deployment.pull_steps == [{SET_WORKDIR: {"directory": str(tmp_path)}}]
        assert deployment.entrypoint.endswith(spec.entrypoint)
        assert len(deployment.schedules) == (1 if spec.key == "training" else 0)
    pool = _api(lambda client: client.read_work_pool(DEFAULT_POOL))
    assert pool.type == "process"
    assert "{{ working_dir }}" in json.dumps(pool.base_job_template["job_configuration"])


def test_deploy_schedules_a_config_such_as_the_topic_model(
    prefect_api: str, venv_env, tmp_path
) -> None:
    """-c applies to every scheduled run, as a path the run finds from the project; a config
    that does not validate creates nothing."""
    env = venv_env | {"PREFECT_API_URL": prefect_api, "NLPFLOW_PROJECT_DIR": str(tmp_path)}
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "topics.yaml").write_text((REPO / "configs/topics.yaml").read_text())
    done = _nlpflow(["deploy", "--flow", "training", "--cron", "0 4 * * 1", "--name", "topics",
                     "-c", "configs/topics.yaml"], env, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    deployment = _read_deployment("nlpflow-training/topics")
    assert deployment.parameters == {
        "project_dir": str(tmp_path),
        "configs": ["configs/topics.yaml"],
    }
    (tmp_path / "configs" / "bad.yaml").write_text("task: topic-modeling\ntrain: {family: lda2}\n")
    done = _nlpflow(["deploy", "--flow", "training", "--name", "bad", "-c", "configs/bad.yaml"],
                    env, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 2 and "train.family" in done.stderr + done.stdout
    assert _api(lambda client: client.read_deployments()) and not [
        d for d in _api(lambda client: client.read_deployments()) if d.name == "bad"
    ]


def test_deploy_rejects_a_bad_cron(prefect_api: str, venv_env) -> None:
    env = venv_env | {"PREFECT_API_URL": prefect_api}
    done = subprocess.run(["nlpflow", "deploy", "--cron", "every monday", "--name", "bad-cron"],
                          capture_output=True, text=True, env=env, timeout=180)  # fmt: skip
    assert done.returncode == 2
    assert "not a valid cron expression" in done.stderr
    from prefect.exceptions import ObjectNotFound

    with pytest.raises(ObjectNotFound):
        _read_deployment("nlpflow-training/bad-cron")


def test_cron_from_params_and_the_gpu_limit(prefect_api: str, venv_env, tmp_path) -> None:
    tree = yaml.safe_load((REPO / "params.yaml").read_text())
    tree["schedule"].update({"cron": "30 2 * * *", "timezone": "Europe/Berlin"})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tree))
    env = venv_env | {"PREFECT_API_URL": prefect_api, "NLPFLOW_PROJECT_DIR": str(tmp_path)}
    args = ["deploy", "--flow", "training", "--name", "nightly", "--pool", "params-pool"]
    done = _nlpflow([*args, "--gpu-slots", "3"], env)
    assert done.returncode == 0, done.stderr
    assert "work pool params-pool (process) created; `gpu` concurrency limit 3" in done.stdout
    deployment = _read_deployment("nlpflow-training/nightly")
    assert deployment.work_pool_name == "params-pool"
    [schedule] = deployment.schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone) == ("30 2 * * *", "Europe/Berlin")
    limit = _api(lambda client: client.read_concurrency_limit_by_tag(GPU_TAG))
    assert limit.concurrency_limit == 3
    # Deploying again updates in place: the pool exists, the limit changes, --cron wins.
    done = _nlpflow([*args, "--gpu-slots", "2", "--cron", "0 4 * * *"], env)
    assert done.returncode == 0, done.stderr
    assert "work pool params-pool (process) exists" in done.stdout
    [schedule] = _read_deployment("nlpflow-training/nightly").schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone) == ("0 4 * * *", "Europe/Berlin")
    assert _api(lambda client: client.read_concurrency_limit_by_tag(GPU_TAG)).concurrency_limit == 2


def test_bad_pool_input_exits_2_and_creates_nothing(prefect_api: str, venv_env, tmp_path) -> None:
    env = venv_env | {"PREFECT_API_URL": prefect_api, "NLPFLOW_PROJECT_DIR": str(tmp_path)}
    base = ["deploy", "--flow", "training", "--name", "bad-pool", "--pool", "bad-pool"]
    cases = {
        ("--pool-type", "docker"): "--pool-type 'docker': choose one of process, kubernetes",
        ("--base-job-template", str(tmp_path / "nope.json")): "nope.json: no such file",
        ("--pool-type", "kubernetes"): "needs --base-job-template",
        ("--pool", DEFAULT_POOL, "--pool-type", "kubernetes", "--base-job-template",
         str(K8S_TEMPLATE)): f"work pool '{DEFAULT_POOL}' exists with type 'process'",
    }  # fmt: skip
    _nlpflow(["deploy", "--flow", "training", "--name", "setup"], env)  # the process pool exists
    for extra, message in cases.items():
        done = _nlpflow([*base, *extra], env)
        assert done.returncode == 2, (extra, done.stderr)
        assert message in " ".join(done.stderr.split()), (extra, done.stderr)
    from prefect.exceptions import ObjectNotFound

    with pytest.raises(ObjectNotFound):
        _api(lambda client: client.read_work_pool("bad-pool"))
    with pytest.raises(ObjectNotFound):
        _read_deployment("nlpflow-training/bad-pool")


def test_kubernetes_pool_from_the_gpu_template(prefect_api: str, venv_env, tmp_path) -> None:
    template = json.loads(K8S_TEMPLATE.read_text())
    variables = template["variables"]["properties"]
    [container] = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"][
        "containers"
    ]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "{{ gpu_count }}"
    assert variables["gpu_count"]["default"] == 1
    assert variables["tolerations"]["default"][0]["key"] == "nvidia.com/gpu"
    assert container["envFrom"] == [{"secretRef": {"name": "{{ env_secret }}"}}]
    env = venv_env | {"PREFECT_API_URL": prefect_api, "NLPFLOW_PROJECT_DIR": str(tmp_path)}
    done = _nlpflow(
        ["deploy", "--flow", "training", "--name", "gpu", "--pool", "nlpflow-k8s",
         "--pool-type", "kubernetes", "--base-job-template", str(K8S_TEMPLATE)], env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    pool = _api(lambda client: client.read_work_pool("nlpflow-k8s"))
    assert pool.type == "kubernetes" and pool.base_job_template == template
    deployment = _read_deployment("nlpflow-training/gpu")
    # the image holds code and project: relative entrypoint, no pull step, no local path
    assert deployment.work_pool_name == "nlpflow-k8s"
    assert deployment.entrypoint == "flows/training.py:training_flow"
    assert deployment.pull_steps == [] and deployment.parameters == {}
    # the server checks placeholders against variables: one undeclared is refused, clearly
    broken = json.loads(K8S_TEMPLATE.read_text())
    del broken["variables"]["properties"]["gpu_count"]
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    done = _nlpflow(["deploy", "--flow", "training", "--name", "gpu", "--pool", "nlpflow-k8s",
                     "--base-job-template", str(tmp_path / "broken.json")], env)  # fmt: skip
    assert done.returncode == 2 and "undeclared variable(s): gpu_count" in done.stderr
    assert _api(lambda client: client.read_work_pool("nlpflow-k8s")).base_job_template == template


def test_prefect_yaml_declares_what_nlpflow_deploy_creates() -> None:
    config = yaml.safe_load((REPO / "prefect.yaml").read_text())
    declared = {d["name"]: d for d in config["deployments"]}
    assert set(declared) == {spec.default_name for spec in FLOWS.values()}
    for spec in FLOWS.values():
        entry = declared[spec.default_name]
        assert entry["entrypoint"] == spec.entrypoint
        assert entry["work_pool"]["name"] == DEFAULT_POOL
        assert load_flow(spec)[0].name == spec.flow_name
    [pull] = config["pull"]
    assert pull[SET_WORKDIR]["directory"] == "{{ $NLPFLOW_PROJECT_DIR }}"


def test_worker_needs_a_reachable_api(venv_env, tmp_path) -> None:
    env = venv_env | {"PREFECT_HOME": str(tmp_path)}  # no profile with a URL in it
    env.pop("PREFECT_API_URL", None)
    done = _nlpflow(["worker"], env)
    assert done.returncode == 2 and "PREFECT_API_URL is not set" in done.stderr
    done = _nlpflow(["worker"], env | {"PREFECT_API_URL": "http://127.0.0.1:9/api"})
    assert done.returncode == 2 and "http://127.0.0.1:9/api does not answer" in done.stderr
    done = _nlpflow(["worker", "--type", "kubernetes"], env)
    assert done.returncode == 2 and "pip install 'prefect-kubernetes" in done.stderr


def test_a_deployment_run_completes_on_a_worker(prefect_api: str, venv_env, tmp_path) -> None:
    """No waiting for the clock: the run is created through the API, a worker runs it."""
    from prefect.deployments import run_deployment

    project = make_project(tmp_path / "project", fast_params(family="tfidf_logreg"))
    env = venv_env | {
        "PREFECT_API_URL": prefect_api, "NLPFLOW_PROJECT_DIR": str(project),
        "NLPFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}",
        "NLPFLOW_REGISTERED_MODEL": "deploy-test", "PREFECT_WORKER_QUERY_SECONDS": "1",
    }  # fmt: skip
    done = _nlpflow(["deploy", "--flow", "training", "--name", "e2e", "--pool", "e2e"], env)
    assert done.returncode == 0, done.stderr
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(["nlpflow", "worker", "--pool", "e2e", "--limit", "1"], env=env,
                              cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)  # fmt: skip
    try:
        started = time.monotonic()
        flow_run = run_deployment("nlpflow-training/e2e", timeout=600, poll_interval=2)
        seconds = time.monotonic() - started
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)
    output = (tmp_path / "worker.log").read_text()
    assert flow_run.state is not None and flow_run.state.is_completed(), output[-3000:]
    print(f"deployment run: {seconds:.1f} s from trigger to COMPLETED")
    [run] = mlflow_client(project).search_runs(
        [e.experiment_id for e in mlflow_client(project).search_experiments()],
        filter_string=f"tags.`prefect.flow_run_id` = '{flow_run.id}'",
    )
    assert run.info.status == "FINISHED"
    assert run.data.params["train.family"] == "tfidf_logreg"
    assert 0.5 < run.data.metrics["test/accuracy"] <= 1.0


def test_prefect_deploy_all_reads_prefect_yaml(prefect_api: str, venv_env, tmp_path) -> None:
    """Prefect's own CLI deploys the same file (here renamed, so no other test's deployment
    changes) once the pool exists."""
    from prefect.client.orchestration import get_client

    from nlpflow.orchestration.deployments import ensure_pool

    config = yaml.safe_load((REPO / "prefect.yaml").read_text())
    for entry in config["deployments"]:
        entry["name"] = f"yaml-{entry['name']}"
    (tmp_path / "prefect.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    with get_client(sync_client=True) as client:
        ensure_pool(client, name=DEFAULT_POOL, pool_type="process", template=None)
    env = venv_env | {"PREFECT_API_URL": prefect_api, "NLPFLOW_PROJECT_DIR": str(tmp_path)}
    done = subprocess.run(
        ["prefect", "--no-prompt", "deploy", "--all", "--prefect-file", str(tmp_path / "prefect.yaml")],
        cwd=REPO, capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    for spec in FLOWS.values():
        deployment = _read_deployment(f"{spec.flow_name}/yaml-{spec.default_name}")
        assert deployment.entrypoint == spec.entrypoint
        assert deployment.work_pool_name == DEFAULT_POOL
        assert deployment.parameters == {"project_dir": str(tmp_path)}
        assert deployment.pull_steps == [{SET_WORKDIR: {"directory": str(tmp_path)}}]


def test_a_checkouts_deployment_runs_that_checkouts_code(tmp_path) -> None:
    """A deployment made in one checkout of nlpflow must not run the code of the checkout the
    virtualenv's editable install points at: the entrypoint is the project's own flow file and
    the flow run's PYTHONPATH starts with the project's src/ (which holds nlpflow.tasks and
    nlpflow.flows too)."""
    from nlpflow.orchestration.deployments import DeployPlan, build_deployment

    checkout = tmp_path / "other-checkout"
    for part in ("flows", "src/nlpflow"):
        (checkout / part).mkdir(parents=True)
    (checkout / "flows" / "training.py").write_text("# this checkout's flow\n")
    (checkout / "src" / "nlpflow" / "__init__.py").write_text("")
    spec = FLOWS["training"]
    plan = DeployPlan(flows=[spec], pool=DEFAULT_POOL, pool_type="process", template=None,
                      schedules={}, name="x", project_dir=checkout)  # fmt: skip
    deployment = build_deployment(spec, plan, pool_type="process")
    assert deployment.entrypoint == "flows/training.py:training_flow"
    assert deployment.storage.to_pull_step()[SET_WORKDIR]["directory"] == str(checkout)
    paths = deployment.job_variables["env"]["PYTHONPATH"].split(os.pathsep)
    assert paths == [str(checkout.resolve() / "src")]
    # a user's project (no nlpflow sources of its own) runs the installed flow, unchanged env
    user = tmp_path / "user-project"
    user.mkdir()
    plan.project_dir = user
    deployment = build_deployment(spec, plan, pool_type="process")
    assert deployment.entrypoint.endswith("flows/training.py:training_flow")
    assert deployment.entrypoint.startswith(str(REPO))
    assert "env" not in (deployment.job_variables or {})
