"""progress: what a person watching a training sees, for every model family.

On an interactive console (stderr is a terminal) a rich progress bar shows the epoch, the step,
the loss, examples/s and the ETA; elsewhere (`dvc repro` into a file, a Prefect worker, CI) INFO
lines on the `nlpflow.training.train` logger say the same at most every NLPFLOW_PROGRESS_SECONDS.
Either way these lines are logged: the start, a resume from a checkpoint, each epoch's end,
and the end:

    training transformer on 510 examples (4 epochs, 128 steps) on cpu
    resumed from checkpoint checkpoint-64 (epoch 3/4, step 64/128)
    epoch 3/4 · step 96/128 · loss 0.412 · val macro_f1 0.873 · 118 examples/s · ETA 0:00:41
    trained in 56.2 s (best epoch 3, val macro_f1 0.912)

The library adds no handler: the CLI stage runner shows `nlpflow` records on stderr, and
Prefect's PREFECT_LOGGING_EXTRA_LOGGERS sends them to the flow run's log.
"""

from __future__ import annotations

import logging
import math
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from types import TracebackType
from typing import Any

log = logging.getLogger("nlpflow.train")

# One bar at a time per process: rich draws one live display per console, and parallel
# trainings (sweep trials in threads) would overwrite each other's bar. The others log lines.
_BAR = threading.Lock()


def show_info_lines() -> logging.Logger:
    """Let nlpflow's INFO lines (this progress) through whatever handler shows them: left
    unset, the `nlpflow` logger inherits the root's WARNING and drops them. Called by the
    runners (the CLI stage, the Prefect flows), never at import."""
    library = logging.getLogger("nlpflow")
    if library.level == logging.NOTSET:
        library.setLevel(logging.INFO)
    return library


def default_interval() -> float:
    from nlpflow.config.settings import load_settings

    return load_settings().progress_seconds


