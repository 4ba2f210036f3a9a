"""Prefect's temporary API server, started so that a stop signal does not kill it first.

    from nlpflow.orchestration.prefect_server import start_prefect_server_in_own_session
    start_prefect_server_in_own_session()  # before a flow runs without a configured server

The signal handling the library needs (Stopped, signals_deferred, exit codes) is nlpflow.shutdown,
which imports no prefect; this is the Prefect half of a clean shutdown.
"""

from __future__ import annotations

from typing import Any

from nlpflow.shutdown import parent_death_signal


def start_prefect_server_in_own_session() -> None:
    """Start Prefect's temporary API server (when no server is configured) in a session of its
    own. Prefect starts it in ours, so a Ctrl-C or a SIGTERM to the process group stopped it
    at once, and the flow's cleanup then retried a gone API for minutes (EventsWorker
    tracebacks). It still stops at exit (Prefect's atexit hook), and with this process
    (PR_SET_PDEATHSIG) if that dies without exit hooks."""
    import subprocess

    from prefect.server.api import server as prefect_server
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        return
    ephemeral = prefect_server.SubprocessASGIServer()  # the instance Prefect's clients use
    if ephemeral.running:
        return

    class OwnSession(subprocess.Popen):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("start_new_session", True)
            kwargs.setdefault("preexec_fn", parent_death_signal())
            super().__init__(*args, **kwargs)

    real = prefect_server.subprocess.Popen
    prefect_server.subprocess.Popen = OwnSession  # type: ignore[misc]
    try:
        ephemeral.start()
    finally:
        prefect_server.subprocess.Popen = real  # type: ignore[misc]
