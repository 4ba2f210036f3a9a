"""The Prefect task runner of an engine (nlpflow.config.engine): where submitted tasks run.

    runner = engine_task_runner(settings.resolved_engine)
    with runner:                      # or @flow(task_runner=runner)
        futures = [score.submit(chunk) for chunk in chunks]

local and processes are Prefect's own runners; dask and ray are the prefect-dask and
prefect-ray extras (pip install "nlpflow[dask]" / "nlpflow[ray]"), imported only when chosen.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner

from nlpflow.config.engine import EXTRAS, Engine
from nlpflow.errors import ParamsError


def engine_task_runner(engine: Engine, *, workers: int | None = None) -> TaskRunner[Any]:
    """`workers` overrides the engine's count for what starts here (a local pool or cluster)."""
    count = workers or engine.workers
    if engine.kind == "local":
        return ThreadPoolTaskRunner(max_workers=1)  # in this process, one task at a time
    if engine.kind == "processes":
        return ProcessPoolTaskRunner(max_workers=count)
    module = extra_module(engine.kind)
    if engine.kind == "dask":
        if engine.address:
            return module.DaskTaskRunner(address=engine.address)
        return module.DaskTaskRunner(
            cluster_kwargs={"n_workers": count, "threads_per_worker": 1, "processes": True}
        )
    if engine.address:
        return module.RayTaskRunner(address=engine.address)
    return module.RayTaskRunner(init_kwargs={"num_cpus": count})


def extra_module(kind: str) -> Any:
    name = EXTRAS[kind]
    try:
        return importlib.import_module(name)
    except ImportError:
        raise ParamsError(
            f"engine {kind} needs {name.replace('_', '-')}, which is not installed: "
            f'pip install "nlpflow[{kind}]" (or set NLPFLOW_ENGINE=processes)'
        ) from None


@contextmanager
def running(engine: Engine, *, workers: int | None = None) -> Iterator[TaskRunner[Any]]:
    """The engine's task runner, started, with its workers reporting to this run's Prefect
    API. Without a configured server this process runs Prefect's temporary one; a worker
    process would start a temporary server of its own (measured: 30 s and 300 MB each, and
    its task runs missing from this flow run), so they are given this one's address."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    runner = engine_task_runner(engine, workers=workers)
    address = None if PREFECT_API_URL.value() else _temporary_server_api()
    updates = {PREFECT_API_URL: address} if address else {}
    with temporary_settings(updates=updates), runner:
        yield runner


def _temporary_server_api() -> str | None:
    """The API address of the temporary server this process runs, if it runs one."""
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()  # the instance Prefect's clients use
    return server.api_url if server.running else None
