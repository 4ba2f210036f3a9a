"""The GX project under version control (gx/) is what validate writes: a run on the bundled
samples with the repository's params leaves every file of it as it is. A check added to a
suite without gx/ regenerated would rewrite the suite (new expectation ids) on a user's first
run, so validate's cache key changes and the next unchanged run validates again.

    .venv/bin/python -m pytest tests/data/test_committed_gx.py -q

After changing a suite: run `nlpflow stage validate` (and the same with `-c
configs/ner_sample.yaml`, `-c configs/topics.yaml`) in the repository, and commit gx/.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nlpflow.config.params import load_params
from nlpflow.config.settings import Settings
from nlpflow.pipeline.runs import make_context
from nlpflow.pipeline.stages import run_stage
from tests.conftest import REPO


@pytest.mark.parametrize("config", [None, "ner_sample.yaml", "topics.yaml"])
def test_validate_on_the_samples_leaves_the_committed_gx_project_as_it_is(
    tmp_path: Path, config: str | None
) -> None:
    root = tmp_path / "project"
    shutil.copytree(REPO / "gx", root / "gx")
    shutil.copy(REPO / "behavioural.yaml", root / "behavioural.yaml")
    configs = [REPO / "configs" / config] if config else []
    params = load_params(REPO / "params.yaml", configs=configs)
    if params.evaluate.behavioural is not None:  # the configs name theirs under configs/
        target = root / params.evaluate.behavioural
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / params.evaluate.behavioural, target)
    files = sorted(p for p in (root / "gx").rglob("*") if p.is_file())
    before = {p.relative_to(root): p.read_bytes() for p in files}
    ctx = make_context(root, params, Settings(project_dir=root, data_root=REPO), tracked=False)
    run_stage("gather", ctx)
    report = run_stage("validate", ctx)
    after = {p.relative_to(root): p.read_bytes() for p in (root / "gx").rglob("*") if p.is_file()}
    changed = sorted(str(k) for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert changed == [], f"validate rewrote {changed}: regenerate gx/ and commit it"
    assert report.suite_updated is False  # type: ignore[attr-defined]
