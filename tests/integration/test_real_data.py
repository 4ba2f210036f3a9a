"""Real public data from ../shared/datasets (skipped, with the reason, where it is absent)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nlpflow.params import parse_params
from nlpflow.pipeline import make_context
from nlpflow.settings import Settings
from nlpflow.stages import METRICS, STAGE_NAMES, run_stage
from tests.conftest import SHARED_DATASETS

MR = SHARED_DATASETS / "mr"
pytestmark = pytest.mark.skipif(
    not (MR / "splits").is_dir(),
    reason=f"{MR} is absent: the shared datasets are not beside this checkout",
)


def test_tfidf_logreg_on_movie_reviews_reaches_075(tmp_path: Path) -> None:
    params = parse_params(
        {
            "data": {"source": str(MR / "splits"), "format": "folder"},
            "preprocess": {"lowercase": True},
            "train": {"family": "tfidf_logreg"},
        }
    )
    ctx = make_context(tmp_path, params, Settings(project_dir=tmp_path), tracked=False)
    for name in STAGE_NAMES[:-1]:  # everything but register (no tracking here)
        run_stage(name, ctx)
    metrics = json.loads((tmp_path / METRICS).read_text())
    gathered = json.loads((tmp_path / "reports/validation/summary.json").read_text())
    assert gathered["rows"] == {"train": 8530, "validation": 1066, "test": 1066}
    assert metrics["per_class"]["1"]["support"] + metrics["per_class"]["0"]["support"] == 1066
    assert metrics["accuracy"] >= 0.75, metrics["accuracy"]
