"""The baseline stage trains nothing when it would train the model itself (train.family is the
baseline's family, same params, no augmentation): evaluate scores the model as its own
baseline, and the stage runs again when train's family changes, so a stale "same as the
model" never stands in for another family's baseline.

    .venv/bin/python -m pytest tests/model/test_baseline_reuse.py -q
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import yaml

from nlpflow.config.params import load_params
from nlpflow.config.settings import Settings
from nlpflow.pipeline.paths import BASELINE, BASELINE_PARAMS, METRICS
from nlpflow.pipeline.runs import make_context
from nlpflow.pipeline.stages import run_stage
from tests.conftest import REPO, fast_params

STAGES = ("gather", "validate", "preprocess", "train_params", "train", "baseline", "evaluate")


def _project(root: Path, **train: object) -> Path:
    tree = yaml.safe_load(fast_params(family="tfidf_logreg"))
    tree["train"].update(train)
    root.mkdir(parents=True)
    (root / "params.yaml").write_text(yaml.safe_dump(tree, sort_keys=False))
    shutil.copytree(REPO / "gx", root / "gx")
    shutil.copy(REPO / "behavioural.yaml", root / "behavioural.yaml")
    return root


def _run(root: Path, caplog: pytest.LogCaptureFixture) -> dict[str, object]:
    params = load_params(root / "params.yaml")
    ctx = make_context(root, params, Settings(project_dir=root, data_root=REPO), tracked=False)
    with caplog.at_level(logging.INFO, logger="nlpflow"):
        for stage in STAGES:
            run_stage(stage, ctx)
    return json.loads((root / METRICS).read_text())


def test_a_tfidf_model_is_its_own_baseline_and_is_trained_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = _project(tmp_path / "same")
    metrics = _run(root, caplog)
    trainings = [r.getMessage() for r in caplog.records if r.getMessage().startswith("training ")]
    assert trainings == [trainings[0]] and "tfidf_logreg" in trainings[0]  # once, not twice
    assert sorted(p.name for p in (root / BASELINE).iterdir()) == ["same_as_model.json"]
    baseline = metrics["baseline"]
    assert isinstance(baseline, dict) and baseline["family"] == "tfidf_logreg"
    assert baseline["macro_f1"] == metrics["macro_f1"] and 0.5 < baseline["macro_f1"] <= 1.0
    assert yaml.safe_load((root / BASELINE_PARAMS).read_text())["same_as_model"] is True


def test_other_params_or_another_family_train_a_baseline_of_its_own(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # the baseline learns from the data as it is: with augmentation on, the models differ
    root = _project(tmp_path / "augmented", augment={"enabled": True, "n_aug": 1})
    metrics = _run(root, caplog)
    assert (root / BASELINE / "nlpflow.json").is_file()
    assert not (root / BASELINE / "same_as_model.json").exists()
    trainings = [r.getMessage() for r in caplog.records if r.getMessage().startswith("training ")]
    assert len(trainings) == 2
    assert yaml.safe_load((root / BASELINE_PARAMS).read_text())["same_as_model"] is False
    assert isinstance(metrics["baseline"], dict) and metrics["baseline"]["family"] == "tfidf_logreg"
