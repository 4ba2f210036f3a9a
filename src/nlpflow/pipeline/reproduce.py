"""Rebuild a past run from its MLflow record and compare its metrics with the original's.

    nlpflow reproduce RUN_ID [--tolerance 0] [--keep] [--allow-dirty] [--remote URL] [--json]

1. read the run: tags git.commit / reproduce.code_dirty (else git.dirty) / reproduce.dvc_remote,
   artifacts
   reproduce/params.yaml, reproduce/dvc.lock (nlpflow.pipeline.remote.record_for_reproduction) and
   evaluation/metrics.json (the evaluate stage). Flow runs, `dvc repro` and `dvc exp run` record
   these alike (a DVC experiment's commit is its baseline, its `-S` params in params.yaml);
2. `git worktree add` at the commit (a temporary folder), params.yaml and dvc.lock written there;
3. `dvc pull` of the gather stage's output, the data snapshot, from the run's DVC remote into the
   worktree's own, empty cache (so the data provably comes from the remote);
4. `dvc repro --force --single-item` of every stage but gather: each runs again on that
   snapshot. Not gather: its source may be outside git, gone, or changed (a table, a URL). The
   stages run the commit's code (PYTHONPATH), tracked in a temporary MLflow store, so nothing is
   registered in the user's registry, and their outputs are pushed to a throw-away remote;
5. reports/metrics.json against the original's, metric by metric; the worktree is removed.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from nlpflow.errors import NlpflowError
from nlpflow.errors import ReproductionError as ReproductionError
from nlpflow.pipeline.remote import (
    CODE_DIRTY_TAG,
    LOCK_ARTIFACT,
    METRICS_ARTIFACT,
    PARAMS_ARTIFACT,
    REMOTE_NAME,
    REMOTE_NAME_TAG,
    REMOTE_TAG,
    Remote,
    configure_remote,
    dvc,
    resolve_remote,
)
from nlpflow.pipeline.stages import snapshot_stage
from nlpflow.training.threads import ENV_THREADS

THREADS_TAG = "device.cpu_threads"  # the train stage's tag of device facts (training/perf.py)

if TYPE_CHECKING:
    from nlpflow.config.settings import Settings
    from nlpflow.tracking.tracker import Tracker

Progress = Callable[[str], None]


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    commit: str
    dirty: bool
    remote: Remote | None  # where the run pushed its data; None when it wrote no dvc.lock
    params_yaml: str
    dvc_lock: str | None
    metrics: dict[str, Any]  # the original reports/metrics.json
    # torch's CPU threads in its training (tag device.cpu_threads): the count decides a model's
    # last bits, and train.cpu_threads null chose it from the machine's load at the time
    cpu_threads: int | None = None


class MetricDiff(BaseModel):
    metric: str  # dotted path in reports/metrics.json
    original: float | str | None  # None: absent on this side
    reproduced: float | str | None
    diff: float | None  # reproduced - original; None when either is absent or not a number
    within: bool


class ReproductionReport(BaseModel):
    run_id: str
    commit: str
    remote: str | None
    worktree: str | None  # kept (--keep) worktree; None once removed
    tolerance: float
    metrics: list[MetricDiff]
    within: bool  # every metric within tolerance


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)


def load_record(tracker: Tracker, run_id: str) -> RunRecord:
    """What MLflow holds about `run_id` that reproduction needs; clear errors for what is not
    (a store that cannot be read is a TrackingError, never "no such run")."""
    run = tracker.find_run(run_id)
    if run is None:
        raise ReproductionError(
            f"no run {run_id!r} in {tracker.uri}: copy the id from the MLflow UI or "
            "`nlpflow lineage`, and point NLPFLOW_TRACKING_URI at the store that holds it."
        )
    tags = run.tags
    commit = tags.get("git.commit")
    if not commit or commit == "none":
        raise ReproductionError(
            f"run {run_id} records no git commit (its project was not a git repository), so "
            "its code cannot be checked out: only runs from a git repository can be reproduced."
        )
    with tempfile.TemporaryDirectory(prefix="nlpflow-record-") as tmp:
        params = _artifact(tracker, run_id, PARAMS_ARTIFACT, Path(tmp))
        metrics = _artifact(tracker, run_id, METRICS_ARTIFACT, Path(tmp))
        lock = _artifact(tracker, run_id, LOCK_ARTIFACT, Path(tmp))
    if params is None:
        raise ReproductionError(
            f"run {run_id} (status {run.status}) has no artifact {PARAMS_ARTIFACT}: its "
            "params are recorded when its evaluate stage ends, and it stopped before, or an "
            "nlpflow that recorded none for `dvc repro` made it. Run the pipeline again and "
            "reproduce the new run."
        )
    if metrics is None:
        raise ReproductionError(
            f"run {run_id} (status {run.status}) has no artifact {METRICS_ARTIFACT}: its "
            "evaluate stage did not run or finish, so no metrics are there to compare with."
        )
    url = tags.get(REMOTE_TAG)
    dirty = tags.get(CODE_DIRTY_TAG, tags.get("git.dirty"))  # older runs: any change counts
    return RunRecord(
        run_id=run_id, commit=commit, dirty=dirty == "true",
        remote=Remote(tags.get(REMOTE_NAME_TAG, REMOTE_NAME), url) if url else None,
        params_yaml=params, dvc_lock=lock, metrics=json.loads(metrics),
        cpu_threads=_thread_count(tags.get(THREADS_TAG)),
    )  # fmt: skip


def _thread_count(tag: str | None) -> int | None:
    return int(tag) if tag and tag.isdigit() and int(tag) > 0 else None


def _artifact(tracker: Tracker, run_id: str, path: str, tmp: Path) -> str | None:
    """The text of the run's artifact `path`; None when the run has none."""
    found = tracker.download_artifact(run_id, path, tmp)
    return found.read_text() if found is not None and found.is_file() else None


