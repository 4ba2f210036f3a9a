"""Validation throughput: rows/s of the whole nlpflow suite (Great Expectations 1.x) on a
resampled MR set, against the floor of reading the same rows and computing the same facts with
plain pandas (no GX), side by side in one run.

    python bench/validate.py [--rows 100000]

Prints a Markdown table and writes reports/bench/validate.json.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def make_snapshot(rows: int, folder: Path) -> None:
    """MR resampled to `rows` rows, each text made unique by a suffix (no duplicates, no leaks)."""
    import pandas as pd

    source = ROOT.parent / "shared/datasets/mr/splits/train.jsonl"
    if source.exists():
        base = pd.read_json(source, lines=True)[["text", "label"]].astype({"label": str})
    else:  # the bundled sample, where the shared datasets are absent
        base = pd.read_csv(ROOT / "data/sample/support_tickets.csv")
    frame = base.sample(n=rows, replace=True, random_state=0).reset_index(drop=True)
    frame["text"] = frame["text"] + " #" + frame.index.astype(str)
    frame["source_row"] = frame.index
    cut = [0, int(rows * 0.8), int(rows * 0.9), rows]
    for name, lo, hi in zip(("train", "validation", "test"), cut, cut[1:], strict=False):
        frame.iloc[lo:hi].to_parquet(folder / f"{name}.parquet", index=False)


def pandas_floor(folder: Path) -> None:
    """The same facts in plain pandas: the least any validation of these rows must cost."""
    import pandas as pd

    from nlpflow.data.gather import load_splits

    splits = load_splits(folder)
    frame = pd.concat(splits.values())
    text = frame["text"]
    _ = (text.isna().sum(), text.str.fullmatch(r"\s*").sum(), text.str.len().between(1, 5000).all())
    _ = (
        frame["label"].isin(set(splits["train"]["label"])).all(),
        splits["train"]["label"].value_counts(),
    )
    _ = (text.duplicated().mean(), splits["test"]["text"].isin(set(splits["train"]["text"])).sum())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench")
    args = parser.parse_args()

    from nlpflow.config.params import DataParams, ValidateParams
    from nlpflow.data.validation import validate

    work = Path(tempfile.mkdtemp(prefix="nlpflow-bench-"))
    make_snapshot(args.rows, work)
    gx = work / "gx"  # one GX project for both runs, as in a repository
    validate(src=work, dst=work / "warmup", params=ValidateParams(), data=DataParams(), gx_dir=gx)

    timings = {}
    start = time.perf_counter()
    report = validate(
        src=work, dst=work / "report", params=ValidateParams(), data=DataParams(), gx_dir=gx
    )
    timings["nlpflow validate (GX suite + report)"] = time.perf_counter() - start
    assert report.success
    start = time.perf_counter()
    pandas_floor(work)
    timings["plain pandas, same facts (floor)"] = time.perf_counter() - start

    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    rows = [
        {"contender": k, "seconds": round(v, 3), "rows_per_s": round(args.rows / v)}
        for k, v in timings.items()
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "validate.json").write_text(
        json.dumps({"rows": args.rows, "machine": machine, "results": rows}, indent=2)
    )
    print(f"{args.rows} rows (MR resampled), {machine}\n")
    print("| contender | seconds | rows/s |")
    print("|---|---|---|")
    for row in rows:
        print(f"| {row['contender']} | {row['seconds']} | {row['rows_per_s']:,} |")


if __name__ == "__main__":
    main()
