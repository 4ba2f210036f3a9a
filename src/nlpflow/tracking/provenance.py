"""Where a run came from, as tags: the git commit and whether the tree differed from it, the
source MLflow's UI shows (project, entry point, repository), and dvc.lock's hashes.

    tracker.set_tags(run_id, git_tags(root) | dvc_hash_tags(root))
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def git_tags(root: Path) -> dict[str, str]:
    """The commit the code came from, whether tracked files differed from it, and the run's
    source as MLflow's UI shows it (its Source column): the project, the entry point that
    started the run, the commit, and the repository's URL when it has a remote."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    remote = _without_credentials(git("remote", "get-url", "origin") or "")
    source = _source_tags(root, remote)
    if commit is None:
        return {"git.commit": "none"} | source
    dirty = git("status", "--porcelain", "--untracked-files=no")
    branch = git("symbolic-ref", "--short", "-q", "HEAD")
    code = {"mlflow.source.git.commit": commit}
    code |= {"mlflow.source.git.repoURL": remote} if remote else {}
    code |= {"mlflow.source.git.branch": branch} if branch else {}
    return {"git.commit": commit, "git.dirty": str(bool(dirty)).lower()} | source | code


def entry_point() -> str:
    """What started this run: `dvc exp run` or `dvc repro` (DVC runs each stage command with
    DVC_EXP_NAME, or DVC_STAGE, set), else the nlpflow command (`nlpflow run`, `nlpflow
    sweep`), else the program (a Prefect worker running a deployment)."""
    import sys

    from nlpflow.config.dvcexp import experiment_name

    if experiment_name() is not None:
        return "dvc exp run"
    if os.environ.get("DVC_STAGE"):
        return "dvc repro"
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    if program == "nlpflow" and len(sys.argv) > 1:
        return f"nlpflow {sys.argv[1]}"
    return program


def _source_tags(root: Path, remote: str) -> dict[str, str]:
    """MLflow's source tags: type PROJECT, named for the repository (its remote URL, which the
    UI links to, else the project folder; a queued DVC experiment runs in a temporary copy,
    so DVC_ROOT names the user's project), with the entry point the UI prints beside it."""
    from nlpflow.config.dvcexp import dvc_root

    project = remote or str(dvc_root() or root)
    return {
        "mlflow.source.type": "PROJECT",
        "mlflow.source.name": project,
        "mlflow.project.entryPoint": entry_point(),
    }


def _without_credentials(url: str) -> str:
    """A remote URL without the user, password or token some clones keep in it (MLflow's UI
    links to it, so it is left out, not masked); nlpflow.config.secrets parses as git and libpq do."""
    from urllib.parse import urlsplit, urlunsplit

    from nlpflow.config.secrets import redact, without_secrets

    url = without_secrets(url)
    parts = urlsplit(url)
    if parts.scheme and "@" in parts.netloc:  # ssh://git@host: a user, not a secret, but noise
        url = urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
    return redact(url)  # whatever the parsers disagree on is masked, never written


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
