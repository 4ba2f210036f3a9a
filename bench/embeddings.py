"""Word embeddings on MR (movie-review polarity, lower-cased): how long gensim takes to train
vectors on MR's train texts, and embeddings_logreg's test accuracy beside tfidf_logreg's, in one
run on this machine's CPU.

    python bench/embeddings.py

1. Vectors: Word2Vec skip-gram (the family's default: 100 dimensions, window 5, min_count 2,
   30 epochs, one worker), Word2Vec CBOW and FastText skip-gram, each trained on the 8,530
   train texts only; the seconds, the vocabulary, and the Spearman correlation with nlpflow's
   word-pair list (nlpflow.evaluation.word_pairs).
2. Classification: embeddings_logreg (Word2Vec with mean and with SIF pooling, FastText with
   SIF) and tfidf_logreg trained here on the train split, scored once on test. The fine-tuned
   transformer is not re-run (436 s on 2 cores): its 0.8518 is the project's own published
   result (README, "Measured": bench/quality.py), listed as such, beside tfidf_logreg's
   published 0.7908.

Prints a Markdown table and writes reports/bench/embeddings.json with a `goals` object.
"""

from __future__ import annotations

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

VECTORS: dict[str, dict[str, Any]] = {
    "word2vec skip-gram": {},
    "word2vec CBOW": {"algorithm": "cbow"},
    "fasttext skip-gram": {"source": "fasttext"},
}
# contender -> TrainParams overrides
CONTENDERS: dict[str, dict[str, Any]] = {
    "embeddings_logreg (word2vec, mean)": {
        "family": "embeddings_logreg", "embeddings": {"pooling": "mean"}
    },
    "embeddings_logreg (word2vec, sif)": {"family": "embeddings_logreg"},
    "embeddings_logreg (fasttext, sif)": {
        "family": "embeddings_logreg", "embeddings": {"source": "fasttext"}
    },
    "tfidf_logreg": {"family": "tfidf_logreg"},
}  # fmt: skip
# Published by this project earlier, not re-run here (README, "Measured"; bench/quality.py).
PUBLISHED = {"tfidf_logreg": 0.7908, "transformer (MiniLM-L6 fine-tuned)": 0.8518}
GOAL_SECONDS = 60.0


def load_split(name: str) -> tuple[list[str], list[str]]:
    import pandas as pd

    frame = pd.read_json(MR / f"{name}.jsonl", lines=True)
    return frame["text"].str.lower().tolist(), frame["label"].astype(str).tolist()


def time_vectors(name: str, update: dict[str, Any], texts: list[str]) -> dict[str, Any]:
    from nlpflow.config.params import EmbeddingsParams
    from nlpflow.evaluation.embeddings import Table, compute_word_similarity
    from nlpflow.evaluation.word_pairs import load_word_pairs
    from nlpflow.training.families.embeddings import tokenize, train_vectors

    tokens = tokenize(texts)
    start = time.perf_counter()
    vectors = train_vectors(tokens, EmbeddingsParams(**update), seed=13)
    seconds = time.perf_counter() - start
    similarity, _ = compute_word_similarity(Table(vectors.words, vectors.matrix), load_word_pairs())
    return {
        "vectors": name, "seconds": round(seconds, 1), "vocab": len(vectors.words),
        "tokens": sum(map(len, tokens)), **similarity,
    }  # fmt: skip


def classify(name: str, overrides: dict[str, Any], splits: dict[str, Any]) -> dict[str, Any]:
    from nlpflow.config.params import TrainParams
    from nlpflow.evaluation.metrics import compute_metrics
    from nlpflow.training.families import predict_labels
    from nlpflow.training.train import fit

    params = TrainParams.model_validate({"device": "cpu", **overrides})
    labels = sorted(set(splits["train"][1]))
    start = time.perf_counter()
    model = fit(splits["train"], splits["validation"], labels=labels, params=params)
    seconds = time.perf_counter() - start
    predicted, _ = predict_labels(model, splits["test"][0])
    m = compute_metrics(splits["test"][1], predicted, labels)
    return {
        "contender": name, "test_accuracy": round(m["accuracy"], 4),
        "test_macro_f1": round(m["macro_f1"], 4), "train_seconds": round(seconds, 1),
        "source": "measured in this run",
    }  # fmt: skip


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    splits = {name: load_split(name) for name in ("train", "validation", "test")}
    vectors = [time_vectors(name, update, splits["train"][0]) for name, update in VECTORS.items()]
    results = [classify(name, overrides, splits) for name, overrides in CONTENDERS.items()]
    published = [
        {"contender": name, "test_accuracy": accuracy, "test_macro_f1": None,
         "train_seconds": None, "source": "published by nlpflow (README; bench/quality.py)"}
        for name, accuracy in PUBLISHED.items()
    ]  # fmt: skip
    rows = results + published
    names = {row["contender"] for row in rows}
    goals = {
        "word2vec_trains_under_60s": vectors[0]["seconds"] < GOAL_SECONDS,
        "reported_beside_tfidf_and_transformer": any(
            n.startswith("embeddings_logreg") for n in names
        )
        and "tfidf_logreg" in names
        and any(n.startswith("transformer") for n in names),
    }
    machine = f"{platform.machine()}, {os.cpu_count()} cores ({platform.processor() or 'cpu'})"
    sizes = {name: len(xy[0]) for name, xy in splits.items()}
    out = ROOT / "reports" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "embeddings.json").write_text(json.dumps(
        {"dataset": "MR", "sizes": sizes, "machine": machine, "vectors": vectors,
         "results": rows, "goals": goals}, indent=2,
    ))  # fmt: skip
    print(f"MR {sizes}, {machine}\n")
    print(
        "| vectors (MR train texts) | seconds | vocabulary | tokens | word-pair Spearman (pairs) |"
    )
    print("|---|---:|---:|---:|---|")
    for v in vectors:
        print(f"| {v['vectors']} | {v['seconds']} | {v['vocab']:,} | {v['tokens']:,} | "
              f"{v['word_sim_spearman']} ({v['word_sim_pairs']}/{v['word_sim_total']}) |")  # fmt: skip
    print("\n| contender | test accuracy | test macro-F1 | train s | where from |")
    print("|---|---:|---:|---:|---|")
    for r in rows:
        f1 = "–" if r["test_macro_f1"] is None else f"{r['test_macro_f1']:.4f}"
        seconds = "–" if r["train_seconds"] is None else r["train_seconds"]
        print(f"| {r['contender']} | {r['test_accuracy']:.4f} | {f1} | {seconds} | {r['source']} |")
    print("\ngoals: " + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in goals.items()))


if __name__ == "__main__":
    main()
