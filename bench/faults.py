"""A fault campaign against `nlpflow run`: overlap, kills, signals, a tracking server that goes
away and a full disk, each on a fresh temporary project (the bundled sample, tfidf_logreg), then
an audit of what was left behind.

    python bench/faults.py                 # every scenario (about 25 minutes on 2 cores)
    python bench/faults.py --quick         # one kill and one SIGTERM (train, register) + the rest
    python bench/faults.py --only sigterm  # scenarios whose name contains "sigterm"

Scenarios:
- `concurrent-N`: N `nlpflow run --force --set train.tfidf.C=<c>` started at once in one project;
- `kill9-<stage>`: `kill -9` of the run's whole process group at a random point of the stage;
- `sigterm-<stage>`: SIGTERM to `nlpflow run` at a random point of the stage (what Kubernetes
  and Prefect cancellation send): it must be gone within 10 s, exit 143, print no traceback;
- `tracking-gone`: the MLflow tracking server (a real `mlflow server` on loopback) is stopped
  while train runs, then started again;
- `disk-full`: the project sits on a small tmpfs filled up before the run (needs root; skipped
  with the reason otherwise).

After each fault, `nlpflow doctor` and a plain `nlpflow run` recover. The audit then counts, over
the whole tracking store: runs left RUNNING, registered versions whose run did not finish or
whose model is not the one its run's params trained (the scikit-learn C of the loaded version
against the run's `train.tfidf.C`), and tracebacks on any console. The goal is zero of each.
Prints a Markdown table and writes reports/bench/faults.json.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent
STAGES = ["gather", "validate", "preprocess", "train", "baseline", "evaluate", "register"]
# the flow's tasks in the order they run (train_params: a small stage between preprocess and train)
TASK_ORDER = ["start-tracking", "gather", "validate", "preprocess", "train_params", "train",
              "baseline", "evaluate", "register"]  # fmt: skip
TRACEBACK = "Traceback (most recent call last)"
# Prefect prints one line per finished task run: the next stage starts right after it
FINISHED = re.compile(r"Task run '([a-z_-]+)-[0-9a-f]{3}' - Finished")
STOP_LIMIT_S = 10.0


@dataclass
class Outcome:
    scenario: str
    fault: str  # what was done, and when
    exit_codes: list[int | None] = field(default_factory=list)
    stop_seconds: float | None = None  # signal to exit (SIGTERM scenarios)
    recovered: bool = False  # doctor + a plain run afterwards completed
    running_left: int = 0
    wrong_registrations: int = 0
    tracebacks: int = 0
    lost: str = "nothing"
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        stopped = self.stop_seconds is None or self.stop_seconds <= STOP_LIMIT_S
        return (self.recovered and not self.running_left and not self.wrong_registrations
                and not self.tracebacks and stopped and self.lost == "nothing")  # fmt: skip


# ------------------------------------------------------------------ projects and processes


def make_faults_project(base: Path) -> Path:
    import yaml

    from tests.conftest import make_project

    tree = yaml.safe_load((ROOT / "params.yaml").read_text())
    tree["train"]["family"] = "tfidf_logreg"
    tree["schedule"]["skip_unchanged_data"] = False
    return make_project(base / "project", yaml.safe_dump(tree, sort_keys=False))


def env_for(root: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    env.pop("NLPFLOW_PROJECT_DIR", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("NLPFLOW_TRACKING_URI", None)
    return env | (extra or {})


def start(args: list[str], root: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`nlpflow ARGS` in its own session (so a kill of the group takes all it started)."""
    out = log.open("wb")
    return subprocess.Popen([str(BIN / "nlpflow"), *args], cwd=root, env=env, stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip


def run(args: list[str], root: Path, env: dict[str, str], log: Path, timeout: float = 600) -> int:
    process = start(args, root, env, log)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return -9


def wait_for_stage(process: subprocess.Popen[bytes], log: Path, stage: str) -> bool:
    """Block until `stage` has started (the task before it finished); False if the run ended."""
    before = TASK_ORDER[TASK_ORDER.index(stage) - 1]
    while process.poll() is None:
        if before in FINISHED.findall(log.read_text(errors="replace")):
            return True
        time.sleep(0.05)
    return False


def stage_seconds(log: Path) -> dict[str, float]:
    """Each stage's time in a run's console log (Prefect's timestamps of finished tasks)."""
    stamps: list[tuple[str, float]] = []
    for line in log.read_text(errors="replace").splitlines():
        found = FINISHED.search(line)
        clock = re.match(r"(\d\d):(\d\d):(\d\d\.\d+)", line)
        if found and clock:
            h, m, s = clock.groups()
            stamps.append((found.group(1), int(h) * 3600 + int(m) * 60 + float(s)))
    return {name: max(0.05, t - prev) for (_, prev), (name, t) in itertools.pairwise(stamps)}


def count_tracebacks(*logs: Path) -> int:
    return sum(log.read_text(errors="replace").count(TRACEBACK) for log in logs if log.exists())


# ------------------------------------------------------------------ the audit


def audit(uri: str) -> tuple[int, int, list[str]]:
    """(runs RUNNING, wrong registrations, notes) over the whole tracking store at `uri`."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, max_results=5000) if experiments else []
    running = [r for r in runs if r.info.status == "RUNNING"]
    notes = [f"run {r.info.run_id[:8]} RUNNING" for r in running]
    wrong = 0
    for model in client.search_registered_models():
        for version in client.search_model_versions(f"name = '{model.name}'"):
            problem = _version_problem(client, model.name, version)
            if problem:
                wrong += 1
                notes.append(f"{model.name} v{version.version}: {problem}")
    return len(running), wrong, notes


def _version_problem(client: Any, name: str, version: Any) -> str | None:
    from nlpflow.config.settings import Settings
    from nlpflow.release.registry import load_served
    from nlpflow.tracking.tracker import Tracker

    run = client.get_run(version.run_id)
    if run.info.status != "FINISHED":
        return f"its run {version.run_id[:8]} is {run.info.status}"
    wanted = run.data.params.get("train.tfidf.C")
    tracker = Tracker(Settings(**{"NLPFLOW_TRACKING_URI": client.tracking_uri}))  # by its env name
    served = load_served(tracker, name, int(version.version))
    got = served.model.pipeline.steps[-1][1].C
    if wanted is not None and float(wanted) != float(got):
        return f"run params say C={wanted}, the registered model has C={got}"
    return None


def tracking_uri(root: Path) -> str:
    return f"sqlite:///{root / 'mlflow.db'}"


def recover_and_audit(outcome: Outcome, root: Path, env: dict[str, str], logs: Path,
                      uri: str) -> None:  # fmt: skip
    """`nlpflow doctor`, then a plain `nlpflow run`: both must succeed; then the audit."""
    doctor = run(["doctor"], root, env, logs / "doctor.log", timeout=120)
    again = run(["run"], root, env, logs / "rerun.log")
    outcome.exit_codes += [doctor, again]
    outcome.recovered = doctor == 0 and again == 0
    if not outcome.recovered:
        tail = (logs / ("rerun.log" if doctor == 0 else "doctor.log")).read_text()[-600:]
        outcome.notes.append(f"recovery failed: {tail.strip().splitlines()[-1:]}")
    outcome.running_left, outcome.wrong_registrations, notes = audit(uri)
    outcome.notes += notes
    outcome.tracebacks += count_tracebacks(*logs.glob("*.log"))


# ------------------------------------------------------------------ scenarios


def concurrent(base: Path, n: int) -> Outcome:
    root = make_faults_project(base)
    logs = _logs(base)
    env = env_for(root)
    values = [0.01, 1.0, 100.0, 0.1, 10.0][:n]
    outcome = Outcome(f"concurrent-{n}", f"{n} runs with C={values} started at once")
    processes = [
        start(["run", "--force", "--set", f"train.tfidf.C={c}"], root, env, logs / f"run{i}.log")
        for i, c in enumerate(values)
    ]
    outcome.exit_codes = [p.wait(timeout=900) for p in processes]
    if any(code != 0 for code in outcome.exit_codes):
        outcome.notes.append("a concurrent run failed")
    outcome.running_left, outcome.wrong_registrations, notes = audit(tracking_uri(root))
    outcome.notes += notes
    outcome.tracebacks = count_tracebacks(*logs.glob("*.log"))
    outcome.recovered = all(code == 0 for code in outcome.exit_codes)
    return outcome


def interrupted(base: Path, stage: str, *, how: str, durations: dict[str, float],
                rng: random.Random) -> Outcome:  # fmt: skip
    root = make_faults_project(base)
    logs = _logs(base)
    env = env_for(root)
    assert run(["run"], root, env, logs / "first.log") == 0, "the first run failed"
    delay = rng.uniform(0, durations.get(stage, 1.0))
    outcome = Outcome(f"{how}-{stage}", f"{how} {delay:.2f} s into {stage}")
    process = start(["run", "--force", "--set", "train.tfidf.C=3"], root, env, logs / "run.log")
    if not wait_for_stage(process, logs / "run.log", stage):
        outcome.notes.append(f"the run ended before {stage}")
    time.sleep(delay)
    sent = time.perf_counter()
    if how == "kill9":
        os.killpg(process.pid, signal.SIGKILL)
    else:
        process.send_signal(signal.SIGTERM)  # to the main process only, as a pod's PID 1 gets it
    try:
        code: int | None = process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        code = None
    if how == "sigterm":
        outcome.stop_seconds = round(time.perf_counter() - sent, 2)
        if code is not None and code not in {143, -15, 0}:
            outcome.notes.append(f"exit code {code}, expected 143")
    _reap(process)
    outcome.exit_codes.append(code)
    recover_and_audit(outcome, root, env, logs, tracking_uri(root))
    return outcome


def tracking_gone(base: Path) -> Outcome:
    root = make_faults_project(base)
    logs = _logs(base)
    port = _free_port()
    store = base / "server"
    store.mkdir()
    server_cmd = [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
                  "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}",
                  "--default-artifact-root", (store / "artifacts").as_uri(), "--workers", "1"]  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    env = env_for(root, {"NLPFLOW_TRACKING_URI": uri, "NLPFLOW_TRACKING_CLOSE_SECONDS": "20"})
    server = _start_server(server_cmd, logs / "server.log", port)
    outcome = Outcome("tracking-gone", "MLflow server stopped during train, restarted 15 s later")
    process = start(["run", "--force"], root, env, logs / "run.log")
    wait_for_stage(process, logs / "run.log", "train")
    _stop_server(server)
    time.sleep(15)
    server = _start_server(server_cmd, logs / "server2.log", port)
    try:
        outcome.exit_codes.append(process.wait(timeout=300))
    except subprocess.TimeoutExpired:
        outcome.exit_codes.append(None)
        outcome.notes.append("the run hung")
    _reap(process)
    try:
        recover_and_audit(outcome, root, env, logs, uri)
    finally:
        _stop_server(server)
    outcome.tracebacks = count_tracebacks(
        *(p for p in logs.glob("*.log") if "server" not in p.name)
    )
    return outcome


def disk_full(base: Path) -> Outcome:
    outcome = Outcome("disk-full", "the project's disk (a 64 MiB tmpfs) filled before the run")
    mount = base / "small-disk"
    mount.mkdir(parents=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        outcome.notes.append(f"skipped: cannot mount a tmpfs ({done.stderr.strip()}); needs root")
        outcome.lost = "not run"
        return outcome
    try:
        root = make_faults_project(mount)
        logs = _logs(base)
        env = env_for(root)
        assert run(["run"], root, env, logs / "first.log") == 0, "the first run failed"
        filler = mount / "filler"
        _fill(filler, leave=256 * 1024)
        outcome.exit_codes.append(run(["run", "--force", "--set", "train.tfidf.C=3"], root, env,
                                      logs / "run.log"))  # fmt: skip
        said = (logs / "run.log").read_text(errors="replace")
        if "space" not in said.lower():
            outcome.notes.append("the failure does not say the disk is full")
        filler.unlink()
        recover_and_audit(outcome, root, env, logs, tracking_uri(root))
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)
    return outcome


# ------------------------------------------------------------------ helpers


def _logs(base: Path) -> Path:
    logs = base / "logs"
    logs.mkdir(exist_ok=True)
    return logs


def _reap(process: subprocess.Popen[bytes]) -> None:
    """Whatever the run left running in its session (a Prefect server, dvc) is killed."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_server(command: list[str], log: Path, port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                              start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return server
        time.sleep(0.5)
    raise SystemExit(f"mlflow server did not start: {log.read_text()[-800:]}")


def _stop_server(server: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGKILL)
    server.wait()


def _fill(path: Path, *, leave: int) -> None:
    free = shutil.disk_usage(path.parent).free
    with path.open("wb") as out:
        chunk = b"\0" * (1 << 20)
        remaining = max(0, free - leave)
        while remaining > 0:
            out.write(chunk[: min(len(chunk), remaining)])
            remaining -= len(chunk)


# ------------------------------------------------------------------ the campaign


def measure_durations(base: Path) -> dict[str, float]:
    """Each stage's time in one undisturbed forced run (the window a kill is drawn from)."""
    root = make_faults_project(base)
    logs = _logs(base)
    env = env_for(root)
    assert run(["run"], root, env, logs / "warm.log") == 0, "the first run failed"
    assert run(["run", "--force"], root, env, logs / "timed.log") == 0
    return stage_seconds(logs / "timed.log")


def campaign(args: argparse.Namespace) -> list[Outcome]:
    rng = random.Random(args.seed)
    stages = ["train", "register"] if args.quick else STAGES
    plan: list[tuple[str, Any]] = [
        (f"concurrent-{args.concurrent}", lambda b: concurrent(b, args.concurrent))
    ]
    for how in ("kill9", "sigterm"):
        for stage in stages:
            plan.append((f"{how}-{stage}", lambda b, s=stage, h=how: interrupted(
                b, s, how=h, durations=durations, rng=rng)))  # fmt: skip
    plan += [("tracking-gone", tracking_gone), ("disk-full", disk_full)]
    plan = [(name, make) for name, make in plan if not args.only or args.only in name]
    work = Path(tempfile.mkdtemp(prefix="nlpflow-faults-"))
    durations = (
        measure_durations(work / "durations")
        if any(n.startswith(("kill9", "sigterm")) for n, _ in plan)
        else {}
    )
    outcomes = []
    for name, make in plan:
        print(f"-- {name}", file=sys.stderr, flush=True)
        started = time.perf_counter()
        try:
            outcome = make(work / name)
        except Exception as exc:  # a scenario that cannot run is reported, not hidden
            outcome = Outcome(name, "scenario failed to run", lost="unknown",
                              notes=[f"{type(exc).__name__}: {exc}"])  # fmt: skip
        outcome.notes.append(f"{time.perf_counter() - started:.0f} s")
        print(f"   {'ok' if outcome.ok else 'FAILED'}: {'; '.join(outcome.notes)}",
              file=sys.stderr, flush=True)  # fmt: skip
        outcomes.append(outcome)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"projects and logs kept in {work}", file=sys.stderr)
    return outcomes


