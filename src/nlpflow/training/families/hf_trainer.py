"""The Hugging Face Trainer's plumbing for the transformer family: the device and the
TrainingArguments from train params, the length-grouped batch sampler, the callbacks that
report progress, steps and epochs, and the per-epoch history read back from the Trainer's log
(which checkpoints keep, so a resumed run has every epoch). The model and its fit are
nlpflow.training.families.transformer.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from transformers import TrainerCallback

from nlpflow.config.params import TrainParams
from nlpflow.errors import ModelError
from nlpflow.training.families import EpochCallback
from nlpflow.training.progress import TrainingProgress

StepCallback = Callable[[int, dict[str, float]], None]


def pick_device(choice: str) -> str:
    import torch

    if choice == "cuda" and not torch.cuda.is_available():
        raise ModelError("train.device=cuda but no CUDA device is visible; use auto or cpu.")
    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return choice


def _training_args(
    params: TrainParams, workdir: Path, *, with_validation: bool, metric: str = "macro_f1"
) -> Any:
    import torch
    from transformers import TrainingArguments

    device = pick_device(params.device)
    cuda = device == "cuda"
    bf16 = cuda and torch.cuda.is_bf16_supported()
    every = params.checkpoints.every_steps
    # fused AdamW on CPU too: 11 ms a step instead of 58 for MiniLM-L6 (22.7M weights) on 2 cores
    optim = {"adamw": "adamw_torch_fused", "adafactor": "adafactor",
             "sgd": "sgd"}[params.optimizer]  # fmt: skip
    return TrainingArguments(
        output_dir=str(workdir),
        num_train_epochs=params.epochs,
        per_device_train_batch_size=params.batch_size,
        per_device_eval_batch_size=params.eval_batch_size,
        gradient_accumulation_steps=params.grad_accum,
        learning_rate=params.lr,
        weight_decay=params.weight_decay,
        warmup_steps=params.warmup_ratio,  # a float below 1 is a share of all steps
        lr_scheduler_type={
            "linear": "linear",
            "cosine": "cosine",
            "constant": "constant_with_warmup",
        }[params.scheduler],
        optim=optim,
        optim_args=f"momentum={params.momentum}" if params.optimizer == "sgd" else None,
        seed=params.seed,
        data_seed=params.seed,
        use_cpu=not cuda,
        bf16=bf16,  # never on CPU: bf16 matmuls there are ~200x slower than fp32
        fp16=cuda and not bf16,  # with loss scaling (the Trainer's GradScaler)
        dataloader_pin_memory=cuda,
        torch_compile=params.compile,
        eval_strategy="epoch" if with_validation else "no",
        save_strategy="steps" if every else "epoch",
        save_steps=every or 500,
        save_total_limit=params.checkpoints.keep,
        metric_for_best_model=metric if with_validation else None,
        greater_is_better=True,
        restore_callback_states_from_checkpoint=True,  # early stopping's patience survives resume
        logging_strategy="steps",
        logging_steps=params.log_every_steps,
        include_num_input_tokens_seen="non_padding",
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        ddp_backend=None if params.distributed.backend == "auto" else params.distributed.backend,
    )


@dataclass
class TrainerRun:
    """A finished Trainer run: the best epoch's weights (on the CPU) and what the report keeps."""

    model: Any
    history: list[dict[str, float]]
    resumed_from: str | None  # the checkpoint a crashed run was resumed from
    perf: dict[str, float]
    device: dict[str, str]


def speaker(family: str, metric: str = "macro_f1") -> TrainingProgress:
    # only the first process of a torchrun speaks: the others train the same steps
    return TrainingProgress(family, metric=metric, enabled=os.environ.get("RANK", "0") == "0")


class LengthGroupedSampler:
    """Batches of texts of similar length, so little padding is computed, in a random order.

    Shuffle, cut into mega-batches of up to 50 batches, sort each by length, cut into batches, shuffle
    the batches. The order depends only on (seed, epoch): a run resumed mid-epoch sees the same
    batches as one never interrupted. transformers' own LengthGroupedSampler draws from the
    global RNG, which a resume restores to its mid-epoch state, so the resumed epoch differed.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int) -> None:
        self.lengths, self.batch_size, self.seed, self.epoch = list(lengths), batch_size, seed, 0

    def set_epoch(self, epoch: int) -> None:  # called by accelerate's data loader
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Any:
        import torch

        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(len(self.lengths), generator=generator).tolist()
        # up to 50 batches a mega-batch, but at least 4 mega-batches: on small data one sorted
        # mega-batch would make every batch a length bucket (and often a class bucket)
        mega = self.batch_size * max(1, min(50, len(order) // (self.batch_size * 4)))
        batches = []
        for start in range(0, len(order), mega):
            chunk = sorted(order[start : start + mega], key=lambda i: -self.lengths[i])
            batches += [
                chunk[k : k + self.batch_size] for k in range(0, len(chunk), self.batch_size)
            ]
        full = [b for b in batches if len(b) == self.batch_size]
        short = [b for b in batches if len(b) < self.batch_size]  # last, or batches misalign
        shuffled = [full[i] for i in torch.randperm(len(full), generator=generator).tolist()]
        return iter([i for batch in [*shuffled, *short] for i in batch])


class _SaveAtEpochEnd(TrainerCallback):
    """Checkpoint at every epoch end too when checkpoints otherwise come every N steps."""

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kw: Any) -> Any:
        control.should_save = True
        return control


class _ShowProgress(TrainerCallback):
    """The Trainer's events to a TrainingProgress: a bar or log lines for people watching."""

    def __init__(self, progress: TrainingProgress, *, examples: int, device: str) -> None:
        self.progress, self.examples, self.device = progress, examples, device
        self.checkpoint: str | None = None  # the checkpoint this training resumes from
        self.loss: float | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        # the state is restored by now: a resumed run's global step is the checkpoint's
        where = f"{args.world_size} × {self.device}" if args.world_size > 1 else self.device
        resumed = (self.checkpoint, state.global_step) if self.checkpoint else None
        self.progress.begin(
            examples=self.examples, epochs=math.ceil(state.num_train_epochs),
            steps=state.max_steps, device=where, resumed=resumed,
        )  # fmt: skip

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
        if logs and "loss" in logs:  # every log_every_steps; the step's own loss is not kept
            self.loss = float(logs["loss"])

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.progress.step(state.global_step, loss=self.loss)

    def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.progress.idle()  # writing a checkpoint is not training speed

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if args.eval_strategy == "no":  # no evaluation to wait for: the epoch is complete
            self._epoch(state)

    def on_evaluate(
        self, args: Any, state: Any, control: Any, metrics: Any = None, **kw: Any
    ) -> None:
        self._epoch(state)

    def _epoch(self, state: Any) -> None:
        epoch = round(state.epoch or 0)
        row = next((r for r in history_from_log(state.log_history) if r["epoch"] == epoch), {})
        self.progress.epoch_end(epoch, row)