def check_commit(root: Path, record: RunRecord, *, allow_dirty: bool) -> Path:
    """The git top level holding `root`, once the run's commit is known to be in it."""
    top = _git(root, "rev-parse", "--show-toplevel")
    if top.returncode != 0:
        raise ReproductionError(
            f"{root} is not in a git repository: run reproduce in the run's project"
        )
    if _git(root, "cat-file", "-e", f"{record.commit}^{{commit}}").returncode != 0:
        raise ReproductionError(
            f"run {record.run_id} was made from commit {record.commit}, which is not in the git "
            f"repository at {top.stdout.strip()}: `git fetch` it, or run reproduce in the "
            "repository the run came from."
        )
    if record.dirty and not allow_dirty:
        raise ReproductionError(
            f"run {record.run_id} was made from a working tree with uncommitted changes, so commit "
            f"{record.commit} does not hold its exact code (files other than params.yaml, "
            "dvc.lock and the pipeline's outputs, which the run recorded or reproduce rebuilds): "
            "--allow-dirty reproduces it with the committed code anyway (differences may then "
            "come from those changes)."
        )
    return Path(top.stdout.strip())


def flatten_metrics(tree: Any, prefix: str = "") -> dict[str, float | str]:
    """metrics.json as dotted keys (per_class.billing.f1, ci.low); numbers as floats."""
    items: list[tuple[str, Any]]
    if isinstance(tree, dict):
        items = [(str(k), v) for k, v in tree.items()]
    elif isinstance(tree, list):
        items = [(str(i), v) for i, v in enumerate(tree)]
    else:
        value = float(tree) if isinstance(tree, int | float) else str(tree)
        return {prefix: value}
    flat: dict[str, float | str] = {}
    for key, value in items:
        flat |= flatten_metrics(value, f"{prefix}.{key}" if prefix else key)
    return flat


def compare_metrics(
    original: dict[str, Any], reproduced: dict[str, Any], *, tolerance: float
) -> list[MetricDiff]:
    """One row per metric of either side, in the original's order; absent on one side is a miss."""
    before, after = flatten_metrics(original), flatten_metrics(reproduced)
    rows = []
    for key in [*before, *(k for k in after if k not in before)]:
        old, new = before.get(key), after.get(key)
        if isinstance(old, float) and isinstance(new, float):
            both_nan = math.isnan(old) and math.isnan(new)  # e.g. an AUC of a one-class test set
            diff: float | None = 0.0 if both_nan else new - old
            within = both_nan or abs(new - old) <= tolerance
        else:
            diff, within = None, old is not None and old == new
        rows.append(MetricDiff(metric=key, original=old, reproduced=new, diff=diff, within=within))
    return rows


def reproduce(
    run_id: str,
    *,
    settings: Settings,
    tolerance: float = 0.0,
    keep: bool = False,
    allow_dirty: bool = False,
    remote_url: str | None = None,
    progress: Progress = lambda _: None,
) -> ReproductionReport:
    """Rebuild run `run_id` in a temporary worktree and compare its metrics (module docstring)."""
    from nlpflow.tracking.tracker import Tracker

    if tolerance < 0:
        raise ReproductionError(f"--tolerance must be 0 or more, not {tolerance}")
    record = load_record(Tracker(settings), run_id)
    top = check_commit(settings.root, record, allow_dirty=allow_dirty)
    remote = _remote_of(record, settings, remote_url)
    tmp = Path(tempfile.mkdtemp(prefix="nlpflow-reproduce-"))
    worktree = tmp / "worktree"
    progress(f"git worktree at {record.commit[:12]}: {worktree}")
    done = _git(top, "worktree", "add", "--detach", str(worktree), record.commit)
    if done.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ReproductionError(f"git worktree add failed: {done.stderr.strip()}")
    try:
        project = worktree / settings.root.relative_to(top.resolve())
        _prepare(project, record, remote, source_root=settings.root, progress=progress)
        metrics = _repro(project, record, tmp=tmp, progress=progress)
    finally:
        if not keep:
            _git(top, "worktree", "remove", "--force", str(worktree))
            shutil.rmtree(tmp, ignore_errors=True)
            _git(top, "worktree", "prune")
    rows = compare_metrics(record.metrics, metrics, tolerance=tolerance)
    return ReproductionReport(
        run_id=run_id, commit=record.commit, remote=remote.url if remote else None,
        worktree=str(worktree) if keep else None, tolerance=tolerance, metrics=rows,
        within=all(row.within for row in rows),
    )  # fmt: skip