class TrainingProgress:
    """Told where training stands (`begin`, `step`, `epoch_end`, `finish`); says it to people.

    Throughput and ETA count only the steps trained by this process since `begin`: after a
    resume, the steps done before the crash took no time here. examples/s is the training's
    own speed: the time from a step's end to the epoch's end (evaluation) or to `idle` (a
    checkpoint saved) is left out. The ETA takes all the time so far, evaluations included, as the remaining epochs
    evaluate too; it assumes every epoch runs (early stopping may end sooner).
    """

    def __init__(
        self,
        family: str,
        *,
        metric: str = "macro_f1",
        interval: float | None = None,
        bar: bool | None = None,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.family, self.metric, self.enabled, self.clock = family, metric, enabled, clock
        self.interval = default_interval() if interval is None else interval
        self.want_bar = sys.stderr.isatty() if bar is None else bar
        self.created = clock()
        self.examples, self.epochs, self.steps = 0, 0, 0
        self.first_step = 0  # global step at begin: > 0 after a resume
        self.step_now = 0
        self.loss: float | None = None
        self.val: float | None = None  # the latest epoch's validation metric
        self.began = self.last_line = self.mark = self.created
        self.train_seconds = 0.0  # between steps only: evaluation and saving left out
        self._bar: Any = None  # rich Progress while one is shown
        self._task: Any = None

    def begin(
        self,
        *,
        examples: int,
        epochs: int = 0,
        steps: int = 0,
        device: str | None = None,
        resumed: tuple[str, int] | None = None,
    ) -> None:
        """Training starts: `steps` optimizer steps in all (0: one closed-form fit);
        `resumed` is (checkpoint name, its global step) when it continues a crashed run."""
        self.examples, self.epochs, self.steps = examples, epochs, steps
        self.first_step = self.step_now = resumed[1] if resumed else 0
        self.began = self.last_line = self.mark = self.clock()
        self.train_seconds = 0.0
        plan = f" ({epochs} epochs, {steps} steps)" if steps else ""
        on = f" on {device}" if device else ""
        self._info("start", f"training {self.family} on {examples} examples{plan}{on}")
        if resumed:
            at = f"epoch {self._epoch_of(resumed[1] + 1)}/{epochs}, step {resumed[1]}/{steps}"
            self._info("resumed", f"resumed from checkpoint {resumed[0]} ({at})")
        if steps and self.want_bar and self.enabled and _BAR.acquire(blocking=False):
            self._start_bar()

    def step(self, step: int, *, loss: float | None = None) -> None:
        """Optimizer step `step` (global, counted from 1) is done; `loss` the latest logged."""
        now = self.clock()
        self.train_seconds += now - self.mark
        self.step_now, self.mark = step, now
        if loss is not None:
            self.loss = loss
        if self._bar is not None:
            self._bar.update(self._task, completed=step, **self._bar_fields())
        elif now - self.last_line >= self.interval:
            self._info("step", self._line(self._epoch_of(step), self.loss))

    def epoch_end(self, epoch: int, scores: dict[str, float]) -> None:
        """Epoch `epoch` (from 1) ended; `scores` holds train_loss and val_* when measured."""
        self.val = scores.get(f"val_{self.metric}", self.val)
        self.idle()  # the time since the last step went to evaluating
        self._info("epoch", self._line(epoch, scores.get("train_loss", self.loss)))

    def idle(self) -> None:
        """The time since the last step was not training (evaluating, saving a checkpoint):
        leave it out of examples/s."""
        self.mark = self.clock()

    def finish(self, history: list[dict[str, float]] | None = None) -> None:
        """Training ended; `history` is its per-epoch rows (`epoch`, `val_<metric>`, ...)."""
        self.close()
        rows = [r for r in history or [] if f"val_{self.metric}" in r]
        best = max(rows, key=lambda r: r[f"val_{self.metric}"], default=None)
        detail = ""
        if best is not None:
            score = f"val {self.metric} {best[f'val_{self.metric}']:.3f}"
            many = len(history or []) > 1
            detail = f" (best epoch {int(best['epoch'])}, {score})" if many else f" ({score})"
        self._info("done", f"trained in {self.clock() - self.created:.1f} s{detail}")

    def close(self) -> None:
        """Take the bar down (also on errors); safe to call twice."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
            _BAR.release()

    def __enter__(self) -> TrainingProgress:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def rate(self) -> float | None:
        """Examples per second trained by this process, None before its first step."""
        done, seconds = self.step_now - self.first_step, self.train_seconds
        if done <= 0 or seconds <= 0 or not self.steps:
            return None
        per_step = self.examples * self.epochs / self.steps  # the last batch may be short
        return done * per_step / seconds

    def eta(self) -> float | None:
        done, seconds = self.step_now - self.first_step, self.clock() - self.began
        if done <= 0 or seconds <= 0:
            return None
        return max(self.steps - self.step_now, 0) * seconds / done

    def _epoch_of(self, step: int) -> int:
        per_epoch = math.ceil(self.steps / max(self.epochs, 1)) or 1
        return min(max(math.ceil(step / per_epoch), 1), max(self.epochs, 1))

    def _line(self, epoch: int, loss: float | None) -> str:
        parts = [f"epoch {epoch}/{self.epochs}", f"step {self.step_now}/{self.steps}"]
        if loss is not None:
            parts.append(f"loss {loss:.3f}")
        if self.val is not None:
            parts.append(f"val {self.metric} {self.val:.3f}")
        return " · ".join(parts + self._speed())

    def _speed(self) -> list[str]:
        rate, eta = self.rate(), self.eta()
        out = (
            [f"{rate:.0f} examples/s" if rate >= 100 else f"{rate:.1f} examples/s"] if rate else []
        )
        return out + ([f"ETA {timedelta(seconds=round(eta))}"] if eta is not None else [])

    def _info(self, kind: str, message: str) -> None:
        """Log `message`; its record's `nlpflow_progress` says which kind of line it is
        (start, resumed, step, epoch, done), for handlers that want some only."""
        self.last_line = self.clock()
        if not self.enabled:
            return
        # A handler writing to the terminal while the bar is drawn would tear it: the bar
        # (transient) steps aside for the line and is drawn again below it.
        live = self._bar is not None
        if live:
            self._bar.stop()
        log.info(message, extra={"nlpflow_progress": kind})
        if live:
            self._bar.start()

    def _start_bar(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self._bar = Progress(
            TextColumn("epoch {task.fields[epoch]}"), BarColumn(bar_width=16), MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            console=Console(stderr=True), transient=True,
        )  # fmt: skip
        self._task = self._bar.add_task(
            self.family, total=self.steps, completed=self.step_now, **self._bar_fields()
        )
        self._bar.start()

    def _bar_fields(self) -> dict[str, str]:
        # no validation metric: the epoch lines above the bar give it, and 80 columns fit
        loss = [f"loss {self.loss:.3f}"] if self.loss is not None else []
        epoch = f"{self._epoch_of(self.step_now + 1)}/{self.epochs}"
        return {"epoch": epoch, "stats": " · ".join(loss + self._speed())}
