"""The Prefect task runner of an engine (nlpflow.config.engine): where submitted tasks run.

    runner = engine_task_runner(settings.resolved_engine)
    with runner:                      # or @flow(task_runner=runner)
        if engine.cluster:            # Dask or Ray: where to watch the workers
            print(dashboard_line(engine, dashboard_url(runner)))
        futures = [score.submit(chunk) for chunk in chunks]

local and processes are Prefect's own runners; dask and ray are the prefect-dask and
prefect-ray extras (pip install "nlpflow[dask]" / "nlpflow[ray]"), imported only when chosen.
Every task runner of nlpflow is built here (batch inference's chunks, sweep trials).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner

from nlpflow.config.engine import EXTRAS, Engine
from nlpflow.errors import ParamsError


def engine_task_runner(engine: Engine, *, workers: int | None = None) -> TaskRunner[Any]:
    """`workers` overrides the engine's count for what starts here (a local pool or cluster);
    a cluster at an address has the workers it has."""
    count = workers or engine.workers
    if engine.kind == "local":
        return thread_task_runner(1)  # in this process, one task at a time
    if engine.kind == "processes":
        return ProcessPoolTaskRunner(max_workers=count)
    module = extra_module(engine.kind)
    if engine.kind == "dask":
        if engine.address:
            return module.DaskTaskRunner(address=engine.address)
        # processes, one thread each: a training holds the GIL and its own torch threads
        return module.DaskTaskRunner(
            cluster_kwargs={"n_workers": count, "threads_per_worker": 1, "processes": True}
        )
    if engine.address:
        return module.RayTaskRunner(address=engine.address)
    # "local": a new Ray instance of `count` CPUs. Left unset, ray.init() joins whatever Ray
    # this machine ran last (RAY_ADDRESS, /tmp/ray/ray_current_cluster), and then refuses the
    # num_cpus it was given; an existing cluster is named as ray://host:10001 instead.
    return module.RayTaskRunner(init_kwargs={"address": "local", "num_cpus": count})


def thread_task_runner(workers: int) -> TaskRunner[Any]:
    """`workers` threads of this process (sweep.runner: threads)."""
    return ThreadPoolTaskRunner(max_workers=workers)


def dashboard_url(runner: TaskRunner[Any]) -> str | None:
    """The dashboard of the Dask or Ray engine an entered `runner` uses; None where it names
    none (a Dask scheduler without bokeh, Ray without ray[default] or initialised before the
    runner). Read where prefect-dask and prefect-ray read it to log it on their own logger
    (not the flow run's): the Dask client's dashboard_link, the dashboard_url of the context
    that ray.init returned."""
    kind = type(runner).__name__
    if kind == "DaskTaskRunner":
        try:  # the client (and a local cluster) start on first use
            link = runner.client.dashboard_link  # type: ignore[attr-defined]
        except KeyError:  # a scheduler at an address, serving no dashboard
            return None
        return str(link) if link else None
    if kind == "RayTaskRunner":
        url = getattr(getattr(runner, "_ray_context", None), "dashboard_url", None)
        if not url:
            return None
        return url if "://" in url else f"http://{url}"  # Ray gives host:port
    return None


def dashboard_line(engine: Engine, url: str | None) -> str:
    """'Dask dashboard: http://127.0.0.1:8787/status', or '... none (...)'."""
    return f"{engine.kind.capitalize()} dashboard: {url or 'none (the cluster names none)'}"


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
    """The engine's task runner, started, its workers reporting to this run's Prefect API."""
    with started(engine_task_runner(engine, workers=workers)) as runner:
        yield runner


@contextmanager
def started(runner: TaskRunner[Any]) -> Iterator[TaskRunner[Any]]:
    """`runner` entered the way nlpflow starts every task runner: its workers reporting to
    this run's Prefect API, and this process's environment as it was once it stops."""
    with environment_kept(), shared_api(), runner:
        yield runner


@contextmanager
def environment_kept() -> Iterator[None]:
    """This process's environment as it was before the block, whatever a task runner did to it.

    A local Dask cluster's nanny sets OMP_NUM_THREADS, MKL_NUM_THREADS and OPENBLAS_NUM_THREADS
    to 1, MALLOC_TRIM_THRESHOLD_ and PYTHONHASHSEED in this process's own os.environ before it
    spawns each worker (distributed.nanny.pre-spawn-environ), and never puts them back; Ray's
    init leaves RAY_CLIENT_MODE and PYTHONBREAKPOINT. Every process started afterwards (dvc,
    torchrun's workers, `nlpflow serve`) then ran on one BLAS and OpenMP thread: slower, and
    with other last bits than the same stage in this process (a `dvc repro` after a sweep
    rebuilt other PCA components). Inside the block the workers still get theirs."""
    before = dict(os.environ)
    try:
        yield
    finally:
        for name in set(os.environ) | set(before):
            if name not in before:
                del os.environ[name]
            elif os.environ.get(name) != before[name]:
                os.environ[name] = before[name]


@contextmanager
def shared_api() -> Iterator[None]:
    """Task runners started in this block hand their workers this run's Prefect API.

    Without a configured server this process runs Prefect's temporary one, and a worker
    process (processes, a local Dask or Ray cluster) would start a temporary server of its
    own: measured 30 s and 300 MB each, its task runs kept there. They get this one's address."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    address = None if PREFECT_API_URL.value() else _temporary_server_api()
    with temporary_settings(updates={PREFECT_API_URL: address} if address else {}):
        yield


def _temporary_server_api() -> str | None:
    """The API address of the temporary server this process runs, if it runs one."""
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()  # the instance Prefect's clients use
    return server.api_url if server.running else None
