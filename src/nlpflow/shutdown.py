"""Clean shutdown on SIGTERM (Kubernetes, Prefect cancellation, `kill`) and SIGINT (Ctrl-C).

A stop signal ends the work in hand the way a failure does: the `except BaseException` paths
of the flows and of `nlpflow stage` close their MLflow runs, which `Tracker.end_run` marks
KILLED with the signal as the reason (`nlpflow.stopped_by`). The CLI then prints one line and
exits 128 + the signal's number, as a shell reports it. Whatever the cleanup does, the process
is gone within GRACE_SECONDS of the first signal.

    handle_stop_signals()      # the CLI, before a command runs
    watch_stop_signals()       # inside a flow, where Prefect has its own SIGTERM handler
    with signals_deferred():   # a write that must not be cut in half (dvc commit)
        ...

A base module, like nlpflow.errors: the library (tracking, serving, training, pipeline) uses it,
so it imports nothing of nlpflow and no prefect. Prefect's TerminationSignal is recognised by
name; the temporary Prefect server's own session is nlpflow.orchestration.prefect_server's.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# After the first stop signal, cleanup (closing runs, Prefect's final states, the temporary
# Prefect server's stop) gets this long; then the process exits as it is. Kubernetes waits
# 30 s before SIGKILL, the issue asks for 10 s.
GRACE_SECONDS = 8.0
STOPPED_BY_TAG = "nlpflow.stopped_by"

_state: dict[str, Any] = {"signal": None, "closed": []}
_lock = threading.Lock()


class Stopped(BaseException):
    """A stop signal arrived. A BaseException, like KeyboardInterrupt: no `except Exception`
    swallows it, and every `except BaseException` cleanup path runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


def stopped_by() -> str | None:
    """The stop signal this process received ("SIGTERM", "SIGINT"), or None."""
    signum = _state["signal"]
    return None if signum is None else signal.Signals(signum).name


def signal_of(exc: BaseException) -> int | None:
    """The stop signal behind `exc`: ours, Prefect's TerminationSignal (its SIGTERM handler
    inside a flow run) or a KeyboardInterrupt; None for any other exception."""
    if isinstance(exc, Stopped):
        return exc.signum
    if isinstance(exc, KeyboardInterrupt):
        return int(signal.SIGINT)
    if type(exc).__name__ == "TerminationSignal":  # prefect.exceptions, not imported here
        return int(getattr(exc, "signal", signal.SIGTERM))
    return None


def _record(signum: int) -> bool:
    """Note the first stop signal and start the deadline; False when one came before."""
    with _lock:
        if _state["signal"] is not None:
            return False
        _state["signal"] = signum
    threading.Thread(target=_deadline, args=(signum,), daemon=True, name="nlpflow-stop").start()
    return True


def _deadline(signum: int) -> None:
    """Exit after GRACE_SECONDS if cleanup has not ended the process by then: a tracking
    server or Prefect API that went away must not hold a stopped pod for minutes."""
    threading.Event().wait(GRACE_SECONDS)
    name = signal.Signals(signum).name
    sys.stderr.write(
        f"stopped by {name}: cleanup did not finish within {GRACE_SECONDS:.0f} s; exiting now "
        "(a run left RUNNING is closed by the next nlpflow command or `nlpflow doctor`)\n"
    )
    sys.stderr.flush()
    os._exit(128 + signum)


def _raise_stopped(signum: int, _frame: FrameType | None) -> None:
    if _record(signum):
        raise Stopped(signum)
    # a later signal (a second Ctrl-C, Prefect re-sending the SIGTERM it caught) lets the
    # cleanup under way finish; the deadline bounds it


def raise_if_stopped(*_args: Any) -> None:
    """Raise Stopped once a stop signal arrived: for work in worker threads (sweep trials),
    which a signal never interrupts; usable as a training step or epoch callback."""
    signum = _state["signal"]
    if signum is not None:
        raise Stopped(signum)


