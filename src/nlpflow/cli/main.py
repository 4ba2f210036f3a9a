"""nlpflow's command line.

nlpflow run [--set train.epochs=1]     run the training flow (Prefect) once
nlpflow stage NAME                      run one stage (what dvc.yaml calls)
nlpflow deploy [--cron "0 3 * * 1"]     work pool + deployments (training, inference, sweep)
nlpflow worker [--pool nlpflow-process] run the deployments' flow runs (a Prefect worker)
nlpflow infer [--set inference.table=t] score a file or SQL table with the champion (Prefect)
nlpflow sweep [--set sweep.n_trials=8]  hyper-parameter sweep (Optuna, parallel trials)
nlpflow params [--set ...]              print the validated params
nlpflow serve [--model NAME@ALIAS]      serve a registered model over HTTP (MLflow scoring server)
nlpflow predict --text "..."            classify texts (or --input FILE) with a registered model
nlpflow registry history|promote|rollback  the promotion log; move the champion by hand
nlpflow lineage [NAME@ALIAS] [--json]   a registered version's run, commit, data hashes, params
nlpflow reproduce RUN_ID [--tolerance X] rebuild a run from its record; metric differences
nlpflow ui                              this project's MLflow and Prefect pages, until Ctrl-C
nlpflow doctor [--dry-run]              close runs killed processes left RUNNING; who holds the lock
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from nlpflow.config.settings import apply_environment_defaults, apply_prefect_home, load_settings
from nlpflow.errors import NlpflowError
from nlpflow.pipeline.stages import STAGE_NAMES

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.split("\n\n")[0])
console = Console(stderr=True)
out = Console(soft_wrap=True)  # commands and paths must stay copy-pasteable

SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override one param: dotted.key=value (repeatable)."),
]


ConfigOption = Annotated[
    list[Path] | None,
    typer.Option("--config", "-c", help="A params file merged over params.yaml (repeatable)."),
]


def _load(overrides: list[str] | None, configs: list[Path] | None = None) -> tuple[Any, Any]:
    from nlpflow.config.params import load_params

    settings = load_settings()
    return settings, load_params(settings.root / "params.yaml", overrides, configs)


@app.command()
def params(set_: SetOption = None, config: ConfigOption = None) -> None:
    """Validate params.yaml (plus configs and overrides) and print the result."""
    import yaml

    _, loaded = _load(set_, config)
    out.print(yaml.safe_dump(loaded.to_dict(), sort_keys=False), end="")


@app.command()
def stage(name: Annotated[str, typer.Argument(help="|".join(STAGE_NAMES))],
          set_: SetOption = None, config: ConfigOption = None) -> None:  # fmt: skip
    """Run one pipeline stage inside the pipeline's MLflow run (used by dvc.yaml)."""
    from nlpflow.pipeline.runs import make_context, run_cli_stage
    from nlpflow.pipeline.stages import get_stage

    tracked = get_stage(name).tracked  # unknown names fail before anything is opened
    settings, loaded = _load(set_, config)
    show_library_lines()
    report = run_cli_stage(name, make_context(settings.root, loaded, settings, tracked=tracked))
    from rich.markup import escape

    out.print(f"[green]✓[/green] {name}: {escape(_summary(report))}", highlight=False)


def show_library_lines() -> None:
    """The library's INFO lines (training progress: nlpflow.training.progress) on stderr. The library
    adds no handler, and `nlpflow stage` (what dvc repro runs) has no Prefect to show them."""
    from nlpflow.training.progress import show_info_lines

    logger = show_info_lines()
    if not logger.hasHandlers():  # one that shows them already (the root's) would duplicate
        handler = logging.StreamHandler()  # stderr: stdout holds the stage's result line
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)


def _summary(report: Any) -> str:
    """A stage's report in one line for people (`dvc repro` prints one per stage): a few chosen
    fields per report type; a report type not listed shows its first plain fields."""
    fields = report.model_dump(mode="json")
    pick = _SUMMARIES.get(type(report).__name__)
    if pick is None:
        plain = [(k, v) for k, v in fields.items() if isinstance(v, str | int | float)]
        return ", ".join(f"{k} {v}" for k, v in plain[:4])
    return ", ".join(part for part in pick(fields) if part)


