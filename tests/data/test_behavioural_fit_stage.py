"""The validate stage checks the behavioural file against the data's labels, before training:
on a new dataset the sample's file runs without its tests naming absent labels (report, log and
MLflow tag say so); a user's own file that names absent labels stops the run there."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlpflow.errors import ParamsError
from nlpflow.config.params import parse_params
from nlpflow.config.settings import Settings
from nlpflow.pipeline.stages import StageContext, run_stage
from tests.conftest import REPO


def _project(tmp_path: Path, behavioural: str) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    rows = [f"what a great film number {i},pos\n" for i in range(15)]
    rows += [f"a dull and boring film number {i},neg\n" for i in range(15)]
    (root / "reviews.csv").write_text("text,label\n" + "".join(rows))
    (root / "behavioural.yaml").write_text(behavioural)
    return root


def _validate(root: Path, *, tracked: bool) -> tuple[object, dict[str, str]]:
    from nlpflow.tracking.tracker import Tracker

    settings = Settings(project_dir=root, data_root=root)
    params = parse_params({"data": {"source": "reviews.csv"}})
    tracker = Tracker(settings) if tracked else None
    run_id = tracker.start_run("fit", run_name="fit", tags={}) if tracker else None
    ctx = StageContext(root=root, params=params, settings=settings, tracker=tracker, run_id=run_id)
    run_stage("gather", ctx)
    report = run_stage("validate", ctx)
    tags = tracker.client.get_run(run_id).data.tags if tracker and run_id else {}
    return report, tags


def test_sample_behavioural_file_on_new_labels_warns_and_goes_on(tmp_path: Path) -> None:
    root = _project(tmp_path, (REPO / "behavioural.yaml").read_text())
    report, tags = _validate(root, tracked=True)
    assert report.success  # type: ignore[attr-defined]
    (warning,) = report.warnings  # type: ignore[attr-defined]
    assert "behavioural.yaml is the sample project's behavioural file" in warning
    assert "canonical_tickets (account, billing, shipping, technical)" in warning
    assert tags["behavioural.left_out"] == (
        "double_charge_means_billing, lost_parcel_means_shipping, canonical_tickets"
    )
    assert tags["behavioural.warning"] == warning


def test_users_behavioural_file_that_does_not_fit_stops_validate(tmp_path: Path) -> None:
    mine = "tests:\n  - {name: praise, type: mft, examples: [{text: superb, label: positive}]}\n"
    root = _project(tmp_path, mine)
    with pytest.raises(ParamsError) as info:
        _validate(root, tracked=False)
    assert "does not fit the data: praise names positive" in str(info.value)
    assert "the data's labels are neg, pos" in str(info.value)
