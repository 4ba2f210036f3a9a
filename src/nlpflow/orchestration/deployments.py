"""Deployments of nlpflow's flows on a Prefect work pool: what `nlpflow deploy` creates.

export PREFECT_API_URL=http://127.0.0.1:4200/api
nlpflow deploy                         # pool nlpflow-process, 3 deployments, `gpu` limit of 1
nlpflow deploy --flow training --cron "0 3 * * 1" --gpu-slots 2
nlpflow deploy --pool nlpflow-k8s --pool-type kubernetes \
    --base-job-template infra/k8s/base-job-template.json
nlpflow worker                         # runs what the pool's deployments schedule

prefect.yaml at the repository root declares the same deployments (a test keeps them equal);
this module is the product path because it also reads the cron from params.yaml, creates the
pool and the `gpu` concurrency limit. Prefect is imported inside functions (`nlpflow --help`
stays fast).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nlpflow.errors import DeployError as DeployError  # defined with its code in errors.py

DEFAULT_POOL = "nlpflow-process"
POOL_TYPES = ("process", "kubernetes")
GPU_TAG = "gpu"  # the train task carries it when it trains on CUDA


@dataclass(frozen=True)
class FlowSpec:
    """One deployable flow: its Prefect flow name and where its function lives."""

    key: str
    flow_name: str
    entrypoint: str  # relative to the code root, as in prefect.yaml
    description: str
    # whether its runs write the project (data/, models/, dvc.lock, the registry): then one
    # flow run of the deployment at a time, the next ones queued (deployment_concurrency)
    writes_project: bool = True

    @property
    def default_name(self) -> str:
        return f"scheduled-{self.key}"


FLOWS = {
    spec.key: spec
    for spec in (
        FlowSpec("training", "nlpflow-training", "flows/training.py:training_flow",
                 "nlpflow training: gather, validate, preprocess, train, evaluate, register."),
        FlowSpec("inference", "nlpflow-inference", "flows/inference.py:inference_flow",
                 "nlpflow batch inference: score params `inference.source` with the champion.",
                 writes_project=False),
        FlowSpec("sweep", "nlpflow-sweep", "flows/sweep.py:sweep_flow",
                 "nlpflow sweep: an Optuna study over params `sweep`, trials as nested runs."),
    )
}  # fmt: skip


def project_relative(path: Path, root: Path) -> str:
    """A params file as a scheduled run finds it: relative to the project (the working
    directory of a process pool's runs, and of the image's), absolute when outside it."""
    resolved = path.resolve()
    try:
        return str(resolved.relative_to(root.resolve()))
    except ValueError:
        return str(resolved)


@dataclass
class DeployPlan:
    """Everything `nlpflow deploy` will create, checked before the API is called."""

    flows: list[FlowSpec]
    pool: str
    pool_type: str | None  # None: the existing pool's type, else process
    template: dict[str, Any] | None
    schedules: dict[str, tuple[str, str] | None]  # flow key -> (cron, timezone) or none
    name: str | None
    project_dir: Path
    overrides: list[str] = field(default_factory=list)
    gpu_slots: int = 1
    # params files merged over params.yaml on every scheduled run (relative to the project)
    configs: list[str] = field(default_factory=list)


@dataclass
class DeployReport:
    pool: str
    pool_type: str
    pool_created: bool
    deployments: list[tuple[str, str, tuple[str, str] | None]]  # full name, id, schedule
    gpu_slots: int


def choose_flows(flow: str | None) -> list[FlowSpec]:
    if flow is None:
        return list(FLOWS.values())
    if flow not in FLOWS:
        raise DeployError(f"--flow {flow!r}: choose one of {', '.join(FLOWS)}.")
    return [FLOWS[flow]]


def check_cron(cron: str, timezone: str, *, given: str = "--cron") -> tuple[str, str]:
    """The schedule as Prefect reads it (params leave schedule.cron to this check)."""
    from prefect.schedules import Cron

    try:
        Cron(cron, timezone=timezone)
    except ValueError as exc:
        raise DeployError(
            f"{given} {cron!r} (time zone {timezone!r}) is not a valid cron expression: {exc}. "
            "Give five fields, e.g. '0 3 * * 1' (Mondays 03:00)."
        ) from None
    return cron, timezone


def plan_schedules(
    flows: list[FlowSpec], *, cron: str | None, timezone: str | None, params_schedule: Any
) -> dict[str, tuple[str, str] | None]:
    """--cron schedules the flow chosen with --flow, or training when all are deployed;
    without it training takes params `schedule.cron`. Other flows run when triggered."""
    target = flows[0].key if len(flows) == 1 else "training"
    zone = timezone or params_schedule.timezone
    schedules: dict[str, tuple[str, str] | None] = {spec.key: None for spec in flows}
    if target not in schedules:
        return schedules
    if cron is not None:
        schedules[target] = check_cron(cron, zone)
    elif target == "training" and params_schedule.cron:
        schedules[target] = check_cron(params_schedule.cron, zone, given="schedule.cron")
    return schedules


def read_template(path: Path) -> dict[str, Any]:
    """A base job template file: JSON with `job_configuration` and `variables`."""
    if not path.is_file():
        raise DeployError(
            f"--base-job-template {path}: no such file (the GPU Kubernetes template is "
            "infra/k8s/base-job-template.json)."
        )
    try:
        template = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DeployError(f"--base-job-template {path} is not valid JSON: {exc}") from None
    if not isinstance(template, dict) or not {"job_configuration", "variables"} <= set(template):
        raise DeployError(
            f"--base-job-template {path} must be a JSON object with `job_configuration` and "
            "`variables` (see `prefect work-pool get-default-base-job-template --type process`)."
        )
    return template


def check_pool_type(pool_type: str | None) -> str | None:
    if pool_type is not None and pool_type not in POOL_TYPES:
        raise DeployError(f"--pool-type {pool_type!r}: choose one of {', '.join(POOL_TYPES)}.")
    return pool_type


def check_api(url: str | None) -> str:
    """The Prefect API URL, answering /health; a clear error otherwise."""
    import httpx

    if not url:
        raise DeployError(
            "PREFECT_API_URL is not set: start a server (`prefect server start`) and "
            "`export PREFECT_API_URL=http://127.0.0.1:4200/api`."
        )
    try:
        httpx.get(f"{url.rstrip('/')}/health", timeout=10).raise_for_status()
    except httpx.HTTPError as exc:
        raise DeployError(
            f"the Prefect API at PREFECT_API_URL={url} does not answer ({exc}); start it with "
            "`prefect server start` or fix the URL."
        ) from None
    return url


def api_url() -> str | None:
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or os.environ.get("PREFECT_API_URL")


def apply_plan(plan: DeployPlan) -> DeployReport:
    """Create the pool (if missing), the `gpu` limit and each deployment, bound to the pool."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import PrefectHTTPStatusError

    with get_client(sync_client=True) as client:
        try:
            pool_type, created = ensure_pool(
                client, name=plan.pool, pool_type=plan.pool_type, template=plan.template
            )
            # Upserted: at most N task runs tagged `gpu` (training on CUDA) run at once.
            client.create_concurrency_limit(tag=GPU_TAG, concurrency_limit=plan.gpu_slots)
        except PrefectHTTPStatusError as exc:
            raise DeployError(f"the Prefect API refused work pool {plan.pool!r}: "
                              f"{_detail(exc)}") from None  # fmt: skip
    deployed = []
    for spec in plan.flows:
        deployment = build_deployment(spec, plan, pool_type=pool_type)
        deployed.append((deployment.full_name, str(_apply(deployment)), plan.schedules[spec.key]))
    return DeployReport(plan.pool, pool_type, created, deployed, plan.gpu_slots)