def _score(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _best(history: list[dict[str, float]], key: str) -> float | None:
    """The best epoch's score: the epoch whose weights the model keeps."""
    return max((row[key] for row in history if key in row), default=None)


def _counts(counts: dict[str, int]) -> str:
    return f"{sum(counts.values())} ({', '.join(f'{k} {v}' for k, v in counts.items())})"


_SUMMARIES: dict[str, Any] = {  # report type -> fields -> the parts of its line
    "GatherReport": lambda r: [f"rows {_counts(r['rows'])}", f"{len(r['labels'])} labels"],
    "ValidationReport": lambda r: [
        f"{sum(c['success'] for c in r['checks'])}/{len(r['checks'])} checks passed",
        f"{r.get('quarantined_rows') or sum(r['quarantined'].values())} rows quarantined"
        if r["quarantined"]
        else "",
        f"{r['seconds']:.1f} s",
    ],
    "PreprocessReport": lambda r: [
        f"{sum(r['rows'].values())} texts",
        "from cache" if r["cached"] else f"{r['texts_per_second']:.0f} texts/s",
        f"{r['seconds']:.1f} s",
    ],
    "TrainReport": lambda r: [
        r["family"],
        f"{r['epochs']} epoch{'s' * (r['epochs'] != 1)}",
        f"resumed from {Path(r['resumed_from']).name}" if r["resumed_from"] else "",
        f"val macro_f1 {_score(_best(r['history'], 'val_macro_f1'))}",
        f"{r['seconds']:.1f} s",
    ],
    "EvaluateReport": lambda r: [
        f"test {r['main_metric']} {_score(r['metrics'].get(r['main_metric']))}"
        + (f" [{_score(r['ci']['low'])}, {_score(r['ci']['high'])}]" if r["ci"] else ""),
        f"baseline {_score(r['baseline'].get(r['main_metric']))}" if r["baseline"] else "",
        f"behavioural {r['behavioural']['pass_rate']:.0%}"
        if r["behavioural"].get("pass_rate") is not None
        else "",
    ],
    "RegistrationReport": lambda r: [
        f"{r['model_name']} v{r['version']} ({', '.join(r['aliases']) or 'no alias'})"
        if r["version"] is not None
        else f"{r['model_name']} not registered ({r.get('not_registered')})",
        f"{r['metric']} {_score(r['score'])}",
        ("promoted: " if r["promoted"] else "not promoted: ") + r["reasons"],
    ],
}


WaitOption = Annotated[
    bool | None,
    typer.Option(
        "--wait/--no-wait",
        help="When another run holds this project (.nlpflow/run.lock): wait for it, saying "
        "whom for, or refuse naming it (default: NLPFLOW_LOCK, else wait; NLPFLOW_LOCK_TIMEOUT "
        "caps the wait in seconds).",
    ),
]


def _choose_lock_mode(wait: bool | None) -> None:
    """--wait/--no-wait for this command's flow: the flow reads settings from the environment
    (as a worker's flow run does), so the choice travels there."""
    import os

    if wait is not None:
        os.environ["NLPFLOW_LOCK"] = "wait" if wait else "fail"


@app.command()
def run(
    set_: SetOption = None,
    config: ConfigOption = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Run every stage again: no cached results, no skip on unchanged data."
        ),
    ] = False,
    wait: WaitOption = None,
) -> None:
    """Run the training flow once, with Prefect (no server needed), MLflow and DVC."""
    from nlpflow.flows.training import training_flow

    _choose_lock_mode(wait)
    settings, result = _run_flow(training_flow, set_, config, force=force)
    if result["skipped"]:
        out.print(f"[bold]Skipped[/bold]: {result['skipped']}")
        out.print(f"  MLflow run {result['run_id']} (tag nlpflow.run_kind=skipped)")
    else:
        _print_summary(result, settings)
    _print_links(result, settings)


