"""Sub-phrase leak search at SST-2's size and beyond: nlpflow.data.subphrase (word-run hashes,
numpy) side by side with the plain way (each validation/test text looked for with `in` in each
train text, on a slice, scaled up).

Synthetic SST-2-like data: sentences of 8-30 words, each followed by phrases cut from it (as
SST-2's train file holds them); 10% of rows drawn for validation and 10% for test.

    python bench/subphrase.py [--sentences 8000] [--streamed]

--streamed also times validate's first pass chunk by chunk (the TextSketch, 50,000 rows a
chunk) on the same rows as Parquet splits: with and without the sub-phrase scan of train.

Prints a Markdown table and writes reports/bench/subphrase.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def sst2_like(sentences: int, seed: int = 0) -> list[str]:
    """Sentences and their phrases: about 8.4 rows a sentence (SST-2: 67k rows, ~8k sentences)."""
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(20_000)]
    rows: list[str] = []
    for _ in range(sentences):
        words = rng.choices(vocab, k=rng.randint(8, 30))
        rows.append(" ".join(words))
        for _ in range(7):
            a = rng.randrange(len(words))
            b = rng.randint(a + 1, len(words))
            rows.append(" ".join(words[a:b]))
    return rows


def bench_streamed(rows: list[str], held: set[int]) -> dict[str, float]:
    """validate's first pass in chunks: the sketch alone, then with the scan of train."""
    import tempfile

    import pandas as pd

    from nlpflow.data.streaming.sketch import TextSketch
    from nlpflow.data.streaming.validation import Splits

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        frame = pd.DataFrame(
            {"text": rows, "label": ["pos", "neg"] * (len(rows) // 2) + ["pos"] * (len(rows) % 2)}
        )
        is_held = frame.index.isin(sorted(held))
        frame[~is_held].to_parquet(folder / "train.parquet", index=False)
        half = frame[is_held]
        half.iloc[: len(half) // 2].to_parquet(folder / "validation.parquet", index=False)
        half.iloc[len(half) // 2 :].to_parquet(folder / "test.parquet", index=False)
        splits = Splits(folder, 50_000)
        start = time.perf_counter()
        sketch = TextSketch()
        for split, _, chunk in splits.frames(["text", "label"]):
            sketch.add(split, chunk)
        sketch.finish()
        first = time.perf_counter() - start
        for _, batch in splits.batches("train", ["text"]):
            sketch.scan_train(batch.column("text").to_pandas())
        sketch.finish_scan()
        scan = time.perf_counter() - start - first
    print(
        f"| validate's first pass in chunks, with the sketch's phrase keys | {len(rows)} | {first:.2f} |"
    )
    print(f"| + the scan of train for leak_subphrase | {len(rows)} | {scan:.2f} |")
    return {"streamed_first_pass_s": round(first, 2), "streamed_scan_s": round(scan, 2),
            "streamed_flagged": int((sketch.subphrase_words >= 4).sum())}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sentences", type=int, default=8000)
    parser.add_argument("--naive-queries", type=int, default=200)
    parser.add_argument("--streamed", action="store_true")
    args = parser.parse_args()
    from nlpflow.data.subphrase import contained_in, first_container

    rows = sst2_like(args.sentences)
    rng = random.Random(1)
    held = set(rng.sample(range(len(rows)), len(rows) // 5))
    queries = [rows[i] for i in sorted(held)]
    train = [r for i, r in enumerate(rows) if i not in held]
    start = time.perf_counter()
    found = contained_in(queries, train, min_tokens=4)
    ours = time.perf_counter() - start
    start = time.perf_counter()
    containers = first_container(rows)
    grouping = time.perf_counter() - start
    padded = [f" {t} " for t in train]
    sample = queries[: args.naive_queries]
    start = time.perf_counter()
    naive = [len(q.split()) >= 4 and any(f" {q} " in t for t in padded) for q in sample]
    naive_s = (time.perf_counter() - start) * len(queries) / len(sample)
    assert naive == found[: len(sample)].tolist(), "the two ways disagree"
    result = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "rows": len(rows), "train": len(train), "searched": len(queries),
        "flagged": int(found.sum()), "contained_rows": int((containers >= 0).sum()),
        "leak_check_s": round(ours, 3), "group_subphrases_s": round(grouping, 3),
        "naive_in_scan_s_estimated": round(naive_s, 1),
    }  # fmt: skip
    print("| what | rows | seconds |\n|---|---|---|")
    print(f"| leak_subphrase check (ours) | {len(queries)} in {len(train)} | {ours:.2f} |")
    print(f"| group_subphrases containers (ours) | {len(rows)} | {grouping:.2f} |")
    print(
        f"| `in` scan, estimated from {len(sample)} | {len(queries)} in {len(train)} | {naive_s:.0f} |"
    )
    print(
        f"\nflagged {result['flagged']} of {len(queries)}; {result['contained_rows']} rows inside another"
    )
    if args.streamed:
        result |= bench_streamed(rows, held)
    out = ROOT / "reports" / "bench" / "subphrase.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
