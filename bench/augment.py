"""Does EDA augmentation help? nlpflow's tfidf_logreg on MR (lower-cased), trained with
`train.augment` off and on, on the full train split and on small stratified subsets (where
augmentation is said to help most), several seeds, side by side in one run.

    python bench/augment.py [--sizes 500 2000 full] [--seeds 5]

Prints a Markdown table of test accuracy and seconds and writes reports/bench/augment.json.
The WordNet setting runs only where `pip install -e ".[augment]"` brought the WordNet files.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
MR = ROOT.parent / "shared/datasets/mr/splits"

SETTINGS: dict[str, dict[str, Any]] = {
    "off": {"enabled": False},
    "EDA swap/delete/insert, n_aug=4, alpha=0.1": {
        "enabled": True, "n_aug": 4, "alpha": 0.1, "ops": ["swap", "delete", "insert"],
    },
    "EDA + WordNet synonyms, n_aug=4, alpha=0.1": {
        "enabled": True, "n_aug": 4, "alpha": 0.1,
        "ops": ["swap", "delete", "insert", "synonym"], "synonyms": "wordnet",
    },
}  # fmt: skip


def load_mr() -> dict[str, tuple[list[str], list[str]]]:
    import pandas as pd

    out = {}
    for split in ("train", "validation", "test"):
        frame = pd.read_json(MR / f"{split}.jsonl", lines=True)
        out[split] = (frame["text"].str.lower().tolist(), frame["label"].astype(str).tolist())
    return out


def subset(data: tuple[list[str], list[str]], size: int, seed: int) -> tuple[list[str], list[str]]:
    """A stratified sample of `size` rows, a different one per seed."""
    from sklearn.model_selection import train_test_split

    texts, labels = data
    if size >= len(texts):
        return data
    picked, _, picked_labels, _ = train_test_split(
        texts, labels, train_size=size, stratify=labels, random_state=seed
    )
    return list(picked), list(picked_labels)


def run_one(
    data: dict[str, tuple[list[str], list[str]]],
    train_xy: tuple[list[str], list[str]],
    *,
    setting: dict[str, Any],
    seed: int,
    synonyms: Any,
) -> dict[str, Any]:
    import numpy as np

    from nlpflow.config.params import AugmentParams, TrainParams
    from nlpflow.data.augment import augment_texts
    from nlpflow.training.train import fit

    params = TrainParams(family="tfidf_logreg", seed=seed, augment=AugmentParams(**setting))
    start = time.perf_counter()
    texts, labels = train_xy
    added = 0
    if params.augment.enabled:  # the same rows train() would add, with the lexicon loaded once
        new_texts, new_labels = augment_texts(
            texts, labels, params=params.augment, seed=seed, synonyms=synonyms
        )
        texts, labels, added = texts + new_texts, labels + new_labels, len(new_texts)
    augment_s = time.perf_counter() - start
    label_set = sorted(set(labels))
    model = fit((texts, labels), data["validation"], labels=label_set, params=params)
    seconds = time.perf_counter() - start
    test_texts, test_labels = data["test"]
    predicted = np.asarray(label_set)[model.predict_proba(test_texts).argmax(axis=1)]
    accuracy = float(np.mean(predicted == np.asarray(test_labels)))
    return {"added_rows": added, "augment_s": augment_s, "seconds": seconds, "accuracy": accuracy}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", nargs="+", default=["500", "2000", "full"])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench")
    args = parser.parse_args()

    from nlpflow.data.augment import WORDNET, load_synonyms
    from nlpflow.errors import ModelError

    data = load_mr()
    try:
        start = time.perf_counter()
        wordnet = load_synonyms(WORDNET)
        wordnet_s = time.perf_counter() - start
    except ModelError as exc:
        print(f"skipping the WordNet setting: {exc}\n")
        wordnet, wordnet_s = None, 0.0
    results = []
    for size in args.sizes:
        n = len(data["train"][0]) if size == "full" else int(size)
        for seed in range(args.seeds):
            train_xy = subset(data["train"], n, seed)
            for name, setting in SETTINGS.items():
                if setting.get("synonyms") == WORDNET and wordnet is None:
                    continue
                synonyms = wordnet if setting.get("synonyms") == WORDNET else None
                run = run_one(data, train_xy, setting=setting, seed=seed, synonyms=synonyms)
                results.append({"train_rows": n, "seed": seed, "setting": name, **run})
                print(f"  {n} rows, seed {seed}, {name}: {run['accuracy']:.4f}", file=sys.stderr)

    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    summary = summarise(results)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "augment.json").write_text(
        json.dumps(
            {"machine": machine, "seeds": args.seeds, "wordnet_load_s": round(wordnet_s, 2),
             "summary": summary, "runs": results},
            indent=2,
        )
    )  # fmt: skip
    print(f"MR test split ({len(data['test'][0])} texts), tfidf_logreg, {machine}, ", end="")
    print(f"{args.seeds} seeds (mean ± sd); WordNet loaded once in {wordnet_s:.1f} s; ", end="")
    print("seconds = augmentation + fit\n")
    print("| train rows | augmentation | rows added | test accuracy | gain over off (paired) "
          "| seeds better / worse | seconds |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for row in summary:
        paired = f"{row['gain']:+.4f} ± {row['gain_sd']:.4f} | {row['wins']} / {row['losses']}"
        print(
            f"| {row['train_rows']:,} | {row['setting']} | {row['added_rows']:,} | "
            f"{row['accuracy']:.4f} ± {row['accuracy_sd']:.4f} | "
            f"{'— | —' if row['setting'] == 'off' else paired} | {row['seconds']:.1f} |"
        )


def summarise(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per size and setting: mean accuracy and, paired by seed (same subset), the gain over off."""
    off = {(r["train_rows"], r["seed"]): r["accuracy"] for r in results if r["setting"] == "off"}
    rows = []
    for n in dict.fromkeys(r["train_rows"] for r in results):
        for name in dict.fromkeys(r["setting"] for r in results):
            runs = [r for r in results if r["train_rows"] == n and r["setting"] == name]
            gains = [r["accuracy"] - off[n, r["seed"]] for r in runs]
            rows.append(
                {
                    "train_rows": n,
                    "setting": name,
                    "added_rows": round(statistics.mean(r["added_rows"] for r in runs)),
                    "accuracy": statistics.mean(r["accuracy"] for r in runs),
                    "accuracy_sd": _sd([r["accuracy"] for r in runs]),
                    "gain": statistics.mean(gains),
                    "gain_sd": _sd(gains),
                    "wins": sum(g > 0 for g in gains),
                    "losses": sum(g < 0 for g in gains),
                    "seconds": statistics.mean(r["seconds"] for r in runs),
                }
            )
    return rows


def _sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


if __name__ == "__main__":
    main()
