"""The MLflow adapter: one MLflow run per pipeline run, whichever runner drives it.

The Prefect flow opens the run and hands its id to every task. `nlpflow stage NAME` (what
`dvc repro` calls) runs one stage per process, so the open run's id is kept in
`.nlpflow/active_run.json` until the last stage (register) closes it or a stage fails.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from nlpflow.errors import TrackingError
from nlpflow.settings import Settings

ACTIVE_RUN = Path(".nlpflow") / "active_run.json"


class Tracker:
    """A thin wrapper over MlflowClient bound to one tracking URI (no global state)."""

    def __init__(self, settings: Settings) -> None:
        from mlflow import MlflowClient

        self.settings = settings
        self.uri = settings.resolved_tracking_uri
        self.client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    def experiment_id(self, name: str) -> str:
        from mlflow.exceptions import MlflowException

        try:
            found = self.client.get_experiment_by_name(name)
            if found is not None:
                return str(found.experiment_id)
            return str(
                self.client.create_experiment(
                    name, artifact_location=self.settings.resolved_artifact_root
                )
            )
        except MlflowException as exc:
            if "already exists" in str(exc):  # created by a concurrent run meanwhile
                return str(self.client.get_experiment_by_name(name).experiment_id)  # type: ignore[union-attr]
            raise TrackingError(f"MLflow at {self.uri} failed: {exc}") from None

    def start_run(self, experiment: str, *, run_name: str | None, tags: dict[str, str]) -> str:
        run = self.client.create_run(self.experiment_id(experiment), run_name=run_name, tags=tags)
        return str(run.info.run_id)

    def is_running(self, run_id: str) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_run(run_id).info.status == "RUNNING"
        except MlflowException:
            return False

    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for start in range(0, len(items), 100):  # MLflow's batch limit
            self.client.log_batch(run_id, params=items[start : start + 100])

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        if batch:
            self.client.log_batch(run_id, metrics=batch)

    def set_tags(self, run_id: str, tags: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        if tags:
            self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        if path.is_dir():
            self.client.log_artifacts(run_id, str(path), artifact_path)
        elif path.exists():
            self.client.log_artifact(run_id, str(path), artifact_path)

    def end_run(self, run_id: str, status: str) -> None:
        self.client.set_terminated(run_id, status=status)


def git_tags(root: Path) -> dict[str, str]:
    """The commit the code came from, and whether tracked files differed from it."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"git.commit": "none"}
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {"git.commit": commit, "git.dirty": str(bool(dirty)).lower()}


def dvc_hash_tags(root: Path) -> dict[str, str]:
    """md5 of every out and dep recorded in dvc.lock, as `dvc.<path>` tags."""
    import yaml

    lock = root / "dvc.lock"
    if not lock.exists():
        return {}
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    tags = {}
    for stage in stages.values():
        for entry in [*stage.get("deps", []), *stage.get("outs", [])]:
            path = entry.get("path", "")
            if "md5" in entry and not path.endswith(".py"):  # data and models, not code
                tags[f"dvc.{path}"] = entry["md5"]
    return tags


# ------------------------------------------------------------ the CLI runner's open run


def read_active_run(root: Path) -> str | None:
    marker = root / ACTIVE_RUN
    if not marker.exists():
        return None
    return str(json.loads(marker.read_text())["run_id"])


def write_active_run(root: Path, run_id: str) -> None:
    marker = root / ACTIVE_RUN
    marker.parent.mkdir(parents=True, exist_ok=True)
    (marker.parent / ".gitignore").write_text("*\n")
    marker.write_text(json.dumps({"run_id": run_id}))


def clear_active_run(root: Path) -> None:
    (root / ACTIVE_RUN).unlink(missing_ok=True)
