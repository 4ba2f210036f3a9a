"""What orchestration costs: the training flow on the bundled sample, measured in one run.

- a full run: the flow's wall time against the sum of the stage functions' own times (the
  rest is Prefect, MLflow bookkeeping, cache keys and `dvc commit`: the orchestration overhead),
  for the project's first run (which also creates the MLflow store and imports MLflow) and for
  a later run of every stage (`--force`: the steady state, which the goal is about);
- no-op re-run in the same process (warm), every stage a cache hit (skip on unchanged data off);
- the same re-run with the data-triggered skip on (ends after gather);
- no-op re-run cold: `nlpflow run` in a new process (imports and Prefect's start included);
- no-op `dvc repro` in the same project.

The project is a temporary git + DVC copy of this one (params.yaml as is, or --family), so
nothing of the repository's own state is touched.

    python bench/orchestration.py [--family transformer|tfidf_logreg] [--keep]

Prints a Markdown table with the goals (overhead <= 10% of stage time; no-op re-run <= 10 s
warm and <= 25 s cold; no-op dvc repro <= 3 s) and writes reports/bench/orchestration.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
GOALS = {"overhead_share": 0.10, "noop_warm_s": 10.0, "noop_cold_s": 25.0, "dvc_repro_noop_s": 3.0}


def make_bench_project(base: Path, family: str) -> Path:
    import yaml

    from tests.conftest import make_project

    tree = yaml.safe_load((ROOT / "params.yaml").read_text())
    tree["train"]["family"] = family
    tree["schedule"]["skip_unchanged_data"] = False
    return make_project(base / "project", yaml.safe_dump(tree, sort_keys=False))


def set_skip(root: Path, skip: bool) -> None:
    import yaml

    tree = yaml.safe_load((root / "params.yaml").read_text())
    tree["schedule"]["skip_unchanged_data"] = skip  # no stage reads it: the cache keys stay
    (root / "params.yaml").write_text(yaml.safe_dump(tree, sort_keys=False))


def timed_flow(root: Path, *, force: bool = False) -> tuple[float, dict[str, Any]]:
    from nlpflow.flows.training import training_flow

    started = time.perf_counter()
    result = training_flow(project_dir=str(root), force=force)
    return time.perf_counter() - started, result


def timed_command(command: list[str], root: Path) -> float:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    started = time.perf_counter()
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return seconds


def warm_up_prefect() -> float:
    """Start Prefect's temporary server with a trivial flow, so the first run's wall time is
    the pipeline's, not the server's start-up (reported on its own row)."""
    from prefect import flow

    @flow(name="bench-warm-up")
    def nothing() -> None:
        return None

    started = time.perf_counter()
    nothing()
    return time.perf_counter() - started


def measure(root: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"prefect_start_s": warm_up_prefect()}
    wall, first = timed_flow(root)
    stage_s = sum(first["stage_seconds"].values())
    out |= {"first_wall_s": wall, "first_stage_s": stage_s}
    out["first_overhead_share"] = (wall - stage_s) / stage_s
    wall, forced = timed_flow(root, force=True)
    stage_s = sum(forced["stage_seconds"].values())
    out |= {"full_wall_s": wall, "full_stage_s": stage_s, "stage_seconds": forced["stage_seconds"]}
    out["overhead_share"] = (wall - stage_s) / stage_s
    wall, noop = timed_flow(root)
    assert noop["cached"] == list(first["stage_seconds"]), noop["cached"]
    out["noop_warm_s"] = wall
    set_skip(root, True)
    wall, skipped = timed_flow(root)
    assert skipped["skipped"], "the unchanged run was not skipped"
    out["skip_warm_s"] = wall
    set_skip(root, False)
    out["noop_cold_s"] = timed_command(["nlpflow", "run"], root)
    out["dvc_repro_noop_s"] = timed_command(["dvc", "repro"], root)
    return out


def table(r: dict[str, Any], family: str) -> str:
    goal = GOALS
    rows = [
        ("Prefect temporary server start (once per process)", f"{r['prefect_start_s']:.1f} s", ""),
        ("project's first run: stage functions / flow wall time",
         f"{r['first_stage_s']:.1f} s / {r['first_wall_s']:.1f} s", ""),
        ("project's first run: overhead (wall - stages) / stages",
         f"{r['first_overhead_share']:.1%}", "(creates the MLflow store)"),
        ("full run (`--force`): stage functions / flow wall time",
         f"{r['full_stage_s']:.1f} s / {r['full_wall_s']:.1f} s", ""),
        ("full run (`--force`): overhead (wall - stages) / stages", f"{r['overhead_share']:.1%}",
         f"<= {goal['overhead_share']:.0%}"),
        ("no-op re-run, warm (7 cache hits)", f"{r['noop_warm_s']:.1f} s",
         f"<= {goal['noop_warm_s']:.0f} s"),
        ("no-op re-run, warm, data-triggered skip on", f"{r['skip_warm_s']:.1f} s", ""),
        ("no-op re-run, cold (`nlpflow run`, new process)", f"{r['noop_cold_s']:.1f} s",
         f"<= {goal['noop_cold_s']:.0f} s"),
        ("no-op `dvc repro`", f"{r['dvc_repro_noop_s']:.1f} s",
         f"<= {goal['dvc_repro_noop_s']:.0f} s"),
    ]  # fmt: skip
    lines = [f"Training flow on the bundled sample, train.family {family}", "",
             "| measure | value | goal |", "|---|---:|---|"]  # fmt: skip
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in r["stage_seconds"].items())
    return "\n".join([*lines, "", f"Stage functions: {stages}"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default=None, help="train.family (default: params.yaml's)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary project")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench")
    args = parser.parse_args()
    import yaml

    family = args.family or yaml.safe_load((ROOT / "params.yaml").read_text())["train"]["family"]
    base = Path(tempfile.mkdtemp(prefix="nlpflow-bench-orch-"))
    root = make_bench_project(base, family)
    os.environ.update({"NLPFLOW_PROJECT_DIR": str(root), "NLPFLOW_REGISTERED_MODEL": "bench-orch"})
    for variable in ("NLPFLOW_TRACKING_URI", "MLFLOW_TRACKING_URI"):
        os.environ.pop(variable, None)
    try:
        result = measure(root)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    met = {
        "overhead": result["overhead_share"] <= GOALS["overhead_share"],
        "noop_warm": result["noop_warm_s"] <= GOALS["noop_warm_s"],
        "noop_cold": result["noop_cold_s"] <= GOALS["noop_cold_s"],
        "dvc_repro_noop": result["dvc_repro_noop_s"] <= GOALS["dvc_repro_noop_s"],
    }
    report = {
        "family": family, "result": result, "goals": GOALS, "met": met,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
    }  # fmt: skip
    print(table(result, family))
    print("\nGoals met: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in met.items()))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "orchestration.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