def _run_flow(
    flow: Any, set_: list[str] | None, config: list[Path] | None, **parameters: Any
) -> tuple[Any, Any]:
    """Validate params before Prefect starts, then run `flow` once on this project."""
    from nlpflow.orchestration.prefect_server import start_prefect_server_in_own_session

    settings, _ = _load(set_, config)
    _quiet_user_error_tracebacks()
    start_prefect_server_in_own_session()  # a Ctrl-C to the terminal's group must spare it
    return settings, flow(
        overrides=set_ or None,
        project_dir=str(settings.root),
        configs=[str(c.resolve()) for c in config] if config else None,
        **parameters,
    )


class _DropUserErrors(logging.Filter):
    """Keep tracebacks of user errors (bad data, bad params) off the console.

    Prefect logs a failed task with its traceback; for an NlpflowError the message alone says
    what to fix, and main() prints it. The record still reaches the Prefect API (and UI).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, NlpflowError)


class _NoDiskFullTraceback(logging.Filter):
    """MLflow's SQL store logs a failed write with its traceback before raising; for a full
    disk the one-line message (and nlpflow's DiskFullError after it) says all there is."""

    def filter(self, record: logging.LogRecord) -> bool:
        from nlpflow.errors import disk_full

        error = record.exc_info[1] if record.exc_info else None
        if error is not None and disk_full(error, doing="") is not None:
            record.exc_info, record.exc_text = None, None
        return True


def _quiet_user_error_tracebacks() -> None:
    for handler in logging.getLogger().handlers:
        if type(handler).__name__ == "PrefectConsoleHandler":
            handler.addFilter(_DropUserErrors())
    logging.getLogger("mlflow.store.db.utils").addFilter(_NoDiskFullTraceback())


def _print_summary(result: dict[str, Any], settings: Any) -> None:
    metrics = result["evaluate"]["metrics"]
    reg = result["register"]
    out.print("\n[bold]Test metrics[/bold]")
    for key in ("accuracy", "macro_precision", "macro_recall", "macro_f1"):
        out.print(f"  {key:16} {metrics[key]:.4f}")
    ci = metrics.get("ci") or {}
    if "low" in ci:
        out.print(f"  {ci['metric']} {ci['level']:.0%} CI {ci['low']:.4f} to {ci['high']:.4f}")
    aliases = ", ".join(reg["aliases"])
    if reg.get("version") is None:  # a DVC experiment's run (register.experiments: log)
        out.print(f"\n[bold]Not registered[/bold]: {reg.get('not_registered') or ''}")
    else:
        out.print(
            f"\n[bold]Registered[/bold] {reg['model_name']} version {reg['version']} ({aliases})"
        )
    if not reg["promoted"]:
        champion = reg["previous_champion"]
        out.print(f"  champion stays {f'version {champion}' if champion else 'unset'}")
    out.print(f"  gate: {reg['reasons']}")
    out.print("  model card: reports/model_card.md")
    if result["cached"]:
        out.print(f"  reused from cache: {', '.join(result['cached'])}")
    if not result["dvc_lock_updated"]:
        out.print("  dvc.lock left unchanged (--set/--config used, or not a DVC project)")
    out.print(f"  load it: mlflow.pyfunc.load_model('models:/{reg['model_name']}@champion')")


def _print_links(result: dict[str, Any], settings: Any) -> None:
    """Where to look: the MLflow run's and the Prefect flow run's pages when their servers
    answer; else the one command that serves both for this project (nlpflow ui)."""
    from nlpflow.tracking.links import experiment_page_url, mlflow_run_url, prefect_flow_run_url

    uri, experiment = settings.resolved_tracking_uri, result.get("experiment_id")
    mlflow = mlflow_run_url(uri, experiment, result["run_id"])
    prefect = prefect_flow_run_url(result.get("flow_run_id"))
    out.print("\n[bold]Look at it[/bold]")
    out.print(f"  MLflow run:       {mlflow or result['run_id']}", highlight=False)
    if mlflow is not None:  # the runs table side by side, in model-training mode
        out.print(f"  MLflow runs:      {experiment_page_url(uri, experiment)}", highlight=False)
    out.print(f"  Prefect flow run: {prefect or result.get('flow_run_id')}", highlight=False)
    if mlflow is None or prefect is None:
        out.print("  nlpflow ui        serves this project's MLflow and Prefect pages")


@app.command()
def doctor(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only report: change nothing.")
    ] = False,
) -> None:
    """Find what killed runs left behind and repair what is safe: close this project's MLflow
    runs whose process is gone as KILLED (reason in tag nlpflow.closed_reason), drop stale
    markers. Reports the lock's holder, live runs and other hosts' runs, never touching them."""
    from rich.markup import escape

    from nlpflow.pipeline.doctor import diagnose

    found = diagnose(load_settings(), repair=not dry_run)
    out.print(f"[bold]nlpflow doctor[/bold] {escape(found.project)}")
    for item in found.findings:
        mark = "fixed" if item.repaired else item.state
        out.print(f"  {item.what:7} {mark:10} {escape(item.detail)}", highlight=False)
    if dry_run and found.needs_repair:
        out.print("  run `nlpflow doctor` (without --dry-run) to repair")


