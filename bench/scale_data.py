"""The streaming data path at scale: preprocess and validate on synthetic labelled texts, with
memory bounded by runtime.max_memory_mb, side by side with the in-memory path.

- preprocess, chunk by chunk: one process, and the stage's pool of worker processes (the
  goal: at least 0.9x the single process's rate per core, and the process tree's peak RSS
  under the budget), beside the in-memory path's peak;
- validate, chunk by chunk: on a smaller set with planted problems, the same results as in
  memory (every check's success, counts, observed values, offending rows); on all rows, the
  rate (the goal: at least 50,000 rows/s) and the peak under the budget.

Each contender runs in a process of its own (imports included, so that peaks compare), whose
process tree's RSS is sampled every 20 ms; rates are timed inside it, around the stage call.

    python bench/scale_data.py --rows 1000000 [--budget-mb 1024] [--workers 2]

Prints a Markdown table and writes reports/bench/scale_data.json with its `goals`. bench/
scale.py imports bench_preprocess and bench_validate.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

LABELS = ("billing", "shipping", "refund", "account", "technical")
BUDGET_MB = 1024
SAME_ROWS = 20_000  # validate: in memory and in chunks on this many rows, results compared
CACHE = Path(tempfile.gettempdir()) / "nlpflow-scale-data"


# ---------------------------------------------------------------- data


def make_splits(rows: int, folder: Path, *, planted: bool = False) -> Path:
    """`rows` synthetic support tickets as gathered splits (80/10/10), the same every time:
    Zipf-distributed words of a 20,000-word vocabulary, 5-60 tokens, a label that shifts the
    words; each text ends in its number, so none repeats. `planted`: nulls, blanks, repeats
    far apart, test texts in train, a label only test has."""
    import numpy as np
    import pandas as pd

    done = folder / ".complete"
    if done.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    vocab = np.array([_word(i) for i in range(20_000)])
    lengths = rng.integers(5, 61, rows)
    ids = np.minimum(rng.zipf(1.3, int(lengths.sum())) - 1, len(vocab) - 1)
    label = rng.integers(0, len(LABELS), rows)
    cuts = np.r_[0, np.cumsum(lengths)]
    text = [
        f"{LABELS[label[i]]} {' '.join(vocab[ids[cuts[i] : cuts[i + 1]]])} order #{i}"
        for i in range(rows)
    ]
    frame = pd.DataFrame({"text": text, "label": [LABELS[k] for k in label],
                          "source_row": np.arange(rows)})  # fmt: skip
    if planted:
        _plant(frame, rows)
    bounds = [0, int(rows * 0.8), int(rows * 0.9), rows]
    for name, lo, hi in zip(("train", "validation", "test"), bounds, bounds[1:], strict=False):
        part = frame.iloc[lo:hi].reset_index(drop=True)
        part.to_parquet(folder / f"{name}.parquet", index=False, row_group_size=100_000)
    done.touch()
    return folder


def _word(i: int) -> str:
    letters = "etaoinshrdlucmfwypvbgk"
    word = ""
    i += 1
    while i:
        i, r = divmod(i, len(letters))
        word += letters[r]
    return word


def _plant(frame: Any, rows: int) -> None:
    """What the data-wide checks look for, far apart (across chunks)."""
    test = int(rows * 0.9)
    frame.loc[[3, rows // 2], "text"] = None
    frame.loc[rows // 3, "text"] = "   "
    frame.loc[rows // 4, "text"] = frame.loc[5, "text"]  # a repeat in train
    frame.loc[test + 1, "text"] = frame.loc[7, "text"]  # a test text in train
    frame.loc[test + 2, "text"] = frame.loc[9, "text"].upper() + " !"  # ... up to case
    frame.loc[test + 3, "label"] = "warranty"  # a label train has not


# ---------------------------------------------------------------- one measured process


def _tree_rss(pid: int) -> int:
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):  # a worker that just ended
            total += p.memory_info().rss
    return total


def measured(task: str, *, script: Path = Path(__file__), **kwargs: Any) -> dict[str, Any]:
    """Run `task` (the function child_<task> of `script`, this file by default) in a process of
    its own; its result, its wall time and its process tree's peak RSS (sampled every 20 ms)."""
    command = [sys.executable, str(script), "--child", task, json.dumps(kwargs, default=str)]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), HF_HUB_OFFLINE="1")
    start = time.perf_counter()
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
    )
    peak = [0]

    def sample() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], _tree_rss(proc.pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{task} failed ({proc.returncode}):\n{err[-3000:]}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result | {
        "wall_s": round(time.perf_counter() - start, 2),
        "peak_rss_mb": round(peak[0] / 2**20),
    }


def _cpu_seconds() -> float:
    """CPU time of this process and of its children that have ended (a pool's workers)."""
    import resource

    own, ended = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + ended.ru_utime + ended.ru_stime


def _rates(rows: int, seconds: float, cpu: float) -> dict[str, Any]:
    """Rows/s of wall time, and rows per CPU-second of the process tree: the second does not
    depend on what else the machine runs (these machines are shared)."""
    return {"rows": rows, "seconds": round(seconds, 2), "rows_per_s": round(rows / seconds),
            "cpu_s": round(cpu, 2), "rows_per_cpu_s": round(rows / cpu)}  # fmt: skip


def _runtime(budget_mb: int | None, chunk_rows: int | None = None) -> Any:
    from nlpflow.config.params import RuntimeParams

    return RuntimeParams(max_memory_mb=budget_mb, chunk_rows=chunk_rows)


def child_preprocess(src: str, dst: str, n_process: int, budget_mb: int | None) -> dict[str, Any]:
    from nlpflow.config.params import PreprocessParams
    from nlpflow.data.preprocess import preprocess

    params = PreprocessParams(n_process=n_process)
    start, cpu = time.perf_counter(), _cpu_seconds()
    report = preprocess(src=Path(src), dst=Path(dst), params=params, runtime=_runtime(budget_mb))
    rows = sum(report.rows.values())
    rates = _rates(rows, time.perf_counter() - start, _cpu_seconds() - cpu)
    return rates | {"streamed": report.streamed}


def child_validate(
    src: str, dst: str, budget_mb: int | None, chunk_rows: int | None = None
) -> dict[str, Any]:
    from nlpflow.config.params import DataParams, ValidateParams
    from nlpflow.data.validation import validate
    from nlpflow.errors import DataValidationError

    start, cpu = time.perf_counter(), _cpu_seconds()
    with contextlib.suppress(DataValidationError):  # the planted set fails: its summary counts
        validate(
            src=Path(src), dst=Path(dst), params=ValidateParams(), data=DataParams(),
            runtime=_runtime(budget_mb, chunk_rows),
        )  # fmt: skip
    seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    summary = json.loads((Path(dst) / "summary.json").read_text())
    rows = sum(summary["rows_gathered"].values())
    rates = _rates(rows, seconds, cpu)
    return rates | {"success": summary["success"], "streamed": summary["streamed"]}


# ---------------------------------------------------------------- the benchmarks


def bench_preprocess(
    rows: int, *, budget_mb: int = BUDGET_MB, workers: int | None = None
) -> dict[str, Any]:
    """Preprocess `rows` texts: in chunks in one process and in a pool, and in memory."""
    from nlpflow.config.engine import default_workers

    workers = workers or max(2, default_workers())
    src = make_splits(rows, CACHE / f"texts-{rows}")
    with tempfile.TemporaryDirectory(prefix="nlpflow-scale-") as tmp:
        runs = {
            "in memory, 1 process": measured("preprocess", src=src, dst=f"{tmp}/m", n_process=1, budget_mb=None),
            "chunks, 1 process": measured("preprocess", src=src, dst=f"{tmp}/a", n_process=1, budget_mb=budget_mb),
            f"chunks, pool of {workers}": measured("preprocess", src=src, dst=f"{tmp}/b", n_process=workers, budget_mb=budget_mb),
        }  # fmt: skip
    single, pool = runs["chunks, 1 process"], runs[f"chunks, pool of {workers}"]
    for name, run in runs.items():
        run["cores"] = workers if "pool" in name else 1
        run["rows_per_s_per_core"] = round(run["rows_per_s"] / run["cores"])
        run["budget_mb"] = None if name.startswith("in memory") else budget_mb
    chunked = [run for name, run in runs.items() if not name.startswith("in memory")]
    result = {
        "rows": rows, "budget_mb": budget_mb, "workers": workers, "runs": runs,
        # wall time: the pool's rate per worker over one process's rate (needs idle cores)
        "rate_per_core_ratio": round(pool["rows_per_s"] / workers / single["rows_per_s"], 3),
        # CPU time of the process trees: what the pool costs beyond the cleaning itself
        # (start-up, shipping texts), whatever else the machine runs
        "rate_per_cpu_ratio": round(pool["rows_per_cpu_s"] / single["rows_per_cpu_s"], 3),
        "bounded_memory": all(run["peak_rss_mb"] <= budget_mb for run in chunked),
    }  # fmt: skip
    result["goals"] = {
        "preprocess_bounded_memory": result["bounded_memory"],
        "preprocess_rate_per_core_ge_0_9": result["rate_per_core_ratio"] >= 0.9,
        # the same on CPU time: what the goal would read on a machine with idle cores
        "preprocess_rate_per_cpu_ge_0_9": result["rate_per_cpu_ratio"] >= 0.9,
    }
    return result


def bench_validate(rows: int, *, budget_mb: int = BUDGET_MB) -> dict[str, Any]:
    """Validate `rows` rows in chunks (rate, peak); and a planted set in memory and in chunks
    small enough that repeats and leaks cross them, whose results must be the same."""
    same = min(rows, SAME_ROWS)
    planted = make_splits(same, CACHE / f"planted-{same}", planted=True)
    src = make_splits(rows, CACHE / f"texts-{rows}")
    with tempfile.TemporaryDirectory(prefix="nlpflow-scale-") as tmp:
        whole = measured("validate", src=planted, dst=f"{tmp}/w", budget_mb=None)
        small = measured(
            "validate", src=planted, dst=f"{tmp}/c", budget_mb=None, chunk_rows=same // 7
        )
        same_results = _comparable(Path(tmp) / "w") == _comparable(Path(tmp) / "c")
        runs = {
            f"in memory, {same:,} planted rows": whole,
            f"chunks of {same // 7:,}, {same:,} planted rows": small,
            f"chunks, {rows:,} rows": measured("validate", src=src, dst=f"{tmp}/big", budget_mb=budget_mb),
        }  # fmt: skip
    big = runs[f"chunks, {rows:,} rows"]
    big["budget_mb"] = budget_mb
    return {
        "rows": rows, "budget_mb": budget_mb, "runs": runs, "same_results": same_results,
        "rows_per_s": big["rows_per_s"], "bounded_memory": big["peak_rss_mb"] <= budget_mb,
        "goals": {"validate_ge_50k_rows_per_s": big["rows_per_s"] >= 50_000,
                  "validate_same_results": same_results},
    }  # fmt: skip


def _comparable(dst: Path) -> dict[str, Any]:
    summary = json.loads((dst / "summary.json").read_text())
    return {k: v for k, v in summary.items()
            if k not in ("seconds", "report_html", "quarantine_file", "streamed")}  # fmt: skip


# ---------------------------------------------------------------- report


def _machine() -> dict[str, Any]:
    from nlpflow.config.engine import default_workers

    return {"platform": platform.platform(), "cpu": platform.processor() or platform.machine(),
            "cores": default_workers(), "load_avg": [round(x, 2) for x in os.getloadavg()]}  # fmt: skip


def table(preprocess: dict[str, Any], validate: dict[str, Any]) -> str:
    lines = ["| stage | contender | rows | seconds | rows/s | rows/s per core | rows per CPU-s "
             "| peak RSS MB (tree) | budget MB |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for stage, result in (("preprocess", preprocess), ("validate", validate)):
        for name, run in result["runs"].items():
            per_core = run.get("rows_per_s_per_core")
            lines.append(
                f"| {stage} | {name} | {run['rows']:,} | {run['seconds']} | {run['rows_per_s']:,} "
                f"| {'' if per_core is None else f'{per_core:,}'} | {run['rows_per_cpu_s']:,} "
                f"| {run['peak_rss_mb']:,} | {run.get('budget_mb') or '-'} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--budget-mb", type=int, default=BUDGET_MB)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench")
    args = parser.parse_args()
    before = _machine()
    pre = bench_preprocess(args.rows, budget_mb=args.budget_mb, workers=args.workers)
    val = bench_validate(args.rows, budget_mb=args.budget_mb)
    goals = pre["goals"] | val["goals"]
    machine = before | {"load_avg_after": [round(x, 2) for x in os.getloadavg()]}
    out = {
        "rows": args.rows,
        "machine": machine,
        "preprocess": pre,
        "validate": val,
        "goals": goals,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scale_data.json").write_text(json.dumps(out, indent=2, default=str))
    print(f"{args.rows:,} synthetic rows, {machine['cores']} cores, load {machine['load_avg']} "
          f"before, {machine['load_avg_after']} after\n")  # fmt: skip
    print(table(pre, val))
    print(
        f"\npreprocess, pool / one process: rate per core {pre['rate_per_core_ratio']} (wall), "
        f"rate per CPU-second {pre['rate_per_cpu_ratio']} (CPU time of the process trees)"
    )
    print("goals: " + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in goals.items()))


def _child() -> None:
    task, kwargs = sys.argv[2], json.loads(sys.argv[3])
    print(json.dumps(globals()[f"child_{task}"](**kwargs)))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child()
    else:
        main()
