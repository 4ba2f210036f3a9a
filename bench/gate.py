"""How long does the gate's paired bootstrap take? The way it was (scikit-learn's full report,
nlpflow.evaluation.metrics.compute_metrics, twice per resample) against nlpflow's metric_function, which
scores every resample of a batch from one bincount, side by side on the same synthetic test set;
both must give the same p-value.

    python bench/gate.py [--rows 1000] [--samples 1000] [--old-samples 100]

The old way runs `--old-samples` resamples (it is slow) and its time is scaled to `--samples`.
Prints a Markdown table and writes reports/bench/gate.json, whose `goals` say whether the new
bootstrap is at least 50x faster and equal on the resamples both ran.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
LABELS = ["billing", "shipping", "technical", "account"]


def rows(n: int, seed: int = 0) -> tuple[list[str], list[str], list[str]]:
    """Gold labels and two models right about 80% and 83% of the time."""
    rng = np.random.default_rng(seed)
    gold = rng.choice(LABELS, size=n).tolist()
    a = [g if rng.random() < 0.80 else str(rng.choice(LABELS)) for g in gold]
    b = [g if rng.random() < 0.83 else str(rng.choice(LABELS)) for g in gold]
    return gold, a, b


def timed(samples: int, metric, gold, a, b) -> tuple[float, float]:
    from nlpflow.evaluation.stats import paired_bootstrap

    start = time.perf_counter()
    p = paired_bootstrap(gold, a, b, metric=metric, samples=samples, seed=13).p_value
    return time.perf_counter() - start, p


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--old-samples", type=int, default=100)
    args = parser.parse_args()
    from nlpflow.evaluation.metrics import compute_metrics, metric_function

    gold, a, b = rows(args.rows)
    labels = sorted(set(gold))
    fast = metric_function("macro_f1", labels)

    def old(y, p) -> float:
        return float(compute_metrics(y, p, labels)["macro_f1"])

    old_seconds, old_p = timed(args.old_samples, old, gold, a, b)
    _, same_p = timed(args.old_samples, fast, gold, a, b)
    new_seconds, _ = timed(args.samples, fast, gold, a, b)
    old_scaled = old_seconds * args.samples / args.old_samples
    speedup = old_scaled / new_seconds
    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    results = [
        {"method": "compute_metrics per resample (old)", "seconds": old_scaled,
         "measured_samples": args.old_samples},
        {"method": "metric_function, batched bincount (new)", "seconds": new_seconds,
         "measured_samples": args.samples},
    ]  # fmt: skip
    goals = {"bootstrap_fast": speedup >= 50, "bootstrap_equal": old_p == same_p}
    out = ROOT / "reports/bench/gate.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": args.rows, "samples": args.samples, "machine": machine,
                               "results": results, "speedup": speedup, "goals": goals},
                              indent=2))  # fmt: skip
    print(f"paired bootstrap of macro_f1, {args.rows} rows x {args.samples} resamples, {machine}\n")
    print("| method | seconds | measured on |\n|---|---|---|")
    for r in results:
        print(f"| {r['method']} | {r['seconds']:.3f} | {r['measured_samples']} resamples |")
    print(f"\nspeedup {speedup:.0f}x; p-values equal on {args.old_samples} resamples: "
          f"{goals['bootstrap_equal']} ({old_p:.4f} vs {same_p:.4f}); goals {goals}")  # fmt: skip


if __name__ == "__main__":
    main()
