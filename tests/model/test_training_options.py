"""The transformer engine's options reach the Trainer as meant, and each runs for real."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nlpflow.config.params import TrainParams
from nlpflow.training.families.transformer import (
    LengthGroupedSampler,
    _training_args,
    class_weights,
)
from tests.conftest import SAMPLE


def _args(tmp_path: Path, **params: object):  # type: ignore[no-untyped-def]
    return _training_args(TrainParams(**params), tmp_path, with_validation=True)


def test_optimizers_schedules_and_accumulation_map_to_the_trainer(tmp_path: Path) -> None:
    adamw = _args(tmp_path)
    assert (adamw.optim, adamw.lr_scheduler_type, adamw.gradient_accumulation_steps) == (
        "adamw_torch_fused", "linear", 1,
    )  # fmt: skip
    sgd = _args(tmp_path, optimizer="sgd", momentum=0.8, scheduler="cosine", grad_accum=4)
    assert (sgd.optim, sgd.lr_scheduler_type, sgd.gradient_accumulation_steps) == (
        "sgd", "cosine", 4,
    )  # fmt: skip
    assert sgd.optim_args == "momentum=0.8"
    constant = _args(tmp_path, optimizer="adafactor", scheduler="constant")
    assert (constant.optim, constant.lr_scheduler_type) == ("adafactor", "constant_with_warmup")


def test_cpu_training_never_autocasts_and_checkpoints_follow_params(tmp_path: Path) -> None:
    from nlpflow.config.params import CheckpointParams

    args = _args(tmp_path, device="cpu", checkpoints=CheckpointParams(every_steps=50, keep=3))
    assert (args.bf16, args.fp16, args.dataloader_pin_memory) == (False, False, False)
    assert (args.save_strategy, args.save_steps, args.save_total_limit) == ("steps", 50, 3)
    assert args.eval_strategy == "epoch" and args.restore_callback_states_from_checkpoint
    assert _args(tmp_path).save_strategy == "epoch"


def test_balanced_class_weights() -> None:
    weights = class_weights([0, 0, 0, 1], 3).tolist()
    # 4 rows, 3 classes: 4/(3*3), 4/(3*1); an absent class gets the cap of one row
    assert weights == pytest.approx([4 / 9, 4 / 3, 4 / 3])


def test_length_grouped_sampler_is_a_seeded_permutation_with_less_padding() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 120, size=2000).tolist()
    sampler = LengthGroupedSampler(lengths, batch_size=16, seed=13)
    first = list(sampler)
    assert sorted(first) == list(range(2000))
    assert list(sampler) == first  # same epoch, same order
    sampler.set_epoch(1)
    second = list(sampler)
    assert second != first and sorted(second) == list(range(2000))

    def padded(order: list[int]) -> int:
        return sum(
            max(lengths[i] for i in order[k : k + 16]) * len(order[k : k + 16])
            for k in range(0, len(order), 16)
        )

    shuffled = rng.permutation(2000).tolist()
    assert padded(first) < 0.7 * padded(shuffled)  # far less padding than random batches


def test_weighted_loss_sgd_cosine_and_accumulation_train_for_real(tiny_encoder: Path) -> None:
    from nlpflow.training.families import predict_labels
    from nlpflow.training.train import fit

    frame = pd.read_csv(SAMPLE)
    # imbalanced on purpose: 60 billing rows, 12 of each other class
    parts = [frame[frame["label"] == "billing"].head(60)] + [
        frame[frame["label"] == c].head(12) for c in ("account", "shipping", "technical")
    ]
    data = pd.concat(parts)
    xy = (data["text"].tolist(), data["label"].tolist())
    params = TrainParams(
        family="transformer", pretrained=str(tiny_encoder), epochs=2, batch_size=8, lr=5e-2,
        max_length=32, optimizer="sgd", scheduler="cosine", grad_accum=2,
        class_weights="balanced", trainable_layers=1,
    )  # fmt: skip
    history: list[int] = []
    model = fit(xy, xy, labels=sorted(set(xy[1])), params=params,
                on_epoch=lambda e, s: history.append(e))  # fmt: skip
    assert history == [1, 2]
    predicted, proba = predict_labels(model, xy[0][:10])
    assert proba.shape == (10, 4) and len(predicted) == 10
