"""A change to a file a stage imports re-runs that stage, and nothing else, under both runners:
`dvc status` (dvc.yaml's code deps) and the Prefect cache keys (the stage tasks' cache policy)
name the same stages, those whose module imports the changed file."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from nlpflow.config.params import load_params
from nlpflow.config.settings import Settings
from nlpflow.pipeline.dvcyaml import render
from nlpflow.pipeline.fingerprint import stage_key
from nlpflow.pipeline.stages import METRICS, STAGES, StageContext
from tests.conftest import _git, _venv_env, fast_params, make_project

pytestmark = pytest.mark.subprocess


def _dvc(root: Path, *args: str) -> str:
    done = subprocess.run(["dvc", *args], cwd=root, capture_output=True, text=True, env=_venv_env())
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git + DVC project whose dvc.lock records every stage, with stand-in outputs (what a
    stage writes does not matter here, only what DVC and the keys see of the code)."""
    root = make_project(tmp_path_factory.mktemp("code") / "project", fast_params())
    (root / "dvc.yaml").write_text(render(code_root=root / "src" / "nlpflow"))
    for stage in STAGES:
        for out in stage.outs:
            path = root / out
            if path.suffix:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("{}" if out == METRICS else f"{out}\n")
            else:
                path.mkdir(parents=True, exist_ok=True)
                (path / "part.txt").write_text(f"{out}\n")
    _dvc(root, "commit", "--force", "--quiet")
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "recorded")
    assert json.loads(_dvc(root, "status", "--json")) == {}
    return root


def _keys(root: Path) -> dict[str, str | None]:
    ctx = StageContext(
        root=root, params=load_params(root / "params.yaml"), settings=Settings(project_dir=root)
    )
    return {s.name: stage_key(s, ctx, code_root=root / "src" / "nlpflow") for s in STAGES}


@pytest.mark.parametrize(
    ("changed", "expected"),
    [
        ("training/families/tfidf.py", {"train", "baseline", "evaluate", "register"}),
        ("evaluation/stats.py", {"evaluate", "register"}),
        ("pipeline/steps/preprocess.py", {"preprocess"}),
        ("cli/main.py", set()),  # no stage imports the CLI
    ],
)
def test_both_runners_rerun_exactly_the_stages_importing_a_changed_file(
    project: Path, changed: str, expected: set[str]
) -> None:
    before = _keys(project)
    file = project / "src" / "nlpflow" / changed
    original = file.read_text()
    file.write_text(original + "\n# changed\n")
    try:
        status = json.loads(_dvc(project, "status", "--json"))
        after = _keys(project)
    finally:
        file.write_text(original)
    dvc_reruns = {
        name for name, changes in status.items()
        if any(f"src/nlpflow/{changed}" in c.get("changed deps", {}) for c in changes)
    }  # fmt: skip
    assert set(status) == dvc_reruns  # nothing else changed for DVC
    prefect_reruns = {name for name in before if before[name] != after[name]}
    assert dvc_reruns == prefect_reruns == expected
    assert json.loads(_dvc(project, "status", "--json")) == {}  # restored: nothing to re-run
