"""nlpflow.pipeline.remote against real DVC projects (`dvc init --no-scm` in a temporary folder):
which remote is chosen, how it is configured, what a push puts there, and the errors."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nlpflow.config.settings import Settings
from nlpflow.pipeline.remote import (
    REMOTE_NAME,
    Remote,
    RemoteError,
    code_state_tags,
    configure_remote,
    push,
    resolve_remote,
)

# One stage named like the pipeline's first, writing one small file, so a push has an object.
DVC_YAML = """stages:
  gather:
    cmd: python -c "import pathlib; p = pathlib.Path('data'); p.mkdir(exist_ok=True); (p / 'x.txt').write_text('snapshot\\n')"
    outs:
      - data
"""


def _dvc(root: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=root, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    _dvc(root, "init", "--no-scm", "-q")
    return root


def _settings(root: Path, remote: str | None = None) -> Settings:
    return Settings(project_dir=root, dvc_remote=remote)


def _local_config(root: Path) -> str:
    return (root / ".dvc" / "config.local").read_text()


def test_the_setting_wins_and_a_relative_folder_resolves_against_the_project(
    project: Path,
) -> None:
    _dvc(project, "remote", "add", "-d", "team", "/srv/team-remote")
    found = resolve_remote(project, _settings(project, "../remote"))
    assert found == Remote(REMOTE_NAME, str(project.parent / "remote"))
    s3 = resolve_remote(project, _settings(project, "s3://nlpflow-dvc/store"))
    assert s3 == Remote(REMOTE_NAME, "s3://nlpflow-dvc/store")


def test_without_the_setting_the_projects_default_remote_then_the_data_home(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert resolve_remote(project, _settings(project)) == Remote(
        REMOTE_NAME, str(tmp_path / "xdg" / "nlpflow" / "dvc-remote")
    )
    _dvc(project, "remote", "add", "-d", "minio", "s3://nlpflow-dvc/store")
    assert resolve_remote(project, _settings(project)) == Remote("minio", "s3://nlpflow-dvc/store")


def test_configure_writes_config_local_and_keeps_options_set_by_hand(
    project: Path, tmp_path: Path
) -> None:
    configure_remote(project, Remote(REMOTE_NAME, str(tmp_path / "a")))
    assert f"url = {tmp_path / 'a'}" in _local_config(project)
    assert _dvc(project, "remote", "default").strip() == REMOTE_NAME  # plain `dvc push` uses it
    assert "remote" not in (project / ".dvc" / "config").read_text()  # the tracked file stays
    # as MinIO's endpointurl would be (a folder remote takes no endpoint; jobs is an option of all)
    _dvc(project, "remote", "modify", "--local", REMOTE_NAME, "jobs", "3")
    configure_remote(project, Remote(REMOTE_NAME, str(tmp_path / "b")))
    text = _local_config(project)
    assert f"url = {tmp_path / 'b'}" in text and str(tmp_path / "a") not in text
    assert "jobs = 3" in text


@pytest.mark.skipif(
    __import__("importlib").util.find_spec("dvc_s3") is not None, reason="dvc-s3 is installed"
)
def test_an_s3_remote_without_dvc_s3_names_the_extra(project: Path) -> None:
    with pytest.raises(RemoteError, match=r"needs dvc-s3: pip install 'nlpflow\[s3\]'"):
        configure_remote(project, Remote(REMOTE_NAME, "s3://nlpflow-dvc/store"))


def test_push_puts_the_stage_outputs_in_the_remote_by_content_hash(
    project: Path, tmp_path: Path
) -> None:
    (project / "dvc.yaml").write_text(DVC_YAML)
    _dvc(project, "repro", "-q")
    store = tmp_path / "remote"
    said = push(project, ("gather",), remote=Remote(REMOTE_NAME, str(store)))
    assert said == "2 files pushed"  # the file and the folder's listing
    md5 = hashlib.md5(b"snapshot\n").hexdigest()
    assert (store / "files" / "md5" / md5[:2] / md5[2:]).read_text() == "snapshot\n"
    assert push(project, ("gather",), remote=Remote(REMOTE_NAME, str(store))) == (
        "Everything is up to date."
    )


def test_push_to_an_unusable_remote_or_outside_dvc_fails_clearly(
    project: Path, tmp_path: Path
) -> None:
    (project / "dvc.yaml").write_text(DVC_YAML)
    _dvc(project, "repro", "-q")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(
        RemoteError, match=r"pushing stages gather to DVC remote .*a-file/store"
    ) as exc:
        push(project, ("gather",), remote=Remote(REMOTE_NAME, str(blocker / "store")))
    assert "Not a directory" in str(exc.value) and not exc.value.retryable
    assert "Having any troubles" not in str(exc.value)
    with pytest.raises(RemoteError, match="is not a DVC project"):
        push(tmp_path, ("gather",), remote=Remote(REMOTE_NAME, str(tmp_path / "store")))


def test_plain_dvc_push_and_pull_use_the_remote_nlpflow_pushed_to(
    project: Path, tmp_path: Path
) -> None:
    (project / "dvc.yaml").write_text(DVC_YAML)
    _dvc(project, "repro", "-q")
    # the team's default in the tracked config; NLPFLOW_DVC_REMOTE names another for this machine
    _dvc(project, "remote", "add", "-d", "team", str(tmp_path / "team"))
    store = tmp_path / "mine"
    remote = resolve_remote(project, _settings(project, str(store)))
    push(project, ("gather",), remote=remote)
    assert "[core]" in _local_config(project) and f"remote = {REMOTE_NAME}" in _local_config(
        project
    )
    assert "remote = team" in (project / ".dvc" / "config").read_text()  # the tracked file stays
    (project / "data" / "y.txt").write_text("new\n")
    _dvc(project, "commit", "-f", "-q", "gather")
    assert _dvc(project, "push").strip().splitlines()[-1] == "2 files pushed"  # no -r
    md5 = hashlib.md5(b"new\n").hexdigest()
    assert (store / "files" / "md5" / md5[:2] / md5[2:]).read_text() == "new\n"
    assert not (tmp_path / "team").exists()
    # a fresh cache and workspace get everything back from it with a plain pull
    shutil.rmtree(project / ".dvc" / "cache")
    shutil.rmtree(project / "data")
    _dvc(project, "pull")
    assert (project / "data" / "y.txt").read_text() == "new\n"
    assert (project / "data" / "x.txt").read_text() == "snapshot\n"
    # without the setting nlpflow now finds the same remote as DVC's default
    assert resolve_remote(project, _settings(project)) == remote


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def test_code_is_dirty_only_beyond_params_lock_and_pipeline_outputs(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "src").mkdir(parents=True)
    (root / "reports").mkdir()
    (root / "dvc.yaml").write_text(
        "stages:\n  evaluate:\n    cmd: x\n    metrics:\n"
        "      - reports/metrics.json:\n          cache: false\n"
    )
    files = ["params.yaml", "dvc.lock", "reports/metrics.json", "src/code.py"]
    for rel in files:
        (root / rel).write_text("v1\n")
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "v1")
    assert code_state_tags(root) == {"reproduce.code_dirty": "false"}
    for rel in files[:3]:  # what `dvc exp run -S` and the run itself change
        (root / rel).write_text("v2\n")
    (root / "src" / "untracked.py").write_text("x\n")
    assert code_state_tags(root) == {"reproduce.code_dirty": "false"}
    (root / "src" / "code.py").write_text("v2\n")
    assert code_state_tags(root) == {"reproduce.code_dirty": "true"}
    outside = tmp_path / "no-git"
    outside.mkdir()
    assert code_state_tags(outside) == {}
