"""Cache keys: per stage, on input content, own params sections and code; never shared."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlpflow.config.params import load_params
from nlpflow.config.settings import Settings
from nlpflow.pipeline.fingerprint import ABSENT, hash_path, params_fingerprint, stage_key
from nlpflow.pipeline.stages import STAGES, StageContext, get_stage
from tests.conftest import REPO


def _ctx(root: Path, *overrides: str) -> StageContext:
    params = load_params(REPO / "params.yaml", list(overrides))
    settings = Settings(project_dir=root, tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    return StageContext(root=root, params=params, settings=settings)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """Every stage's deps present, with distinct content."""
    (tmp_path / "data/sample").mkdir(parents=True)
    (tmp_path / "data/sample/support_tickets.csv").write_text("text,label\nhi,a\n")
    for stage in STAGES:
        for dep in stage.deps:
            path = tmp_path / dep
            if not path.suffix:  # a folder
                path.mkdir(parents=True, exist_ok=True)
                (path / "part.txt").write_text(f"{dep} contents")
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(f"{dep} contents")
    return tmp_path


def test_every_stage_has_its_own_key_for_the_same_inputs(project: Path) -> None:
    ctx = _ctx(project)
    keys = {stage.name: stage_key(stage, ctx) for stage in STAGES}
    assert None not in keys.values()
    assert len(set(keys.values())) == len(STAGES)  # INPUTS alone would let them collide
    assert keys == {stage.name: stage_key(stage, _ctx(project)) for stage in STAGES}


def test_a_params_change_moves_only_the_stages_reading_that_section(project: Path) -> None:
    before = {s.name: stage_key(s, _ctx(project)) for s in STAGES}
    after = {s.name: stage_key(s, _ctx(project, "evaluate.worst_errors=3")) for s in STAGES}
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {"evaluate", "register"}  # register re-scores with evaluate's params
    after = {s.name: stage_key(s, _ctx(project, "train.tfidf.C=1.0")) for s in STAGES}
    # train and baseline are keyed on the files train_params writes (each family's own
    # params), not on the train section: they move once those do, which no stage wrote here
    assert {name for name in before if before[name] != after[name]} == {"train_params"}


def test_a_changed_input_file_moves_the_key_of_the_stages_reading_it(project: Path) -> None:
    ctx = _ctx(project)
    before = {s.name: stage_key(s, ctx) for s in STAGES}
    (project / "data/processed/part.txt").write_text("other rows")
    after = {s.name: stage_key(s, ctx) for s in STAGES}
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {"train", "baseline", "evaluate"}
    (project / "data/sample/support_tickets.csv").write_text("text,label\nhello,a\n")
    assert stage_key(get_stage("gather"), ctx) != before["gather"]


def test_sources_only_a_fetch_can_tell_are_never_cached(project: Path) -> None:
    for source in ("postgresql://db/x", "https://example.org/a.csv", "hf:imdb"):
        assert stage_key(get_stage("gather"), _ctx(project, f"data.source={source}")) is None
    pinned = _ctx(project, "data.source=https://example.org/a.csv", f"data.sha256={'a' * 64}")
    assert stage_key(get_stage("gather"), pinned) is not None


def test_the_registry_is_part_of_register_key(project: Path) -> None:
    ctx = _ctx(project)
    other = _ctx(project)
    other.settings = other.settings.model_copy(update={"registered_model": "another-model"})
    assert stage_key(get_stage("register"), ctx) != stage_key(get_stage("register"), other)
    assert stage_key(get_stage("evaluate"), ctx) == stage_key(get_stage("evaluate"), other)


def test_an_edited_rules_file_moves_the_stages_whose_family_reads_it(project: Path) -> None:
    # The rules file is named by params, so dvc.yaml cannot list it: the keys must see it.
    rules = project / "rules.yaml"
    rules.write_text("default: a\nrules: [{label: a, keywords: [hi]}]\n")
    model = _ctx(project, "train.family=rules", "train.rules.patterns=rules.yaml")
    yardstick = _ctx(project, "train.baseline=rules", "train.rules.patterns=rules.yaml")
    served = _ctx(project, "serve.rules=rules.yaml")
    before = [{s.name: stage_key(s, c) for s in STAGES} for c in (model, yardstick, served)]
    rules.write_text("default: a\nrules: [{label: a, keywords: [hello]}]\n")
    after = [{s.name: stage_key(s, c) for s in STAGES} for c in (model, yardstick, served)]
    moved = [{n for n in b if b[n] != a[n]} for b, a in zip(before, after, strict=True)]
    # the rules model and its baseline (tfidf_logreg) / the rules baseline / the hybrid version
    assert moved == [{"train"}, {"baseline"}, {"register"}]


def test_folder_hash_sees_names_and_contents(tmp_path: Path) -> None:
    assert hash_path(tmp_path / "missing") == ABSENT
    (tmp_path / "d").mkdir()
    (tmp_path / "d/a.txt").write_text("x")
    first = hash_path(tmp_path / "d")
    (tmp_path / "d/a.txt").rename(tmp_path / "d/b.txt")
    assert hash_path(tmp_path / "d") != first
    (tmp_path / "d/b.txt").rename(tmp_path / "d/a.txt")
    assert hash_path(tmp_path / "d") == first


def test_params_fingerprint_ignores_sections_no_stage_reads(project: Path) -> None:
    base = params_fingerprint(_ctx(project))
    assert params_fingerprint(_ctx(project, "schedule.skip_unchanged_data=false")) == base
    assert params_fingerprint(_ctx(project, "inference.batch_size=8")) == base
    assert params_fingerprint(_ctx(project, "train.epochs=1")) != base