@app.command()
def infer(set_: SetOption = None, config: ConfigOption = None) -> None:
    """Score a file or SQL table (params `inference`) with the registered model, with Prefect."""
    from nlpflow.flows.inference import inference_flow

    _, report = _run_flow(inference_flow, set_, config)
    out.print(
        f"[bold]Scored[/bold] {report['rows_scored']} of {report['rows_read']} rows with "
        f"{report['model_name']} version {report['model_version']} ({report['model_alias']})"
    )
    out.print(f"  predictions: {report['output']}")
    if report["rows_rejected"]:
        checks = ", ".join(f"{k} {v}" for k, v in report["rejected_by_check"].items())
        out.print(
            f"  rejected {report['rows_rejected']} rows ({checks}): {report['rejected_output']}"
        )
    out.print(f"  labels: {json.dumps(report['labels'])}")
    out.print(f"  MLflow run {report['run_id']}")


@app.command()
def sweep(set_: SetOption = None, config: ConfigOption = None) -> None:
    """Sweep train params (params `sweep`): parallel Optuna trials, nested MLflow runs."""
    from nlpflow.flows.sweep import sweep_flow
    from nlpflow.training.sweep import check_sweep

    settings, loaded = _load(set_, config)
    check_sweep(loaded, settings.root)  # before Prefect starts
    _, report = _run_flow(sweep_flow, set_, config)
    states = [t["state"] for t in report["trials"]]
    counts = ", ".join(f"{states.count(s)} {s.lower()}" for s in ("COMPLETE", "PRUNED"))
    out.print(f"[bold]Sweep[/bold] {report['study']}: {len(states)} trials ({counts})")
    out.print(f"  best trial {report['best_trial']}: {report['metric']} {report['best_value']:.4f}")
    for name, value in report["best_params"].items():
        out.print(f"    {name} = {value}")
    out.print(f"  best params: {report['output']}")
    out.print(f"  train with them: nlpflow run --config {report['output']}")
    out.print(f"  MLflow run {report['run_id']} (trials nested under it)")


PoolOption = Annotated[str, typer.Option("--pool", help="Prefect work pool.")]


