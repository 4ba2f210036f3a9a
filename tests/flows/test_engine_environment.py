"""A local Dask or Ray cluster leaves the environment of the process that started it as it was.

Dask's nanny writes OMP_NUM_THREADS=1, MKL_NUM_THREADS=1, OPENBLAS_NUM_THREADS=1,
MALLOC_TRIM_THRESHOLD_ and PYTHONHASHSEED into its own process's os.environ before spawning a
worker, and Ray's init leaves RAY_CLIENT_MODE and PYTHONBREAKPOINT. Left there, every process
started later (dvc, torchrun's workers, `nlpflow serve`) ran on one BLAS thread: slower, and
its results' last bits differed from the same stage run in this process (PCA components of a
`dvc repro` after a sweep, a reproduction's calibration error).
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from prefect import flow, task

from nlpflow.config.engine import Engine
from nlpflow.tasks.engine import running

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]


@task
def _worker_environment() -> dict[str, Any]:
    return {"pid": os.getpid(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}


@flow
def _probe(kind: str) -> dict[str, Any]:
    with running(Engine(kind, None, 1)) as runner:
        return runner.submit(_worker_environment, parameters={}).result()  # type: ignore[no-any-return]


@pytest.mark.parametrize("kind", ["dask", "ray"])
def test_a_local_cluster_leaves_this_process_environment_as_it_was(
    kind: str, prefect_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # no token written to ~/.ray
    before = dict(os.environ)
    worker = _probe(kind)
    assert worker["pid"] != os.getpid()  # the task ran in a worker process
    if kind == "dask":
        assert worker["OMP_NUM_THREADS"] == "1"  # the workers still get dask's settings
    changed = {k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k)}
    assert changed == set()
