"""The DVC remote that keeps every accepted data snapshot and model, and what a run records
so that `nlpflow reproduce RUN_ID` can rebuild it.

Which remote, the first that applies:
1. `NLPFLOW_DVC_REMOTE` (a folder, or an s3:// URL): DVC remote `nlpflow`, written into the
   untracked `.dvc/config.local`; options you set there by hand (MinIO's `endpointurl`) stay.
2. the project's default DVC remote (`dvc remote add -d NAME URL`, e.g. MinIO in the team stack).
3. remote `nlpflow` at `$XDG_DATA_HOME/nlpflow/dvc-remote` (~/.local/share/...): outside every
   working tree, shared by projects (DVC's storage is content-addressed, so they never clash).

    from nlpflow.remote import push, resolve_remote
    push(root, ("gather", "validate"), remote=resolve_remote(root, settings))

S3 needs the `s3` extra (`pip install 'nlpflow[s3]'`, which brings dvc-s3); credentials come from
the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or `dvc remote modify --local`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nlpflow.errors import NlpflowError

if TYPE_CHECKING:
    from nlpflow.settings import Settings
    from nlpflow.stages import StageContext

REMOTE_NAME = "nlpflow"
# Run tags and artifacts `nlpflow reproduce` reads back (not `dvc.*`: lineage reads those as hashes)
REMOTE_TAG = "reproduce.dvc_remote"
REMOTE_NAME_TAG = "reproduce.dvc_remote_name"
PARAMS_ARTIFACT = "reproduce/params.yaml"
LOCK_ARTIFACT = "reproduce/dvc.lock"
METRICS_ARTIFACT = "evaluation/metrics.json"  # logged by the evaluate stage
# Phrases of DVC and botocore errors that a later try may not repeat.
TRANSIENT = ("could not connect", "connection", "timed out", "timeout", "temporarily", "503")


class RemoteError(NlpflowError):
    """The DVC remote is misconfigured, unreachable, or lacks what a run pushed."""

    code = "NLP011"


class UnreachableRemoteError(RemoteError):
    """The remote did not answer: worth retrying."""

    retryable = True


@dataclass(frozen=True)
class Remote:
    name: str
    url: str


def default_remote_dir() -> Path:
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home) / "nlpflow" / "dvc-remote"


def _dvc_config(root: Path) -> tuple[str | None, dict[str, dict[str, str]]]:
    """The project's default remote name and every remote's options, all config levels merged."""
    from dvc.config import Config, ConfigError

    try:
        config = Config(dvc_dir=str(root / ".dvc"))
    except ConfigError as exc:
        raise RemoteError(f"the DVC config of {root} is invalid: {exc}") from None
    remotes = {
        name: {k: str(v) for k, v in opts.items()} for name, opts in config["remote"].items()
    }
    return config["core"].get("remote"), remotes


def _normalise(url: str, root: Path) -> str:
    if "://" in url:
        return url
    path = Path(url).expanduser()
    return str(path if path.is_absolute() else (root / path).resolve())


def resolve_remote(root: Path, settings: Settings) -> Remote:
    """The remote this project pushes to (see the module docstring for the order)."""
    if settings.dvc_remote:
        return Remote(REMOTE_NAME, _normalise(settings.dvc_remote, root))
    default, remotes = _dvc_config(root)
    if default:
        if default not in remotes or "url" not in remotes[default]:
            raise RemoteError(
                f"the default DVC remote {default!r} of {root} has no url: "
                f"`dvc remote add -f {default} URL`, or set NLPFLOW_DVC_REMOTE."
            )
        return Remote(default, _normalise(remotes[default]["url"], root))
    return Remote(REMOTE_NAME, str(default_remote_dir()))


def configure_remote(root: Path, remote: Remote) -> None:
    """Make `remote` a DVC remote of the project at `root`, in the untracked config.local.

    `modify` when the name exists keeps the remote's other options (endpointurl, profile).
    """
    if remote.url.startswith("s3://"):
        import importlib.util

        if importlib.util.find_spec("dvc_s3") is None:
            raise RemoteError(
                f"the DVC remote {remote.url} is on S3, which needs dvc-s3: "
                "pip install 'nlpflow[s3]' (or set NLPFLOW_DVC_REMOTE to a folder)."
            )
    _, remotes = _dvc_config(root)
    if remotes.get(remote.name, {}).get("url") == remote.url:
        return
    exists = remote.name in remotes
    verb = ["modify", "--local", remote.name, "url"] if exists else ["add", "--local", remote.name]
    dvc(root, ["remote", *verb, remote.url], doing=f"configuring DVC remote {remote.name}")


def dvc(root: Path, args: list[str], *, doing: str, env: dict[str, str] | None = None) -> str:
    """nlpflow.pipeline.run_dvc, its failure a RemoteError (retryable when the remote did not
    answer)."""
    from nlpflow.pipeline import DvcCommandError, run_dvc

    try:
        return run_dvc(root, args, doing=doing, env=env)
    except DvcCommandError as exc:
        transient = any(p in exc.said.lower() for p in TRANSIENT)
        raise (UnreachableRemoteError if transient else RemoteError)(exc.args[0]) from None


def push(root: Path, stages: tuple[str, ...], *, remote: Remote) -> str:
    """Push the cached outputs of `stages` (as dvc.lock records them) to `remote`.

    Returns DVC's summary line, e.g. "41 files pushed"."""
    from nlpflow.pipeline import is_dvc_project

    if not is_dvc_project(root):
        raise RemoteError(f"{root} is not a DVC project (no .dvc/ or dvc.yaml): nothing to push")
    configure_remote(root, remote)
    said = dvc(root, ["push", "-r", remote.name, *stages],
               doing=f"pushing stages {', '.join(stages)} to DVC remote {remote.url}")  # fmt: skip
    return said.strip().splitlines()[-1] if said.strip() else "everything up to date"


def record_for_reproduction(ctx: StageContext, *, dvc_lock: bool) -> None:
    """Log to the run what `nlpflow reproduce` needs beside the git tags: the effective params
    (params.yaml as this run saw it, --set and --config merged in, passwords redacted) and,
    when this run wrote dvc.lock (`dvc_lock`), the lock and the remote its data went to."""
    import tempfile

    import yaml

    if ctx.tracker is None or ctx.run_id is None:
        raise NlpflowError("record_for_reproduction needs the run's MLflow run (ctx.run_id)")
    with tempfile.TemporaryDirectory(prefix="nlpflow-record-") as tmp:
        params = Path(tmp) / "params.yaml"
        params.write_text(yaml.safe_dump(ctx.params.public_dict(), sort_keys=False))
        ctx.tracker.log_artifact(ctx.run_id, params, "reproduce")
    if dvc_lock and (ctx.root / "dvc.lock").is_file():
        ctx.tracker.log_artifact(ctx.run_id, ctx.root / "dvc.lock", "reproduce")
        remote = resolve_remote(ctx.root, ctx.settings)
        ctx.tracker.set_tags(ctx.run_id, {REMOTE_TAG: remote.url, REMOTE_NAME_TAG: remote.name})
