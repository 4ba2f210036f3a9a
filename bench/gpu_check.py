"""The Python half of bench/gpu_check.sh: one epoch of MR on CUDA in bf16 through nlpflow's
train stage, then tokens/s, MFU (against the bf16 matmul FLOP/s measured in this run, by the
train stage itself) and test accuracy.

    python bench/gpu_check.py --data ../shared/datasets/mr/splits
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/datasets/mr/splits")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench")
    args = parser.parse_args()

    import pandas as pd
    import torch

    from nlpflow.config.params import TrainParams
    from nlpflow.evaluation.metrics import compute_metrics
    from nlpflow.training.families import predict_labels
    from nlpflow.training.train import fit

    if not torch.cuda.is_available():
        sys.exit("no CUDA device visible: this check needs a GPU")

    def load(split: str) -> tuple[list[str], list[str]]:
        frame = pd.read_json(args.data / f"{split}.jsonl", lines=True)
        return frame["text"].str.lower().tolist(), frame["label"].astype(str).tolist()

    train, val, test = load("train"), load("validation"), load("test")
    params = TrainParams(
        family="transformer", device="cuda", epochs=1, batch_size=args.batch_size,
        max_length=128, lr=1e-4, early_stopping_patience=1,
    )  # fmt: skip
    start = time.perf_counter()
    model = fit(train, val, labels=["0", "1"], params=params)
    wall = time.perf_counter() - start
    predicted, _ = predict_labels(model, test[0])
    accuracy = compute_metrics(test[1], predicted, ["0", "1"])["accuracy"]
    perf, device = model.perf or {}, model.device or {}
    result = {
        "date": datetime.now(UTC).date().isoformat(), "gpu": device.get("gpu"),
        "torch": device.get("torch"), "cuda": device.get("cuda"), "train_rows": len(train[0]),
        "batch_size": args.batch_size, "wall_seconds": round(wall, 1),
        "tokens_per_second": round(perf["tokens_per_second"]),
        "examples_per_second": round(perf["examples_per_second"], 1),
        "bf16_matmul_tflops": round(perf["matmul_flops_per_second"] / 1e12, 1),
        "train_tflops": round(perf["train_flops_per_second"] / 1e12, 2),
        "mfu": round(perf["mfu"], 4), "peak_memory_mb": round(perf["peak_memory_mb"]),
        "test_accuracy": round(accuracy, 4),
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.json").write_text(json.dumps(result, indent=2))
    print("| " + " | ".join(result) + " |")
    print("|" + "---|" * len(result))
    print("| " + " | ".join(str(v) for v in result.values()) + " |")


if __name__ == "__main__":
    main()