@app.command()
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
) -> None:
    """Create the work pool, the deployments bound to it and the `gpu` concurrency limit."""
    from nlpflow.orchestration import deployments as d

    flows = d.choose_flows(flow_name)
    d.check_pool_type(pool_type)
    template = d.read_template(base_job_template) if base_job_template else None
    settings, loaded = _load(set_)  # the overrides a scheduled run will apply must be valid now
    plan = d.DeployPlan(
        flows=flows, pool=pool, pool_type=pool_type, template=template, name=name,
        schedules=d.plan_schedules(flows, cron=cron, timezone=timezone,
                                   params_schedule=loaded.schedule),
        project_dir=settings.root, overrides=list(set_ or []), gpu_slots=gpu_slots,
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


@app.command()
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


@app.command()
def ui(
    mlflow_port: Annotated[int, typer.Option(min=1, max=65535, help="MLflow UI port.")] = 5000,
    prefect_port: Annotated[int, typer.Option(min=1, max=65535, help="Prefect UI port.")] = 4200,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
) -> None:
    """Serve this project's MLflow UI (its tracking store) and Prefect UI (its own Prefect home)
    until Ctrl-C; a tracking server or Prefect server you configured is not started again."""
    from nlpflow.serving.pyfunc import check_port_free
    from nlpflow.tracking.links import prefect_ui_url

    settings = load_settings()
    commands: list[tuple[str, list[str], str]] = []
    uri = settings.resolved_tracking_uri
    if not uri.startswith(("http://", "https://")):
        check_port_free(host, mlflow_port, option="--mlflow-port")
        mlflow = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
                  "--host", host, "--port", str(mlflow_port)]  # fmt: skip
        page = f"http://{host}:{mlflow_port}/#/experiments?workflowType=machine_learning"
        commands.append(("MLflow", mlflow, page))
    else:
        out.print(f"MLflow:  {uri} (your tracking server)", highlight=False)
    if prefect_ui_url() is None:
        check_port_free(host, prefect_port, option="--prefect-port")
        prefect = [str(Path(sys.executable).parent / "prefect"), "server", "start",
                   "--host", host, "--port", str(prefect_port)]  # fmt: skip
        commands.append(("Prefect", prefect, f"http://{host}:{prefect_port}"))
    else:
        out.print(f"Prefect: {prefect_ui_url()} (your Prefect server)", highlight=False)
    _serve_until_interrupted(commands)


def _serve_until_interrupted(commands: list[tuple[str, list[str], str]]) -> None:
    """Run the servers until Ctrl-C or SIGTERM, then stop each with everything it started
    (MLflow's UI forks workers and job consumers): each runs in its own process group."""
    import signal
    import subprocess

    def interrupt(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    processes = []
    try:
        for name, argv, url in commands:
            processes.append(
                subprocess.Popen(argv, stdout=subprocess.DEVNULL, start_new_session=True)
            )
            out.print(f"{name + ':':8} {url}", highlight=False)
        if processes:
            console.print("Ctrl-C stops them", markup=False)
            for process in processes:
                process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        for process in processes:
            _stop_group(process)


def _stop_group(process: Any) -> None:
    """SIGTERM to the process's group; after the leader exits (or 30 s), SIGKILL what is left
    of the group (workers that outlive their parent)."""
    import os
    import signal
    import subprocess
    from contextlib import suppress

    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with suppress(subprocess.TimeoutExpired):
        process.wait(timeout=30)
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


registry_app = typer.Typer(
    no_args_is_help=True, help="Show the promotion log; move the champion by hand (who and why)."
)
app.add_typer(registry_app, name="registry")
ModelName = Annotated[
    str | None,
    typer.Option("--model", help="Registered model (default: NLPFLOW_REGISTERED_MODEL)."),
]
Reason = Annotated[str, typer.Option("--reason", help="Why: recorded in the promotion log.")]
By = Annotated[
    str | None, typer.Option("--by", help="Who (default: $NLPFLOW_USER, else the login name).")
]


def _registry() -> tuple[Any, Any, Any]:
    from nlpflow.tracking.tracker import Tracker

    settings, loaded = _load(None)
    return settings, loaded, Tracker(settings)


@registry_app.command("history")
def registry_history(
    model: ModelName = None,
    limit: Annotated[int, typer.Option(help="Newest events shown.")] = 20,
) -> None:
    """The champion now, and the promotion log: every gate decision and manual move."""
    from mlflow.exceptions import MlflowException
    from rich.table import Table

    from nlpflow.release.registry import CHALLENGER, CHAMPION, read_log

    settings, loaded, tracker = _registry()
    name = model or settings.registered_model
    aliases = {}
    for alias in (CHAMPION, CHALLENGER):
        try:
            aliases[alias] = tracker.client.get_model_version_by_alias(name, alias).version
        except MlflowException:  # no such alias (or model) yet
            aliases[alias] = "-"
    out.print(f"{name}: champion v{aliases[CHAMPION]}, challenger v{aliases[CHALLENGER]}")
    events = read_log(tracker, loaded, name, limit=limit)
    if not events:
        out.print("The promotion log is empty: no version has been registered yet.")
        return
    table = Table("time (UTC)", "action", "version", "decision", "champion", "by", "reason")
    for e in events:
        move = f"v{e.champion_before or '-'} -> v{e.champion_after or '-'}"
        table.add_row(e.time, e.action, str(e.version), e.decision, move, e.by, e.reason)
    out.print(table)


@registry_app.command("promote")
def registry_promote(
    version: Annotated[int, typer.Argument(help="The version to make champion.")],
    reason: Reason,
    by: By = None,
    model: ModelName = None,
) -> None:
    """Make VERSION champion by hand, past the gate; recorded with who and why."""
    from nlpflow.release.registry import actor, move_champion

    settings, loaded, tracker = _registry()
    event = move_champion(
        tracker, loaded, name=model or settings.registered_model, version=version,
        action="promote", by=actor(by), reason=reason,
    )  # fmt: skip
    out.print(
        f"champion of {event.model}: v{event.champion_before} -> v{event.version} ({event.by})"
    )


@registry_app.command("rollback")
def registry_rollback(
    reason: Reason,
    to: Annotated[
        int | None, typer.Option(help="Version to return to (default: the previous champion).")
    ] = None,
    by: By = None,
    model: ModelName = None,
) -> None:
    """Give the champion alias back to the previous champion (or --to VERSION)."""
    from nlpflow.release.registry import actor, move_champion, rollback_target

    settings, loaded, tracker = _registry()
    name = model or settings.registered_model
    target = to if to is not None else rollback_target(tracker, loaded, name)
    event = move_champion(
        tracker, loaded, name=name, version=target, action="rollback", by=actor(by), reason=reason
    )
    out.print(f"champion of {name}: v{event.champion_before} -> v{event.version} ({event.by})")


ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model", "-m",
        help="NAME@ALIAS or NAME/VERSION (default: NLPFLOW_REGISTERED_MODEL@champion).",
    ),
]  # fmt: skip