def ensure_pool(
    client: Any, *, name: str, pool_type: str | None, template: dict[str, Any] | None
) -> tuple[str, bool]:
    """The pool's type, and whether it was created now. An existing pool keeps its type; a
    template given for it replaces its base job template."""
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
    from prefect.exceptions import ObjectNotFound

    try:
        pool = client.read_work_pool(name)
    except ObjectNotFound:
        pool = None
    if pool is not None:
        if pool_type is not None and pool.type != pool_type:
            raise DeployError(
                f"work pool {name!r} exists with type {pool.type!r}, not {pool_type!r}: "
                f"choose another --pool, or delete it (`prefect work-pool delete {name}`)."
            )
        if template is not None:
            client.update_work_pool(name, WorkPoolUpdate(base_job_template=template))
        return pool.type, False
    kind = pool_type or "process"
    if template is None:
        if kind != "process":
            raise DeployError(
                f"a new {kind} work pool needs --base-job-template (for Kubernetes: "
                "infra/k8s/base-job-template.json, with the GPU request and the image)."
            )
        from prefect.workers.process import ProcessWorker

        template = ProcessWorker.get_default_base_job_template()
    client.create_work_pool(WorkPoolCreate(name=name, type=kind, base_job_template=template))
    return kind, True


def _detail(exc: Any) -> str:
    try:
        return str(exc.response.json().get("detail", exc))
    except ValueError:
        return str(exc)