def _remote_of(record: RunRecord, settings: Settings, url: str | None) -> Remote | None:
    """--remote, else the remote the run pushed to, else this project's (a lock needs one)."""
    if url:
        return Remote(REMOTE_NAME, url)
    if record.remote is not None or record.dvc_lock is None:
        return record.remote
    return resolve_remote(settings.root, settings)


def _prepare(
    project: Path,
    record: RunRecord,
    remote: Remote | None,
    *,
    source_root: Path,
    progress: Progress,
) -> None:
    """The run's params and lock in the worktree, its remote configured, its snapshot pulled."""
    if not (project / "dvc.yaml").is_file():
        raise ReproductionError(
            f"commit {record.commit} has no dvc.yaml in {project.name}: nothing to repro"
        )
    (project / "params.yaml").write_text(record.params_yaml)
    if record.dvc_lock is None:
        progress(
            "the run recorded no dvc.lock (--set/--config, or no DVC): "
            "every stage runs again, from the data source"
        )
        return
    (project / "dvc.lock").write_text(record.dvc_lock)
    local = source_root / ".dvc" / "config.local"  # remote options set by hand (MinIO endpoint)
    if local.is_file():
        shutil.copy(local, project / ".dvc" / "config.local")
    assert remote is not None
    configure_remote(project, remote)
    progress(f"dvc pull of the data snapshot (data/gathered) from {remote.url}")
    try:
        dvc(
            project,
            ["pull", "-r", remote.name, snapshot_stage().name],
            doing=f"pulling the run's data from {remote.url}",
        )
    except NlpflowError as exc:
        raise ReproductionError(
            f"{exc.args[0]} (was the run's data pushed there? the flow pushes after validate; "
            "--remote URL names another remote)"
        ) from None


def _stages_after_gather(project: Path) -> list[str]:
    """dvc.yaml's stages but gather, in its order, which is the stage table's (nlpflow.pipeline.stages).

    Not `--downstream validate`: stages that read no data (train_params) are not downstream of
    it, and their outputs, not in git, would be missing. Not `dvc freeze gather`: DVC cannot
    freeze a stage with `${...}` in it, nor save a frozen stage whose source is gone."""
    import yaml

    stages = yaml.safe_load((project / "dvc.yaml").read_text()).get("stages", {})
    return [name for name in stages if name != snapshot_stage().name]


def _stage_environment(project: Path, record: RunRecord, *, tmp: Path) -> dict[str, str]:
    """The environment of the reproduction's `dvc repro`: the worktree's code, a throw-away
    MLflow store and DVC remote, and the run's torch thread count where it recorded one and
    the environment fixes none."""
    store = f"sqlite:///{tmp / 'mlflow.db'}"
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = os.environ | {
        "NLPFLOW_PROJECT_DIR": str(project), "NLPFLOW_TRACKING_URI": store,
        "MLFLOW_TRACKING_URI": store, "MLFLOW_REGISTRY_URI": store,
        "NLPFLOW_ARTIFACT_ROOT": (tmp / "mlartifacts").as_uri(), "PATH": path,
        # its evaluate stage pushes what it rebuilt: not into the run's remote
        "NLPFLOW_DVC_REMOTE": str(tmp / "remote"),
        # the commit's nlpflow, not the installed one (an editable install points elsewhere)
        "PYTHONPATH": os.pathsep.join(
            p for p in [str(project / "src"), os.environ.get("PYTHONPATH")] if p  # "" means cwd
        ),
    }  # fmt: skip
    if record.cpu_threads is not None and not os.environ.get(ENV_THREADS):
        env[ENV_THREADS] = str(record.cpu_threads)  # train.cpu_threads in params still wins
    return env


def _repro(project: Path, record: RunRecord, *, tmp: Path, progress: Progress) -> dict[str, Any]:
    """`dvc repro` in the worktree: its code, a throw-away MLflow store; returns metrics.json."""
    env = _stage_environment(project, record, tmp=tmp)
    if env.get(ENV_THREADS) != os.environ.get(ENV_THREADS):
        progress(f"torch threads: {env[ENV_THREADS]}, as the run trained ({THREADS_TAG})")
    args = ["repro", "--force"]
    if record.dvc_lock:  # the snapshot pulled is gather's output: every other stage runs again
        args += ["--single-item", *_stages_after_gather(project)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "dvc", *args], cwd=project, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    assert proc.stdout is not None
    tail: list[str] = []
    for line in proc.stdout:
        tail = [*tail[-40:], line.rstrip()]
        if line.startswith("Running stage"):
            progress(line.strip())
    if proc.wait() != 0:
        said = "\n".join(tail)
        raise ReproductionError(f"dvc repro {' '.join(args[1:])} failed in {project}:\n{said}")
    metrics = project / "reports" / "metrics.json"
    if not metrics.is_file():
        raise ReproductionError(f"dvc repro wrote no {metrics}")
    return dict(json.loads(metrics.read_text()))
