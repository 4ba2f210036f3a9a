"""Serving a registered version: `nlpflow serve` runs uvicorn with nlpflow.serving.app (MLflow's
scoring server behind nlpflow's request guard) on the version's downloaded files.

    ref = resolve_spec("nlpflow-support-tickets@champion", settings)   # nlpflow.tracking.refs
    check_port_free("127.0.0.1", 5001)
    serve_registered(ref, settings, host="127.0.0.1", port=5001, workers=1)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from nlpflow.errors import ModelError

if TYPE_CHECKING:
    from nlpflow.config.settings import Settings
    from nlpflow.tracking.refs import ModelRef


def serve_command(*, host: str, port: int, workers: int) -> list[str]:
    """uvicorn running nlpflow.serving.app: MLflow's scoring server behind nlpflow's request
    guard (`mlflow models serve` offers no hook for one), in this environment: never a new one."""
    import sys

    return [
        sys.executable, "-m", "uvicorn", "--factory", "nlpflow.serving.app:build_app",
        "--host", host, "--port", str(port), "--workers", str(workers),
    ]  # fmt: skip


def serve_registered(
    ref: ModelRef, settings: Settings, *, host: str, port: int, workers: int,
    threads: int | None = None,
) -> int:  # fmt: skip
    """Serve the pinned version (the alias was resolved once, at start, so the version
    announced is the version served) until a signal; returns the server's exit code."""
    import tempfile

    from nlpflow.serving.app import MODEL_PATH_ENV
    from nlpflow.tracking.tracker import Tracker

    with tempfile.TemporaryDirectory(prefix="nlpflow-serve-") as tmp:
        env = serve_environment(settings, threads=threads, workers=workers)
        files = Tracker(settings).download_version(ref.name, ref.version, Path(tmp))
        env[MODEL_PATH_ENV] = str(files)
        return run_server(serve_command(host=host, port=port, workers=workers), env)


def default_threads(workers: int) -> int:
    """torch threads per server worker: the physical cores shared out. More would oversubscribe
    them; on a busy 2-core machine two threads per request made MiniLM's one-text p50 5x worse
    than one (82 against 16 ms: a parallel region waits for its slowest thread)."""
    import os

    try:
        import psutil

        cores = psutil.cpu_count(logical=False) or os.cpu_count() or 1
    except ImportError:
        cores = os.cpu_count() or 1
    return max(1, cores // workers)


def serve_environment(
    settings: Settings, *, threads: int | None = None, workers: int = 1
) -> dict[str, str]:
    """The server's environment: this one, plus the store, offline switches and no installs,
    and `threads` torch threads per worker (None: OMP_NUM_THREADS if set, else
    default_threads)."""
    import os
    import sys

    env = dict(os.environ)
    if threads is None and not env.get("OMP_NUM_THREADS"):
        threads = default_threads(workers)
    if threads is not None:
        env.update({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)})
    uri = settings.resolved_tracking_uri
    env.update({
        "MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri,
        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
        # Anything run by name is this interpreter's, even when the venv isn't activated.
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        # Belt and braces: the server runs in this interpreter and builds no environment; these
        # make sure nothing in it could install a package if a code path tried.
        "MLFLOW_DISABLE_ENV_CREATION": "true", "PIP_NO_INDEX": "1",
    })  # fmt: skip
    return env


def check_port_free(host: str, port: int, *, option: str = "--port") -> None:
    """uvicorn would fail after the model loaded (a minute for a transformer): fail first."""
    import socket

    with socket.socket() as probe:
        # as uvicorn binds: connections of a server that just stopped (TIME_WAIT) don't count
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ModelError(
                f"cannot listen on {host}:{port} ({exc.strerror}); pick another {option} or stop "
                "what uses it."
            ) from None


def run_server(command: list[str], env: dict[str, str]) -> int:
    """Run the server until it exits; SIGINT/SIGTERM/SIGHUP go to it and its workers. Returns its
    exit code (128 + N when a signal N ended it, as a shell reports it)."""
    import contextlib
    import os
    import signal
    import subprocess

    from nlpflow.shutdown import parent_death_signal

    # Its own process group: MLflow starts uvicorn (and uvicorn its workers) as children, and a
    # signal must reach them all, once (a terminal's Ctrl-C would also hit a shared group).
    child = subprocess.Popen(
        command, env=env, start_new_session=True, preexec_fn=parent_death_signal()
    )

    def forward(signum: int, _frame: Any) -> None:
        with contextlib.suppress(ProcessLookupError):  # already gone
            os.killpg(child.pid, signum)

    forwarded = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, forward) for sig in forwarded}
    try:
        code = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 - code if code < 0 else code