def handle_stop_signals() -> None:
    """SIGTERM and SIGINT raise Stopped in the main thread (the first one; later ones wait
    for the cleanup it started). Without this, Prefect re-sends a SIGTERM it caught to the
    default handler, and the process dies before its exit handlers stop the temporary
    Prefect server, which then lives on, orphaned."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in STOP_SIGNALS:
        signal.signal(signum, _raise_stopped)


def watch_stop_signals() -> None:
    """Inside a flow run: note a stop signal (for the run's reason) and start the deadline,
    then hand the signal to the handler in place, e.g. Prefect's, which raises its
    TerminationSignal and reports the flow run crashed or cancelled."""
    if threading.current_thread() is not threading.main_thread():
        return  # a flow run in a worker thread: signals only reach the main thread
    for signum in STOP_SIGNALS:
        previous = signal.getsignal(signum)
        if getattr(previous, "nlpflow_watch", False):
            continue  # a subflow: already watched
        signal.signal(signum, _watching(previous))


def _watching(previous: Any) -> Callable[[int, FrameType | None], None]:
    ours = previous in (_raise_stopped, signal.default_int_handler, signal.SIG_DFL)

    def watch(signum: int, frame: FrameType | None) -> None:
        if not _record(signum):
            return  # the cleanup the first signal started goes on; the deadline bounds it
        if ours or not callable(previous):
            raise Stopped(signum)
        previous(signum, frame)

    watch.nlpflow_watch = True  # type: ignore[attr-defined]
    return watch


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold stop signals while the block runs (a `dvc commit` writing dvc.lock and the cache:
    raising mid-way would kill it half-written), then raise Stopped for the first one held.
    The deadline starts when the signal arrives, not when the block ends."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach the main thread only: nothing to hold here
        return
    held: list[int] = []

    def hold(signum: int, _frame: FrameType | None) -> None:
        if _record(signum):
            held.append(signum)

    previous = {signum: signal.signal(signum, hold) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        if held:
            raise Stopped(held[0])


def stop_tags(reason: str) -> dict[str, str]:
    """Tags of an MLflow run ended by a stop signal: the reason, and a note that MLflow shows
    as the run's description."""
    return {
        STOPPED_BY_TAG: reason,
        "mlflow.note.content": f"Stopped by {reason} before it finished; rerun to resume.",
    }


def note_closed(run_id: str, status: str) -> None:
    """Remember a run closed because of a stop signal, for the CLI's last line."""
    _state["closed"].append((run_id, status))


def stop_message(signum: int) -> str:
    name = signal.Signals(signum).name
    closed = _state["closed"]
    if not closed:
        return f"stopped by {name}"
    runs = ", ".join(f"{run_id} marked {status}" for run_id, status in closed)
    return f"stopped by {name}: MLflow run {runs}; rerun to resume"


def exit_now(code: int) -> None:
    """Run the exit hooks (Prefect's: drain its events, stop its temporary server), then end
    the process without the interpreter's final garbage collection: over the objects of
    mlflow, prefect and torch that takes seconds on a busy machine, which a stopped process
    does not have."""
    import atexit
    import logging

    # Log handlers first, while the temporary Prefect server they send to still runs: the
    # exit hooks stop it before logging's own hook flushes, which then waits 5 s on a gone API
    logging.shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed pipe: nothing more to say there
            stream.flush()
    os._exit(code)


def signal_exit_reason(returncode: int) -> str | None:
    """What a subprocess's negative return code means ("stopped by SIGTERM"), else None."""
    if returncode >= 0:
        return None
    try:
        return f"stopped by {signal.Signals(-returncode).name}"
    except ValueError:
        return f"stopped by signal {-returncode}"


def parent_death_signal() -> Callable[[], Any] | None:
    """A pre-exec hook: the child gets SIGTERM when this process dies, even by SIGKILL
    (Linux's PR_SET_PDEATHSIG). None elsewhere."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)  # loaded here: the hook runs post-fork
    except OSError:
        return None
    return lambda: libc.prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
