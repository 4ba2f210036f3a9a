"""Running `dvc` in a project, and dvc.lock's record of the stages a flow ran.

    from nlpflow.pipeline.dvc_cli import record_dvc_stage, run_dvc
    run_dvc(root, ["status"], doing="dvc status")   # its output; DvcCommandError if it fails
    record_dvc_stage(root, "train", "evaluate")      # `dvc commit`: dvc.lock as `dvc repro` writes it

After flow tasks, `record_dvc_stage` writes the stages' outputs into dvc.lock exactly as
`dvc repro` would, so `dvc status` is clean after a flow run.
"""

from __future__ import annotations

from pathlib import Path

from nlpflow.errors import DvcCommandError as DvcCommandError


def is_dvc_project(root: Path) -> bool:
    return (root / ".dvc").is_dir() and (root / "dvc.yaml").is_file()


def run_dvc(root: Path, args: list[str], *, doing: str, env: dict[str, str] | None = None) -> str:
    """Run `dvc ARGS` in `root` and return its output; a failure is a DvcCommandError saying
    what was being done and what DVC said.

    A subprocess in `root`, not DVC's Python API: DVC resolves relative paths against the
    process's working directory, which a flow must not change under its other tasks.
    """
    import subprocess
    import sys

    from nlpflow.shutdown import signal_exit_reason, signals_deferred

    # A stop signal raised here would kill dvc half-way through writing dvc.lock and its
    # cache: it waits until dvc is done (seconds), then stops the run as usual.
    with signals_deferred():
        done = subprocess.run(
            [sys.executable, "-m", "dvc", *args], cwd=root, capture_output=True, text=True,
            env=env, start_new_session=True,  # a Ctrl-C to the terminal's group spares it too
        )  # fmt: skip
    if done.returncode == 0:
        return done.stdout
    said = " ".join(
        line.strip() for line in (done.stderr or done.stdout).splitlines() if line.strip()
    )
    said = said.split(" Having any troubles?")[0]  # DVC's support footer
    stopped = signal_exit_reason(done.returncode)  # killed: its stderr is empty or cut short
    if stopped is not None:
        said = f"dvc was {stopped}" + (f" ({said})" if said else "")
    elif not said:
        said = f"dvc exited with code {done.returncode} and printed nothing"
    raise DvcCommandError(f"{doing} failed in {root}: {said}", said=said)


def record_dvc_stage(root: Path, *names: str) -> None:
    """`dvc commit` stages: hash their deps, params and outs into dvc.lock, cache the outs."""
    run_dvc(
        root,
        ["commit", "--force", "--quiet", *names],
        doing=f"dvc commit of stage(s) {', '.join(names)}",
    )


# A stage whose cached result the flow reuses must still be in dvc.lock: `dvc commit` takes
# a second or two per stage, so a marker remembers which cache key each lock entry records.
DVC_RECORDED = Path(".nlpflow") / "cache" / "dvc-recorded.json"


def _lock_entry_digests(root: Path) -> dict[str, str]:
    """sha256 of each stage's entry in dvc.lock, from one read of the file."""
    import hashlib
    import json

    import yaml

    lock = root / "dvc.lock"
    if not lock.exists():
        return {}
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    return {
        name: hashlib.sha256(json.dumps(entry, sort_keys=True).encode()).hexdigest()
        for name, entry in stages.items()
    }


def _read_marker(root: Path) -> dict[str, dict[str, str | None]]:
    import json

    marker = root / DVC_RECORDED
    try:
        return dict(json.loads(marker.read_text()))
    except (OSError, ValueError):
        return {}


def remember_dvc_stages(root: Path, keys: dict[str, str | None]) -> None:
    """Note that dvc.lock's entry for each stage now records the outputs of its cache key."""
    import json

    marker = root / DVC_RECORDED
    marker.parent.mkdir(parents=True, exist_ok=True)
    entries, lock = _read_marker(root), _lock_entry_digests(root)
    entries |= {name: {"key": key, "lock": lock.get(name)} for name, key in keys.items()}
    marker.write_text(json.dumps(entries, indent=1))


def dvc_stages_recorded(root: Path, keys: dict[str, str | None]) -> set[str]:
    """The stages whose dvc.lock entry is the one written for their cache key."""
    entries, lock = _read_marker(root), _lock_entry_digests(root)
    return {
        name
        for name, key in keys.items()
        if key is not None
        and entries.get(name) == {"key": key, "lock": lock.get(name)}
        and lock.get(name) is not None
    }
