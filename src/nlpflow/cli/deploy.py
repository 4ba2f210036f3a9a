"""Scheduled runs: `nlpflow deploy` (work pool, deployments, the `gpu` limit) and `nlpflow worker`.

nlpflow deploy --cron "0 3 * * 1"
nlpflow worker --pool nlpflow-process
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from nlpflow.cli.common import ConfigOption, SetOption, console, load_project, out

PoolOption = Annotated[str, typer.Option("--pool", help="Prefect work pool.")]


def deploy(
    cron: Annotated[
        str | None,
        typer.Option(help="Cron, e.g. '0 3 * * 1' (default: params schedule.cron, training only)."),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Deployment name (default: scheduled-<flow>).")
    ] = None,
    timezone: Annotated[
        str | None, typer.Option(help="Time zone of the cron (default: params schedule.timezone).")
    ] = None,
    serve: Annotated[bool, typer.Option(help="Keep running and execute scheduled runs.")] = False,
    flow_name: Annotated[
        str | None, typer.Option("--flow", help="training|inference|sweep (default: all three).")
    ] = None,
    pool: PoolOption = "nlpflow-process",
    pool_type: Annotated[
        str | None,
        typer.Option(help="process|kubernetes, for a new pool (default: process)."),
    ] = None,
    base_job_template: Annotated[
        Path | None, typer.Option(help="JSON base job template of the pool (infra/k8s/...).")
    ] = None,
    gpu_slots: Annotated[
        int, typer.Option(min=1, help="Task runs tagged `gpu` (training on CUDA) at once.")
    ] = 1,
    set_: SetOption = None,
    config: ConfigOption = None,
) -> None:
    """Create the work pool, the deployments bound to it and the `gpu` concurrency limit.
    --set and --config apply to every scheduled run (`-c configs/topics.yaml`: topics weekly)."""
    from nlpflow.orchestration import deployments as d

    flows = d.choose_flows(flow_name)
    d.check_pool_type(pool_type)
    template = d.read_template(base_job_template) if base_job_template else None
    # the overrides and configs a scheduled run will apply must be valid now
    settings, loaded = load_project(set_, config)
    plan = d.DeployPlan(
        flows=flows, pool=pool, pool_type=pool_type, template=template, name=name,
        schedules=d.plan_schedules(flows, cron=cron, timezone=timezone,
                                   params_schedule=loaded.schedule),
        project_dir=settings.root, overrides=list(set_ or []), gpu_slots=gpu_slots,
        configs=[d.project_relative(path, settings.root) for path in config or []],
    )  # fmt: skip
    if serve:
        d.serve(plan)
        return
    d.check_api(d.api_url())
    report = d.apply_plan(plan)
    made = "created" if report.pool_created else "exists"
    out.print(f"work pool {report.pool} ({report.pool_type}) {made}; "
              f"`{d.GPU_TAG}` concurrency limit {report.gpu_slots}")  # fmt: skip
    for full_name, deployment_id, schedule in report.deployments:
        when = f"scheduled '{schedule[0]}' {schedule[1]}" if schedule else "no schedule"
        out.print(f"deployment {full_name} ({deployment_id}) {when}")
    out.print(f"Run them with: nlpflow worker --pool {report.pool}   "
              f"(now: prefect deployment run '{report.deployments[0][0]}')")  # fmt: skip


def worker(
    pool: PoolOption = "nlpflow-process",
    limit: Annotated[int | None, typer.Option(min=1, help="Flow runs at once.")] = None,
    type_: Annotated[
        str | None, typer.Option("--type", help="process|kubernetes (default: the pool's).")
    ] = None,
) -> None:
    """Start a Prefect worker for the pool (`prefect worker start`) in this environment."""
    import os

    from nlpflow.orchestration import deployments as d

    argv = d.worker_command(pool=pool, worker_type=type_, limit=limit)
    url = d.check_api(d.api_url())
    env = os.environ | {"PREFECT_API_URL": url}
    # Flow runs call `dvc` and `nlpflow`: this environment's bin comes first on their PATH.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    console.print(f"worker for pool {pool} on {url}; Ctrl-C stops it", markup=False)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(argv[0], argv, env)  # the worker replaces this process: signals reach it directly
