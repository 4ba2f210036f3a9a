"""nlpflow's command line.

nlpflow run [--set train.epochs=1]     run the training flow (Prefect) once
nlpflow stage NAME                      run one stage (what dvc.yaml calls)
nlpflow train-node                      this machine's share of a multi-node training
nlpflow dvc-yaml [--check]              write dvc.yaml from the stage table (--check: is it current?)
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

import sys
from typing import NoReturn

import typer

from nlpflow.cli import deploy, flows, registry, runs, serving, stages, ui
from nlpflow.cli.common import console
from nlpflow.config.settings import apply_environment_defaults, apply_prefect_home, load_settings
from nlpflow.errors import NlpflowError

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.split("\n\n")[0])
# In the order `nlpflow --help` lists them (command groups, `registry`, come last there).
for command in (
    stages.params, stages.stage, stages.train_node, flows.run, runs.doctor, flows.infer, flows.sweep,
    deploy.deploy, deploy.worker, ui.ui, serving.serve, serving.predict, registry.lineage,
    runs.reproduce, stages.dvc_yaml,
):  # fmt: skip
    app.command()(command)
app.add_typer(registry.registry_app, name="registry")


def main() -> None:
    from nlpflow.shutdown import handle_stop_signals

    apply_environment_defaults()
    try:
        settings = load_settings()
    except NlpflowError as exc:  # a wrong NLPFLOW_* variable: its message, no traceback
        _exit_with_message(exc)
    apply_prefect_home(settings.root)
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
            # Not standalone, click returns a command's `raise typer.Exit(code)` as this value
            # instead of exiting with it: `reproduce` out of tolerance, `serve`'s server failing
            # and a stale `dvc-yaml --check` must still end the process with their code.
            code = app(standalone_mode=False)
            if isinstance(code, int) and code:
                sys.exit(code)
        except Exception as exc:  # a full disk anywhere (a stage, the store): its message
            full = disk_full(exc, doing=" ".join(sys.argv[1:3]) or "nlpflow")
            if full is None:
                raise
            raise full from None
    except NlpflowError as exc:
        _exit_with_message(exc)
    except (typer.Exit, typer.Abort) as exc:
        sys.exit(getattr(exc, "exit_code", 1))
    except Exception as exc:
        if not _is_usage_error(exc):
            raise
        exc.show()  # type: ignore[attr-defined]
        sys.exit(exc.exit_code)  # type: ignore[attr-defined]


def _exit_with_message(exc: NlpflowError) -> NoReturn:
    from rich.markup import escape  # messages hold [brackets]: pip install "nlpflow[dask]"

    console.print(
        f"[red]error:[/red] {escape(str(exc))}", markup=True, highlight=False, soft_wrap=True
    )
    sys.exit(exc.exit_code)


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