def table(outcomes: list[Outcome]) -> str:
    lines = [
        "| scenario | fault | exit codes (fault, doctor, rerun) | stopped in | recovered | "
        "left RUNNING | wrong registrations | tracebacks | lost |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        stop = f"{o.stop_seconds:.1f} s" if o.stop_seconds is not None else ""
        lines.append(
            f"| {o.scenario} | {o.fault} | {', '.join(str(c) for c in o.exit_codes)} | {stop} | "
            f"{'yes' if o.recovered else 'NO'} | {o.running_left} | {o.wrong_registrations} | "
            f"{o.tracebacks} | {o.lost} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="kill/SIGTERM in train and register only"
    )
    parser.add_argument("--only", default="", help="run the scenarios whose name contains this")
    parser.add_argument("--concurrent", type=int, default=3, help="runs started at once")
    parser.add_argument("--seed", type=int, default=13, help="seeds the kill points")
    parser.add_argument("--keep", action="store_true", help="keep the projects and logs")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # the audit's loads
    outcomes = campaign(args)
    ran = [o for o in outcomes if o.lost != "not run"]
    goals = {
        "zero_wrong_registrations": all(o.wrong_registrations == 0 for o in ran),
        "zero_runs_left_running": all(o.running_left == 0 for o in ran),
        "zero_tracebacks": all(o.tracebacks == 0 for o in ran),
        "sigterm_within_10s": all(
            o.stop_seconds is not None and o.stop_seconds <= STOP_LIMIT_S
            for o in ran
            if o.scenario.startswith("sigterm")
        ),
        "every_fault_recovered": all(o.recovered for o in ran),
    }
    print(table(outcomes))
    print("\ngoals: " + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in goals.items()))
    out = ROOT / "reports" / "bench" / "faults.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    machine = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }
    out.write_text(json.dumps({"machine": machine, "seed": args.seed, "quick": args.quick,
                               "goals": goals, "outcomes": [asdict(o) | {"ok": o.ok} for o in outcomes]},
                              indent=2))  # fmt: skip
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