class _Reporter(TrainerCallback):
    """Per-step loss, learning rate and tokens/s to `on_step`; each epoch's row of
    `history_from_log` (mean train loss, validation metrics) to `on_epoch`."""

    def __init__(self, on_epoch: EpochCallback | None, on_step: StepCallback | None) -> None:
        self.on_epoch, self.on_step = on_epoch, on_step
        self.last: tuple[float, int] | None = None  # (time, tokens seen) at the previous log
        self.start: tuple[float, int, int] = (time.perf_counter(), 0, 0)  # time, tokens, step
        self.end: tuple[float, int, int] = self.start
        self.eval_seconds = 0.0
        self.eval_started: float | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        # after a resume the state holds the tokens and steps done before the crash
        self.start = (time.perf_counter(), int(state.num_input_tokens_seen or 0), state.global_step)

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.eval_started = time.perf_counter()  # evaluation follows the epoch's end
        if args.eval_strategy == "no":  # no evaluation to wait for: the epoch is complete
            self._emit(state)

    def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.end = (time.perf_counter(), int(state.num_input_tokens_seen or 0), state.global_step)

    def summary(
        self,
        *,
        flops_per_token: Callable[[float], float],
        peak_flops: float,
        examples_per_step: int,
    ) -> dict[str, float]:
        """Throughput of this process's training, evaluation time left out. FLOPs per token
        depend on the sequence length (attention): taken at the mean real length."""
        seconds = max(self.end[0] - self.start[0] - self.eval_seconds, 1e-9)
        tokens = self.end[1] - self.start[1]
        examples = (self.end[2] - self.start[2]) * examples_per_step
        useful = flops_per_token(tokens / max(examples, 1)) * tokens / seconds
        return {
            "train_seconds_net": seconds,
            "tokens_per_second": tokens / seconds,
            "examples_per_second": examples / seconds,
            "train_flops_per_second": useful,
            "matmul_flops_per_second": peak_flops,
            "mfu": useful / peak_flops,
        }

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
        if not logs or "loss" not in logs:
            return
        now, seen = time.perf_counter(), int(state.num_input_tokens_seen or 0)
        metrics = {"train_loss": float(logs["loss"]),
                   "learning_rate": float(logs.get("learning_rate", 0.0))}  # fmt: skip
        if self.last is not None and now > self.last[0]:
            metrics["tokens_per_second"] = (seen - self.last[1]) / (now - self.last[0])
        self.last = (now, seen)
        if self.on_step is not None:
            self.on_step(state.global_step, metrics)

    def on_evaluate(
        self, args: Any, state: Any, control: Any, metrics: Any = None, **kw: Any
    ) -> None:
        if self.eval_started is not None:
            self.eval_seconds += time.perf_counter() - self.eval_started
            self.eval_started = None
        self._emit(state)  # the Trainer logged the metrics before calling this

    def _emit(self, state: Any) -> None:
        if self.on_epoch is None:
            return
        epoch = round(state.epoch or 0)
        rows = history_from_log(state.log_history)
        row = next((r for r in rows if r["epoch"] == epoch), {})
        self.on_epoch(epoch, {k: v for k, v in row.items() if k != "epoch"})


def history_from_log(log_history: list[dict[str, Any]]) -> list[dict[str, float]]:
    """Per-epoch rows from the Trainer's log (kept in checkpoints, so a resumed run still has
    the epochs before the crash): mean train loss of the epoch and its validation metrics."""
    rows: dict[int, dict[str, float]] = {}
    losses: dict[int, list[float]] = {}
    for entry in log_history:
        epoch = int(np.ceil(entry.get("epoch", 0) - 1e-9)) or 1
        if "loss" in entry:
            losses.setdefault(epoch, []).append(float(entry["loss"]))
        for key in ("eval_loss", "eval_accuracy", "eval_macro_f1", "eval_entity_f1"):
            if key in entry:
                rows.setdefault(epoch, {})[f"val_{key.removeprefix('eval_')}"] = float(entry[key])
    out = []
    for epoch in sorted(set(rows) | set(losses)):
        row: dict[str, float] = {"epoch": float(epoch)}
        if epoch in losses:
            row["train_loss"] = sum(losses[epoch]) / len(losses[epoch])
        out.append(row | rows.get(epoch, {}))
    return out