def build_deployment(spec: FlowSpec, plan: DeployPlan, *, pool_type: str | None) -> Any:
    """A RunnerDeployment of `spec`; bound to the plan's pool unless pool_type is None (serve).

    A process pool runs the code of this checkout: its pull step sets the working directory
    to the project and the flow gets `project_dir`. Another pool (Kubernetes) runs the image,
    whose working directory holds the code and the project: relative entrypoint, no pull step.
    """
    from prefect.runner.storage import LocalStorage
    from prefect.schedules import Cron

    flow, source = load_flow(spec)
    local = pool_type in (None, "process")
    parameters: dict[str, Any] = {"project_dir": str(plan.project_dir)} if local else {}
    if plan.overrides:
        parameters["overrides"] = list(plan.overrides)
    if plan.configs:
        parameters["configs"] = list(plan.configs)
    schedule = plan.schedules.get(spec.key)
    deployment = flow.to_deployment(
        name=plan.name or spec.default_name,
        schedules=[Cron(schedule[0], timezone=schedule[1])] if schedule else [],
        parameters=parameters, description=spec.description, tags=["nlpflow"],
        concurrency_limit=deployment_concurrency(spec),
        **({"work_pool_name": plan.pool} if pool_type else {}),
    )  # fmt: skip
    if pool_type == "process":
        deployment.entrypoint = _local_entrypoint(source, spec, plan.project_dir)
        deployment.storage = LocalStorage(str(plan.project_dir))
        deployment.job_variables = project_code_env(plan.project_dir) | dict(
            deployment.job_variables or {}
        )
    elif pool_type:
        deployment.entrypoint = spec.entrypoint
    return deployment


def deployment_concurrency(spec: FlowSpec) -> Any:
    """One flow run at a time of a deployment that writes the project, later ones queued
    (ENQUEUE: they wait in Prefect, not fail): two workers sharing the project's storage
    never overlap, whichever machines they run on. On one machine the project lock
    (nlpflow.pipeline.locking) also keeps the deployments from overlapping with each other and with
    `nlpflow run` or `dvc repro`. Batch inference only reads the registry: no limit."""
    if not spec.writes_project:
        return None
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy

    return ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE)


def load_flow(spec: FlowSpec) -> tuple[Any, Path]:
    """The flow object of `spec` and the file it is defined in."""
    import importlib

    path, attr = spec.entrypoint.split(":")
    module_name = "nlpflow." + path.removesuffix(".py").replace("/", ".")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise DeployError(f"{path} is missing from this install: cannot deploy {spec.key}; "
                          f"choose another with --flow.") from None  # fmt: skip
    return getattr(module, attr), Path(str(module.__file__)).resolve()


def project_code_env(project_dir: Path) -> dict[str, Any]:
    """Job variables that make a checkout of nlpflow run its own code: its src/ first on the
    flow run's PYTHONPATH. Without it the worker imports nlpflow (its tasks and flows too)
    from wherever the virtualenv's editable install points (another checkout)."""
    root = project_dir.resolve()
    if not (root / "src" / "nlpflow" / "__init__.py").is_file():
        return {}  # a user's project: nlpflow is the installed package
    return {"env": {"PYTHONPATH": str(root / "src")}}


def _local_entrypoint(source: Path, spec: FlowSpec, project_dir: Path) -> str:
    """The project's own flow file when it has one (a checkout of nlpflow), relative to it;
    else the installed flow's file, absolute."""
    own = project_dir.resolve() / spec.entrypoint.split(":")[0]
    if own.is_file():
        return spec.entrypoint
    attr = spec.entrypoint.split(":")[1]
    try:
        return f"{source.relative_to(project_dir.resolve()).as_posix()}:{attr}"
    except ValueError:
        return f"{source}:{attr}"


def _apply(deployment: Any) -> Any:
    from prefect.deployments.runner import DeploymentApplyError

    try:
        return deployment.apply()
    except DeploymentApplyError as exc:
        raise DeployError(f"the Prefect API refused {deployment.full_name}: {exc}") from None


def serve(plan: DeployPlan) -> None:
    """Serve the plan's deployments in this process (Prefect's serve); no pool, no worker."""
    from prefect import serve as prefect_serve

    prefect_serve(*(build_deployment(spec, plan, pool_type=None) for spec in plan.flows))


def worker_command(*, pool: str, worker_type: str | None, limit: int | None) -> list[str]:
    """`prefect worker start` for the pool, run by this environment's Python."""
    import importlib.util
    import sys

    if worker_type is not None:
        check_pool_type(worker_type)
    if worker_type == "kubernetes" and importlib.util.find_spec("prefect_kubernetes") is None:
        raise DeployError(
            "a kubernetes worker needs the prefect-kubernetes package: "
            "`pip install 'prefect-kubernetes>=0.5'` (or run the worker in the cluster)."
        )
    argv = [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool]
    argv += ["--type", worker_type] if worker_type else []
    argv += ["--limit", str(limit)] if limit else []
    return [*argv, "--install-policy", "never"]  # offline machines: never pip install at start
