"""nlpflow.config.dvcexp: a stage's DVC experiment, read from the environment DVC gives it, and the
user's project seen from the temporary copy a queued experiment runs in."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlpflow.config.dvcexp import dvc_experiment_tags, user_project
from nlpflow.config.settings import Settings


def test_tags_name_the_experiment_and_its_baseline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    monkeypatch.delenv("DVC_EXP_BASELINE_REV", raising=False)
    assert dvc_experiment_tags() == {}  # `dvc repro`, a flow run
    monkeypatch.setenv("DVC_EXP_NAME", "c-five")
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "ab" * 20)
    assert dvc_experiment_tags() == {"dvc.exp_name": "c-five", "dvc.exp_baseline": "ab" * 20}


def _copy(home: Path, sub: str = "") -> Path:
    """A queued experiment's copy of `home`, laid out as DVC lays it out."""
    (home / sub / ".dvc").mkdir(parents=True, exist_ok=True)
    copy = home / sub / ".dvc" / "tmp" / "exps" / "tmpab12cd" / sub
    (copy / ".dvc").mkdir(parents=True)
    return copy


def test_a_queued_experiments_copy_maps_to_the_users_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "project"
    copy = _copy(home)
    monkeypatch.setenv("DVC_ROOT", str(home))
    assert user_project(copy) == home
    (copy / "sub").mkdir()
    assert user_project(copy / "sub") == home / "sub"  # a dvc.yaml below the DVC root
    assert user_project(home) == home  # `dvc exp run` in the workspace, `dvc repro`
    assert user_project(tmp_path / "elsewhere") == tmp_path / "elsewhere"
    monkeypatch.delenv("DVC_ROOT")
    assert user_project(copy) == copy.resolve()  # not run by DVC: nothing to map


def test_a_dvc_root_below_git_maps_through_its_own_dvc_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `dvc init --subdir`: the copy holds the whole git repository, its DVC root a folder in it
    home = tmp_path / "repo" / "ml"
    copy = home / ".dvc" / "tmp" / "exps" / "tmpab12cd" / "ml"
    (copy / ".dvc").mkdir(parents=True)
    monkeypatch.setenv("DVC_ROOT", str(home))
    assert user_project(copy) == home


def test_the_default_store_of_a_queued_experiment_is_the_users_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "project"
    copy = _copy(home)
    monkeypatch.setenv("DVC_ROOT", str(home))
    for name in ("NLPFLOW_TRACKING_URI", "MLFLOW_TRACKING_URI", "NLPFLOW_ARTIFACT_ROOT"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(project_dir=copy)
    assert settings.root == copy.resolve()  # params and outputs stay the experiment's own
    assert settings.resolved_tracking_uri == f"sqlite:///{home / 'mlflow.db'}"
    assert settings.resolved_artifact_root == (home / "mlartifacts").as_uri()
    monkeypatch.setenv("NLPFLOW_TRACKING_URI", "http://mlflow:5000")  # a store of the user's
    assert Settings(project_dir=copy).resolved_tracking_uri == "http://mlflow:5000"
