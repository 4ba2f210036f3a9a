"""The commands that run a Prefect flow once on this project: `nlpflow run`, `infer`, `sweep`.

nlpflow run --set train.epochs=1
nlpflow infer --set inference.table=reviews
nlpflow sweep --set sweep.n_trials=8
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from nlpflow.cli.common import ConfigOption, SetOption, load_project, out
from nlpflow.errors import NlpflowError

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

    settings, _ = load_project(set_, config)
    _quiet_user_error_tracebacks()
    start_prefect_server_in_own_session()  # a Ctrl-C to the terminal's group must spare it
    return settings, flow(
        overrides=set_ or None,
        project_dir=str(settings.root),
        configs=[str(c.resolve()) for c in config] if config else None,
        **parameters,
    )


# The test metrics `nlpflow run` prints: a classifier's, then a tagger's (metrics.json holds one
# task's).
SUMMARY_METRICS = ("accuracy", "macro_precision", "macro_recall", "macro_f1",
                   "entity_precision", "entity_recall", "entity_f1", "entity_macro_f1",
                   "npmi", "c_v", "diversity", "nmi", "purity")  # fmt: skip


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
    for key in SUMMARY_METRICS:  # those of the run's NLP task: the others are absent
        if key in metrics:
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
    if reg.get("name_line"):
        out.print(f"  {reg['name_line']}", markup=False, highlight=False)
    if not reg["promoted"]:
        champion = reg["previous_champion"]
        refused = " (not compared: a model of other data)" if reg.get("refused") else ""
        out.print(f"  champion stays {f'version {champion}' if champion else 'unset'}{refused}")
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


def infer(set_: SetOption = None, config: ConfigOption = None) -> None:
    """Score a file or SQL table (params `inference`) with the registered model, with Prefect."""
    from nlpflow.flows.inference import inference_flow

    _, report = _run_flow(inference_flow, set_, config)
    out.print(
        f"[bold]Scored[/bold] {report['rows_scored']} of {report['rows_read']} rows with "
        f"{report['model_name']} version {report['model_version']} ({report['model_alias']})"
    )
    out.print(f"  predictions: {report['output']}")
    chunks, resumed = report.get("chunks", 1), report.get("resumed_chunks", 0)
    again = f", {resumed} committed by the attempt it resumed" if resumed else ""
    out.print(
        f"  {chunks} chunk(s){again}; scoring took {report.get('seconds', 0):.1f} s "
        f"({report.get('rows_per_second', 0):,.0f} rows/s)"
    )
    if report["rows_rejected"]:
        checks = ", ".join(f"{k} {v}" for k, v in report["rejected_by_check"].items())
        out.print(
            f"  rejected {report['rows_rejected']} rows ({checks}): {report['rejected_output']}"
        )
    out.print(
        f"  {report.get('counted', 'rows per predicted label')}: {json.dumps(report['labels'])}"
    )
    if report.get("drift"):  # a topic model: its new texts' mix of topics against training's
        from nlpflow.serving.batch.report import drift_summary

        out.print(f"  {drift_summary(report['drift'])}")
    out.print(f"  MLflow run {report['run_id']}")


def sweep(set_: SetOption = None, config: ConfigOption = None) -> None:
    """Sweep train params (params `sweep`): parallel Optuna trials, nested MLflow runs."""
    from nlpflow.flows.sweep import sweep_flow
    from nlpflow.training.sweep import check_sweep

    settings, loaded = load_project(set_, config)
    check_sweep(loaded, settings.root)  # before Prefect starts
    _, report = _run_flow(sweep_flow, set_, config)
    states = [t["state"] for t in report["trials"]]
    counts = ", ".join(f"{states.count(s)} {s.lower()}" for s in ("COMPLETE", "PRUNED"))
    out.print(f"[bold]Sweep[/bold] {report['study']}: {len(states)} trials ({counts})")
    out.print(f"  trials ran on {report['engine']}", highlight=False)
    if "dashboard" in report:  # a Dask or Ray cluster's; the flow run's log has it from the start
        out.print(f"  dashboard: {report['dashboard'] or 'none'}", highlight=False)
    out.print(f"  best trial {report['best_trial']}: {report['metric']} {report['best_value']:.4f}")
    for name, value in report["best_params"].items():
        out.print(f"    {name} = {value}")
    out.print(f"  best params: {report['output']}")
    out.print(f"  train with them: nlpflow run --config {report['output']}")
    out.print(f"  MLflow run {report['run_id']} (trials nested under it)")
