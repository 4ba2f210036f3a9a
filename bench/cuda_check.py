"""CUDA check of the transformer family, side by side with the CPU on the same machine.

Builds a MiniLM-L6-shaped BERT (6 layers, hidden 384) with random weights and a WordPiece
tokenizer trained on the bundled sample (no download), then fine-tunes it on the sample with
`device: auto` and again with `device: cpu`. Checks that auto picked CUDA with bf16 autocast,
that the GPU really held the model, and that CUDA and CPU predictions of the trained model
agree (same labels; probabilities within 1e-2). Prints a Markdown table and writes JSON;
exits non-zero when a check fails.

    python bench/cuda_check.py --out reports/bench
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def build_encoder(texts: list[str], folder: Path) -> None:
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    wordpiece = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    wordpiece.normalizer = normalizers.BertNormalizer(lowercase=True)
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    wordpiece.train_from_iterator(
        texts, trainers.WordPieceTrainer(vocab_size=2000, special_tokens=specials)
    )
    tokenizer = BertTokenizerFast(tokenizer_object=wordpiece, model_max_length=128)
    tokenizer.save_pretrained(folder)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=384, num_hidden_layers=6,
        num_attention_heads=12, intermediate_size=1536, max_position_embeddings=128,
    )  # fmt: skip
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(folder)


def run(device: str, encoder: Path, train, val, labels, epochs: int) -> dict:
    import torch

    from nlpflow.config.params import TrainParams
    from nlpflow.training.families.transformer import _training_args, fit_transformer

    params = TrainParams(
        family="transformer", pretrained=str(encoder), device=device, epochs=epochs, lr=3e-4,
        batch_size=32, max_length=64, early_stopping_patience=epochs,
    )  # fmt: skip
    args = _training_args(params, Path(tempfile.mkdtemp()), with_validation=True)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    history: list[dict] = []
    start = time.perf_counter()
    model = fit_transformer(train, val, labels=labels, params=params,
                            on_epoch=lambda e, s: history.append({"epoch": e, **s}))  # fmt: skip
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else 0.0
    return {
        "device": device, "bf16": bool(args.bf16), "fp16": bool(args.fp16), "use_cpu": bool(args.use_cpu),
        "seconds": round(seconds, 2), "texts_per_second": round(len(train[0]) * len(history) / seconds, 1),
        "peak_gpu_mib": round(peak, 1), "history": history, "model": model,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()

    import numpy as np
    import pandas as pd
    import torch

    from nlpflow.config.params import SplitParams
    from nlpflow.data.splits import split_stratified

    frame = split_stratified(pd.read_csv(ROOT / "data/sample/support_tickets.csv"), SplitParams())
    xy = {s: (g["text"].tolist(), g["label"].tolist()) for s, g in frame.groupby("split")}
    labels = sorted(set(frame["label"]))
    encoder = Path(tempfile.mkdtemp()) / "minilm-shaped"
    build_encoder(xy["train"][0], encoder)

    results = [run("auto", encoder, xy["train"], xy["validation"], labels, args.epochs)]
    results.append(run("cpu", encoder, xy["train"], xy["validation"], labels, args.epochs))
    gpu, cpu = results
    test_texts = xy["test"][0]
    on_cpu = gpu["model"].predict_proba(test_texts)
    gpu["model"].model.to("cuda" if torch.cuda.is_available() else "cpu")
    on_device = gpu["model"].predict_proba(test_texts)
    checks = {
        "cuda_available": torch.cuda.is_available(),
        "device_name": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
        "auto_picked_cuda_with_bf16": gpu["bf16"] and not gpu["use_cpu"],
        "cpu_run_is_fp32": not cpu["bf16"] and not cpu["fp16"] and cpu["use_cpu"],
        "gpu_memory_used": gpu["peak_gpu_mib"] > 0,
        # fp32 on both, but CUDA's matmul and attention kernels sum in another order
        "predict_cuda_vs_cpu_max_abs_diff": float(np.abs(on_cpu - on_device).max()),
        "predict_cuda_vs_cpu_same_label": float((on_cpu.argmax(1) == on_device.argmax(1)).mean()),
        "torch": torch.__version__,
    }
    for r in results:
        r.pop("model")
    report = {"checks": checks, "runs": results}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cuda_check.json").write_text(json.dumps(report, indent=2))
    print("| device | precision | epochs | seconds | texts/s | final val macro-F1 | peak GPU MiB |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        precision = "bf16 autocast" if r["bf16"] else "fp16" if r["fp16"] else "fp32"
        last = r["history"][-1] if r["history"] else {}
        print(f"| {r['device']} | {precision} | {len(r['history'])} | {r['seconds']} | "
              f"{r['texts_per_second']} | {last.get('val_macro_f1', float('nan')):.3f} | {r['peak_gpu_mib']} |")  # fmt: skip
    print(json.dumps(checks, indent=2))
    ok = (
        checks["auto_picked_cuda_with_bf16"]
        and checks["cpu_run_is_fp32"]
        and checks["gpu_memory_used"]
    )
    ok = ok and checks["predict_cuda_vs_cpu_max_abs_diff"] < 1e-2
    ok = ok and checks["predict_cuda_vs_cpu_same_label"] >= 0.99
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
