"""The DVC remote that keeps every accepted data snapshot and model, and what a run records
so that `nlpflow reproduce RUN_ID` can rebuild it.

Which remote, the first that applies:
1. `NLPFLOW_DVC_REMOTE` (a folder, or an s3:// URL): DVC remote `nlpflow`, written into the
   untracked `.dvc/config.local`; options you set there by hand (MinIO's `endpointurl`) stay.
2. the project's default DVC remote (`dvc remote add -d NAME URL`, e.g. MinIO in the team stack).
3. remote `nlpflow` at `$XDG_DATA_HOME/nlpflow/dvc-remote` (~/.local/share/...): outside every
   working tree, shared by projects (DVC's storage is content-addressed, so they never clash).

In cases 1 and 3 the remote also becomes DVC's default (`core.remote`) in `.dvc/config.local`, so
plain `dvc push` / `dvc pull` use the remote nlpflow pushes to. The local level, because both are
this machine's choices (an environment variable, a folder in this user's home): the tracked
`.dvc/config` holds what every clone shares, like the team's MinIO of case 2. A local default
set for NLPFLOW_DVC_REMOTE overrides that on this machine only, and stays after the variable
is unset (case 2 then finds it): `dvc remote default --unset --local` returns to the team's.

    from nlpflow.pipeline.remote import push, resolve_remote
    push(root, ("gather", "validate"), remote=resolve_remote(root, settings))
    finish_dvc_run(ctx)  # `dvc repro` / `dvc exp run` after evaluate: push, then record

S3 needs the `s3` extra (`pip install 'nlpflow[s3]'`, which brings dvc-s3); credentials come from
the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or `dvc remote modify --local`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nlpflow.config.secrets import redact, without_secrets
from nlpflow.errors import NlpflowError
from nlpflow.errors import RemoteError as RemoteError
from nlpflow.errors import UnreachableRemoteError as UnreachableRemoteError
from nlpflow.pipeline.stages import STAGES

if TYPE_CHECKING:
    from nlpflow.config.settings import Settings
    from nlpflow.pipeline.stages import StageContext

REMOTE_NAME = "nlpflow"
# Run tags and artifacts `nlpflow reproduce` reads back (not `dvc.*`: lineage reads those as hashes)
REMOTE_TAG = "reproduce.dvc_remote"
REMOTE_NAME_TAG = "reproduce.dvc_remote_name"
PARAMS_ARTIFACT = "reproduce/params.yaml"
LOCK_ARTIFACT = "reproduce/dvc.lock"
METRICS_ARTIFACT = "evaluation/metrics.json"  # logged by the evaluate stage
# Whether code differed from git.commit: tracked files other than the params and lock the record
# restores, and the pipeline's outputs (a `dvc exp run -S` edits params.yaml, a run metrics.json)
CODE_DIRTY_TAG = "reproduce.code_dirty"
RESTORED = ("params.yaml", "dvc.lock")
# Stages whose outputs go to the DVC remote (Stage.pushed): the accepted data snapshot, the
# processed rows and the models (evaluate's and register's outputs are small and not cached by DVC).
PUSHED_STAGES = tuple(stage.name for stage in STAGES if stage.pushed)
# `nlpflow stage` records its run at the end of this stage (Stage.records_run, evaluate): its
# metrics are what reproduce compares, and register, which DVC skips when evaluate's outputs did
# not change, adds nothing.
RECORDED_BY = next(stage.name for stage in STAGES if stage.records_run)
# Phrases of DVC and botocore errors that a later try may not repeat. The one place nlpflow
# reads another tool's words: DVC runs as a command (nlpflow.pipeline.dvc_cli), so its output
# is all there is, no exception type. Checked against DVC 3.67 (dvc-s3's botocore messages).
TRANSIENT = ("could not connect", "connection", "timed out", "timeout", "temporarily", "503")


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
    """An absolute URL; a relative folder is the user's project's, also from a queued
    experiment's temporary copy (which is deleted afterwards)."""
    from nlpflow.config.dvcexp import user_project

    if "://" in url:
        return url
    path = Path(url).expanduser()
    return str(path if path.is_absolute() else (user_project(root) / path).resolve())


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
    """Make `remote` the default DVC remote of the project at `root`, in the untracked
    config.local (module docstring: why that level).

    `modify` when the name exists keeps the remote's other options (endpointurl, profile).
    """
    if remote.url.startswith("s3://"):
        import importlib.util

        if importlib.util.find_spec("dvc_s3") is None:
            raise RemoteError(
                f"the DVC remote {remote.url} is on S3, which needs dvc-s3: "
                "pip install 'nlpflow[s3]' (or set NLPFLOW_DVC_REMOTE to a folder)."
            )
    default, remotes = _dvc_config(root)
    if remotes.get(remote.name, {}).get("url") != remote.url:
        if remote.name in remotes:
            args = ["modify", "--local", remote.name, "url", remote.url]
        else:
            args = ["add", "--local", remote.name, remote.url]
        dvc(root, ["remote", *args], doing=f"configuring DVC remote {remote.name}")
    if default != remote.name:
        dvc(root, ["remote", "default", "--local", remote.name],
            doing=f"making {remote.name} the default DVC remote")  # fmt: skip


