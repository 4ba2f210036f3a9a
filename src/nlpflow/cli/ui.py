"""`nlpflow ui`: this project's MLflow and Prefect pages, until Ctrl-C.

nlpflow ui --mlflow-port 5000 --prefect-port 4200
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from nlpflow.cli.common import console, out
from nlpflow.config.settings import load_settings


def ui(
    mlflow_port: Annotated[int, typer.Option(min=1, max=65535, help="MLflow UI port.")] = 5000,
    prefect_port: Annotated[int, typer.Option(min=1, max=65535, help="Prefect UI port.")] = 4200,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
) -> None:
    """Serve this project's MLflow UI (its tracking store) and Prefect UI (its own Prefect home)
    until Ctrl-C; a tracking server or Prefect server you configured is not started again."""
    from nlpflow.serving.server import check_port_free
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