@app.command()
def serve(
    model: ModelOption = None,
    host: Annotated[str, typer.Option(help="Interface to listen on (0.0.0.0: all).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 5001,
    workers: Annotated[int, typer.Option(min=1, help="Server worker processes.")] = 1,
    threads: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="torch threads per worker (default: OMP_NUM_THREADS, else physical cores / workers).",
        ),
    ] = None,
) -> None:
    """Serve a registered model: MLflow's scoring server behind a request guard (size, JSON
    depth, texts checked before parsing), offline, in this environment (never a new
    virtualenv). POST raw text to /invocations."""
    from nlpflow.serving import pyfunc as serving

    settings = load_settings()
    ref = serving.resolve_model(model, settings)  # unknown model or alias: fails before the server
    serving.check_port_free(host, port)
    console.print(
        f"serving {ref} from {settings.resolved_tracking_uri} at http://{host}:{port}/invocations"
        f""" (POST {{"inputs": ["some text"]}}); Ctrl-C stops it""",
        markup=False, highlight=False, soft_wrap=True,
    )  # fmt: skip
    code = serving.serve_registered(
        ref, settings, host=host, port=port, workers=workers, threads=threads
    )
    raise typer.Exit(code)


@app.command()
def predict(
    model: ModelOption = None,
    text: Annotated[
        list[str] | None, typer.Option("--text", "-t", help="A text to classify (repeatable).")
    ] = None,
    input_: Annotated[
        Path | None,
        typer.Option(
            "--input",
            "-i",
            help="A file of texts: .txt (one a line), .csv/.tsv/.jsonl/.parquet (a text column).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines, not a table.")] = False,
) -> None:
    """Classify texts with a registered model: label, score and each class's probability."""
    from nlpflow.serving.pyfunc import predict_registered, read_texts, resolve_model

    if (text is None) == (input_ is None):
        raise NlpflowError("give texts with --text (repeatable) or a file with --input, not both.")
    settings = load_settings()
    ref = resolve_model(model, settings)
    texts = read_texts(input_) if input_ is not None else list(text or [])
    frame = predict_registered(ref, settings, texts)
    frame.insert(0, "text", texts)
    if as_json:
        for row in frame.to_dict(orient="records"):
            out.print(json.dumps(row, ensure_ascii=False), markup=False, highlight=False)
        return
    _print_predictions(frame, title=str(ref))