def dvc(root: Path, args: list[str], *, doing: str, env: dict[str, str] | None = None) -> str:
    """nlpflow.pipeline.dvc_cli.run_dvc, its failure a RemoteError (retryable when the remote did not
    answer)."""
    from nlpflow.pipeline.dvc_cli import DvcCommandError, run_dvc

    try:
        return run_dvc(root, args, doing=doing, env=env)
    except DvcCommandError as exc:
        transient = any(p in exc.said.lower() for p in TRANSIENT)
        # DVC's output may repeat a remote URL with its credentials: errors reach logs and Prefect
        message = redact(exc.args[0])
        raise (UnreachableRemoteError if transient else RemoteError)(message) from None


def push(root: Path, stages: tuple[str, ...], *, remote: Remote) -> str:
    """Push the cached outputs of `stages` (as dvc.lock records them) to `remote`.

    Returns DVC's summary line, e.g. "41 files pushed"."""
    from nlpflow.config.dvcexp import user_project
    from nlpflow.pipeline.dvc_cli import is_dvc_project

    if not is_dvc_project(root):
        raise RemoteError(f"{root} is not a DVC project (no .dvc/ or dvc.yaml): nothing to push")
    configure_remote(root, remote)
    if (home := user_project(root)) != root.resolve() and is_dvc_project(home):
        configure_remote(home, remote)  # a queued experiment's copy: the user's project too
    said = dvc(root, ["push", "-r", remote.name, *stages],
               doing=f"pushing stages {', '.join(stages)} to DVC remote {redact(remote.url)}")  # fmt: skip
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
        # credentials stay in the environment or .dvc/config.local, never in the run's tags
        url = without_secrets(remote.url)
        ctx.tracker.set_tags(ctx.run_id, {REMOTE_TAG: url, REMOTE_NAME_TAG: remote.name})


def finish_dvc_run(ctx: StageContext) -> None:
    """What the flow does at its end, for a pipeline run by `nlpflow stage` (at the end of
    RECORDED_BY): under DVC (`dvc repro`, `dvc exp run`), which wrote dvc.lock for the stages
    before this one, push their data and models to the remote and record the lock; run by hand,
    only the params (no lock describes the run)."""
    from nlpflow.config.dvcexp import dvc_root

    under_dvc = dvc_root() is not None and (ctx.root / "dvc.lock").is_file()
    if under_dvc:
        push(ctx.root, PUSHED_STAGES, remote=resolve_remote(ctx.root, ctx.settings))
    record_for_reproduction(ctx, dvc_lock=under_dvc)


def code_state_tags(root: Path) -> dict[str, str]:
    """`reproduce.code_dirty`: whether tracked files differ from the commit, leaving out those
    a reproduction restores from the record (params.yaml, dvc.lock) or rebuilds (dvc.yaml's
    outputs, e.g. a git-tracked reports/metrics.json). A DVC experiment edits params.yaml: its run
    still reproduces from its commit, where git.dirty alone would refuse it. Empty outside git."""
    import subprocess

    skip = [*RESTORED, *_pipeline_outputs(root)]
    try:
        done = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ":/",
             *(f":(exclude){path}" for path in skip)],
            cwd=root, capture_output=True, text=True, timeout=10,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return {}
    if done.returncode != 0:
        return {}
    return {CODE_DIRTY_TAG: str(bool(done.stdout.strip())).lower()}


def _pipeline_outputs(root: Path) -> list[str]:
    """The paths dvc.yaml's stages write (outs, metrics, plots), relative to `root`."""
    import yaml

    try:
        stages = (yaml.safe_load((root / "dvc.yaml").read_text()) or {}).get("stages", {})
    except (OSError, yaml.YAMLError):
        return []
    paths = []
    for stage in stages.values():
        for kind in ("outs", "metrics", "plots"):
            for entry in stage.get(kind) or []:
                paths.append(str(next(iter(entry)) if isinstance(entry, dict) else entry))
    return paths
