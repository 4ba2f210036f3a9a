"""infra/k8s's multi-node training templates: the values that must agree, across pods and with
nlpflow's params and settings, do (replicas and nnodes, GPUs and nproc_per_node, the rendezvous
port and host, the checkpoint folder and the shared volume). No cluster here: read as YAML.

    .venv/bin/python -m pytest tests/unit/test_k8s_training.py -q
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from nlpflow.config.params import Params, load_params
from nlpflow.config.settings import Settings

K8S = Path(__file__).resolve().parents[2] / "infra" / "k8s"
REPO = K8S.parents[1]
SETTING = re.compile(r"^(NLPFLOW|MLFLOW)_")


def documents(name: str) -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in yaml.safe_load_all((K8S / name).read_text())}


def the_container(pod: dict[str, Any]) -> dict[str, Any]:
    (container,) = pod["spec"]["containers"]  # one: the node's nlpflow
    return container


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container["env"]}


def shared_mount(pod: dict[str, Any]) -> str:
    """Where the pod mounts the ReadWriteMany claim of shared-pvc.yaml."""
    claim = documents("shared-pvc.yaml")["PersistentVolumeClaim"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]  # nodes on several machines write
    name = claim["metadata"]["name"]
    (volume,) = [v["name"] for v in pod["spec"]["volumes"]
                 if v.get("persistentVolumeClaim", {}).get("claimName") == name]  # fmt: skip
    (path,) = [m["mountPath"] for m in the_container(pod)["volumeMounts"] if m["name"] == volume]
    return str(path)


def pipeline_params(command: list[str]) -> Params:
    """The params the lead's `nlpflow run --set ...` trains with: the repository's params.yaml
    and the command's overrides, validated as nlpflow validates them."""
    assert command[:2] == ["nlpflow", "run"], command
    overrides = [command[i + 1] for i, arg in enumerate(command) if arg == "--set"]
    return load_params(REPO / "params.yaml", overrides)


def settings_of(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()  # a wrong value fails here, as it would in the pod


def check_node(
    pod: dict[str, Any], params: Params, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """What every node's pod must have: GPUs for its processes, the shared folder mounted
    where NLPFLOW_CHECKPOINT_DIR points, settings nlpflow accepts. Its settings, returned."""
    container = the_container(pod)
    gpus = container["resources"]["limits"]["nvidia.com/gpu"]
    assert gpus == container["resources"]["requests"]["nvidia.com/gpu"]
    assert gpus == params.train.distributed.nproc_per_node  # one process per GPU
    env = env_of(container)
    settings = settings_of({k: v for k, v in env.items() if SETTING.match(k)}, monkeypatch)
    assert settings.checkpoint_dir is not None
    assert settings.checkpoint_dir.is_relative_to(shared_mount(pod))
    return env


def test_pytorchjob_replicas_gpus_port_and_shared_folder_agree(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job = documents("pytorchjob.yaml")["PyTorchJob"]
    assert job["apiVersion"] == "kubeflow.org/v1"
    replicas = job["spec"]["pytorchReplicaSpecs"]
    master, worker = replicas["Master"], replicas["Worker"]
    assert master["replicas"] == 1  # one lead: it logs to MLflow and writes the model
    assert {master["restartPolicy"], worker["restartPolicy"]} == {"OnFailure"}
    lead, other = the_container(master["template"]), the_container(worker["template"])
    assert lead["name"] == other["name"] == "pytorch"  # the container the operator manages
    assert lead["image"] == other["image"]  # the same nlpflow on every node

    params = pipeline_params(lead["command"])
    assert master["replicas"] + worker["replicas"] == params.train.distributed.nnodes
    assert other["command"] == ["nlpflow", "train-node"]
    lead_env = check_node(master["template"], params, monkeypatch)
    other_env = check_node(worker["template"], params, monkeypatch)
    for name in ("NLPFLOW_RDZV_ENDPOINT", "NLPFLOW_RDZV_ID", "NLPFLOW_CHECKPOINT_DIR"):
        assert lead_env[name] == other_env[name], name  # where the nodes meet: one place

    # the operator makes a Service <job>-master-0 for the Master, with its `pytorchjob-port`
    host, _, port = lead_env["NLPFLOW_RDZV_ENDPOINT"].rpartition(":")
    assert host == f"{job['metadata']['name']}-master-0"
    (exposed,) = [p["containerPort"] for p in lead["ports"] if p["name"] == "pytorchjob-port"]
    assert int(port) == exposed
    assert lead_env["NLPFLOW_TRACKING_URI"].startswith("http")  # the lead logs to MLflow


def test_indexed_job_pods_service_port_and_shared_folder_agree(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    docs = documents("indexed-job.yaml")
    job, service = docs["Job"], docs["Service"]
    spec, pod = job["spec"], job["spec"]["template"]
    assert spec["completionMode"] == "Indexed"
    assert pod["spec"]["restartPolicy"] == "OnFailure"
    script = the_container(pod)["command"][-1]
    lead_command, other_command = re.fullmatch(
        r'if \[ "\$JOB_COMPLETION_INDEX" = 0 \]; then exec (.+); else exec (.+); fi', script
    ).groups()  # type: ignore[union-attr]
    params = pipeline_params(shlex.split(lead_command))
    assert shlex.split(other_command) == ["nlpflow", "train-node"]
    assert spec["completions"] == spec["parallelism"] == params.train.distributed.nnodes
    env = check_node(pod, params, monkeypatch)

    # pod 0 is <job>-0.<subdomain>: the headless Service of that name selects the Job's pods
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"] == {"job-name": job["metadata"]["name"]}
    host, _, port = env["NLPFLOW_RDZV_ENDPOINT"].rpartition(":")
    assert host == f"{job['metadata']['name']}-0.{pod['spec']['subdomain']}"
    assert pod["spec"]["subdomain"] == service["metadata"]["name"]
    assert [p["port"] for p in service["spec"]["ports"]] == [int(port)]
    assert [p["containerPort"] for p in the_container(pod)["ports"]] == [int(port)]


def test_both_templates_train_the_same_job_on_the_same_claim() -> None:
    """Switching from the operator to the Indexed Job (or back) changes nothing that the
    model or its checkpoints depend on."""
    operator = documents("pytorchjob.yaml")["PyTorchJob"]["spec"]["pytorchReplicaSpecs"]
    plain = documents("indexed-job.yaml")["Job"]["spec"]["template"]
    lead = the_container(operator["Master"]["template"])
    ours = the_container(plain)
    script = ours["command"][-1]
    assert shlex.join(lead["command"]) in script
    keep = ("NLPFLOW_RDZV_ID", "NLPFLOW_CHECKPOINT_DIR", "NLPFLOW_TRACKING_URI")
    assert {k: env_of(lead)[k] for k in keep} == {k: env_of(ours)[k] for k in keep}
    assert lead["image"] == ours["image"] and lead["resources"] == ours["resources"]