def _print_predictions(frame: Any, *, title: str) -> None:
    from rich.table import Table

    table = Table(title=title)
    for column in frame.columns:  # a class's probability under the class's name
        left = column in {"text", "label"}
        name = column.removeprefix("proba_")
        table.add_column(name, overflow="fold", justify="left" if left else "right")
    for row in frame.itertuples(index=False):
        cells = [f"{v:.4f}" if isinstance(v, float) else str(v) for v in row]
        cells[0] = cells[0] if len(cells[0]) <= 80 else cells[0][:79] + "…"
        table.add_row(*cells)
    out.print(table)


@app.command()
def lineage(
    spec: Annotated[
        str | None,
        typer.Argument(
            metavar="NAME@ALIAS|NAME/VERSION",
            help="The version (default: NLPFLOW_REGISTERED_MODEL@champion).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The lineage as JSON.")] = False,
) -> None:
    """Where a registered version came from: its run, git commit, data hashes, params, and the
    Prefect flow run, all read back from MLflow."""
    from nlpflow.release.lineage import load_lineage, resolve_version
    from nlpflow.tracking.tracker import Tracker

    settings = load_settings()
    ref = resolve_version(spec, settings)
    found = load_lineage(Tracker(settings), ref.name, ref.version)
    # Plain echo, not rich: hashes, params and reasons are printed as stored (no markup, emoji).
    typer.echo(found.model_dump_json(indent=2) if as_json else _lineage_text(found))


def _lineage_text(found: Any) -> str:
    m, run, code, data = found.model, found.run, found.code, found.data
    dirty = {True: " (dirty: uncommitted changes)", False: " (clean)", None: ""}[code.git_dirty]
    rows = [
        ("model", f"{m.name} version {m.version}"),
        ("aliases", ", ".join(f"@{a}" for a in m.aliases) or "none"),
        ("created", m.created or "-"),
        ("gate", m.gate_decision or "not gated"),
        *([("gate reasons", m.gate_reasons)] if m.gate_reasons else []),
        ("run", run.run_id if run else "none recorded"),
        *([("experiment", f"{run.experiment or '(deleted)'} (id {run.experiment_id})"),
           ("status", run.status), ("started", run.start or "-"), ("ended", run.end or "-")]
          if run else []),
        ("git commit", f"{code.git_commit or 'not recorded'}{dirty}"),
        ("data source sha256", data.source_sha256 or "not recorded"),
        ("test set sha256", data.test_set_sha256 or "not recorded"),
        ("prefect flow run", _flow_run(found.orchestration)),
    ]  # fmt: skip
    lines = [f"{key:20} {value}" for key, value in rows]
    if data.dvc:
        width = max(map(len, data.dvc))
        lines.append(f"dvc.lock md5 ({len(data.dvc)})")
        lines += [f"  {path:{width}} {md5}" for path, md5 in data.dvc.items()]
    else:
        lines.append("dvc.lock md5         none recorded (no dvc.lock when it was registered)")
    lines.append(f"params ({len(found.params)})")
    lines += [f"  {key} = {value}" for key, value in found.params.items()]
    return "\n".join(lines)


def _flow_run(orchestration: Any) -> str:
    if orchestration.prefect_flow_run_id:
        return str(orchestration.prefect_flow_run_id)
    if orchestration.runner == "dvc":
        return "none (run by dvc repro / nlpflow stage)"
    return "none recorded"


@app.command()
def reproduce(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="The MLflow run to rebuild.")],
    tolerance: Annotated[
        float, typer.Option(help="Largest |reproduced - original| accepted per metric.")
    ] = 0.0,
    keep: Annotated[bool, typer.Option("--keep", help="Keep the temporary worktree.")] = False,
    allow_dirty: Annotated[
        bool, typer.Option("--allow-dirty", help="Reproduce a run made from uncommitted code.")
    ] = False,
    remote: Annotated[
        str | None, typer.Option(help="DVC remote URL to pull from (default: the run's).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The comparison as JSON.")] = False,
) -> None:
    """Rebuild a run from its MLflow record (commit, params, dvc.lock, data from the DVC remote)
    in a temporary git worktree, run `dvc repro` there, and compare metrics (exit 1 if any
    differs by more than --tolerance)."""
    from nlpflow.pipeline.reproduce import reproduce as rebuild

    def progress(line: str) -> None:  # on stderr: stdout holds the table (or the JSON)
        console.print(line, highlight=False, markup=False)

    found = rebuild(
        run_id, settings=load_settings(), tolerance=tolerance, keep=keep,
        allow_dirty=allow_dirty, remote_url=remote, progress=progress,
    )  # fmt: skip
    typer.echo(found.model_dump_json(indent=2) if as_json else _reproduction_text(found))
    if not found.within:
        raise typer.Exit(1)


def _reproduction_text(found: Any) -> str:
    def show(value: Any) -> str:
        return "-" if value is None else f"{value:.6g}" if isinstance(value, float) else str(value)

    width = max(len("metric"), *(len(row.metric) for row in found.metrics))
    lines = [f"{'metric':{width}}  {'original':>12}  {'reproduced':>12}  {'diff':>10}"]
    for row in found.metrics:
        diff = "0" if row.diff == 0 else "-" if row.diff is None else f"{row.diff:+.3g}"
        mark = "" if row.within else "  <- differs"
        lines.append(
            f"{row.metric:{width}}  {show(row.original):>12}  {show(row.reproduced):>12}  {diff:>10}{mark}"
        )
    off = sum(not row.within for row in found.metrics)
    verdict = "reproduced" if found.within else f"NOT reproduced: {off} metric(s) differ"
    lines.append(
        f"run {found.run_id} at {found.commit[:12]}: {verdict} (tolerance {found.tolerance:g})"
    )
    if found.worktree:
        lines.append(f"worktree kept: {found.worktree} (git worktree remove --force it when done)")
    return "\n".join(lines)


def main() -> None:
    from nlpflow.shutdown import handle_stop_signals

    apply_environment_defaults()
    apply_prefect_home(load_settings().root)
    handle_stop_signals()  # SIGTERM/SIGINT: runs closed KILLED, one line, exit 128 + signal
    try:
        _main()
    except BaseException as exc:
        _exit_if_stopped(exc)
        raise


def _exit_if_stopped(exc: BaseException) -> None:
    """A stop signal ends the command with one line, no traceback, and the shell's code."""
    from nlpflow.shutdown import exit_now, signal_of, stop_message

    signum = signal_of(exc)
    if signum is None:
        return
    console.print(stop_message(signum), markup=False, highlight=False, soft_wrap=True)
    exit_now(128 + signum)


def _main() -> None:
    from nlpflow.errors import disk_full

    try:
        try:
            app(standalone_mode=False)
        except Exception as exc:  # a full disk anywhere (a stage, the store): its message
            full = disk_full(exc, doing=" ".join(sys.argv[1:3]) or "nlpflow")
            if full is None:
                raise
            raise full from None
    except NlpflowError as exc:
        from rich.markup import escape  # messages hold [brackets]: pip install "nlpflow[dask]"

        console.print(
            f"[red]error:[/red] {escape(str(exc))}", markup=True, highlight=False, soft_wrap=True
        )
        sys.exit(exc.exit_code)
    except (typer.Exit, typer.Abort) as exc:
        sys.exit(getattr(exc, "exit_code", 1))
    except Exception as exc:
        if not _is_usage_error(exc):
            raise
        exc.show()  # type: ignore[attr-defined]
        sys.exit(exc.exit_code)  # type: ignore[attr-defined]


def _is_usage_error(exc: Exception) -> bool:
    """A command-line mistake (unknown option, missing argument): click's ClickException, which
    typer >= 0.29 vendors as typer._click (no longer a subclass of click's own)."""
    import click

    kinds: tuple[type, ...] = (click.ClickException,)
    vendored = getattr(getattr(typer, "exceptions", None), "TyperException", None)
    if vendored is not None:
        kinds += (vendored,)
    return isinstance(exc, kinds) and hasattr(exc, "show")


if __name__ == "__main__":
    main()
