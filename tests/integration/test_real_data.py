"""Real public data from ../shared/datasets (skipped, with the reason, where it is absent)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from nlpflow.config.params import parse_params
from nlpflow.config.settings import Settings
from nlpflow.pipeline.runs import make_context
from nlpflow.pipeline.stages import METRICS, STAGE_NAMES, run_stage
from tests.conftest import SHARED_DATASETS

MR = SHARED_DATASETS / "mr"
pytestmark = pytest.mark.skipif(
    not all((SHARED_DATASETS / d).is_dir() for d in ("mr", "trec", "sms_spam")),
    reason=f"{SHARED_DATASETS} (mr, trec, sms_spam) is absent: the shared datasets are not beside this checkout",
)


def test_tfidf_logreg_on_movie_reviews_reaches_075(tmp_path: Path) -> None:
    params = parse_params(
        {
            "data": {"source": str(MR / "splits"), "format": "folder"},
            "preprocess": {"lowercase": True},
            "train": {"family": "tfidf_logreg"},
            "evaluate": {"behavioural": None},  # MR's folder labels are 0/1 here
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


CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _prepare(config: str, tmp_path: Path, extra: tuple[str, ...] = ()) -> tuple[dict, dict]:
    """gather, validate and preprocess with a ready-made config (and `extra` ones merged over
    it); return manifest and summary."""
    from nlpflow.config.params import load_params

    repo = CONFIGS.parent
    files = [CONFIGS / f"{name}.yaml" for name in (config, *extra)]
    params = load_params(repo / "params.yaml", configs=files)
    settings = Settings(project_dir=tmp_path, data_root=repo)
    ctx = make_context(tmp_path, params, settings, tracked=False)
    for name in ("gather", "validate", "preprocess"):
        run_stage(name, ctx)
    manifest = json.loads((tmp_path / "data/gathered/manifest.json").read_text())
    summary = json.loads((tmp_path / "reports/validation/summary.json").read_text())
    return manifest, summary


def _check(summary: dict, name_start: str) -> dict:
    return next(c for c in summary["checks"] if c["check"].startswith(name_start))


def _coarse_counts(path: Path) -> tuple[dict[str, int], list[str]]:
    """Coarse label counts and question texts, read here independently of nlpflow's reader."""
    counts: dict[str, int] = {}
    texts = []
    for line in path.read_bytes().decode("utf-8", "replace").splitlines():
        if line.strip():
            label, question = line.split(" ", 1)
            coarse = label.split(":", 1)[0]
            counts[coarse] = counts.get(coarse, 0) + 1
            texts.append(question.strip())
    return counts, texts


def test_trec_config_shows_six_coarse_labels(tmp_path: Path) -> None:
    import pandas as pd

    trec = SHARED_DATASETS / "trec"
    train_counts, train_texts = _coarse_counts(trec / "train_5500.label")
    test_counts, test_texts = _coarse_counts(trec / "TREC_10.label")
    # the official test repeats some training questions; configs/trec.yaml drops them from train
    test_keys = {" ".join(re.findall(r"[a-z0-9]+", t.lower())) for t in test_texts}
    repeats = sum(" ".join(re.findall(r"[a-z0-9]+", t.lower())) in test_keys for t in train_texts)
    manifest, summary = _prepare("trec", tmp_path)
    test = pd.read_parquet(tmp_path / "data/gathered/test.parquet")
    assert (sum(train_counts.values()), len(test_texts), repeats) == (5452, 500, 11)
    assert manifest["rows"]["test"] == 500
    assert manifest["rows"]["train"] + manifest["rows"]["validation"] == 5452 - repeats
    assert 500 <= manifest["rows"]["validation"] <= 600  # 10% carved from train
    assert manifest["test_overlap_dropped"] == repeats
    assert sorted(manifest["labels"]) == sorted(train_counts) == sorted(test_counts)
    assert sum(manifest["labels"].values()) == 5452 - repeats + 500
    assert test["label"].value_counts().to_dict() == test_counts
    assert test_counts == {"ABBR": 9, "DESC": 138, "ENTY": 94, "HUM": 65, "LOC": 81, "NUM": 113}
    assert sorted(test["text"]) == sorted(test_texts)
    assert manifest["replaced_characters"] == 1  # the stray byte at offset 3695
    assert summary["success"] is True
    assert summary["rows"] == manifest["rows"]
    # the validation report itself shows the six coarse labels with their counts
    assert summary["label_counts"]["test"] == test_counts
    assert summary["allowed_labels"] == ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]


def test_sms_spam_config_keeps_duplicates_out_of_test(tmp_path: Path) -> None:
    manifest, summary = _prepare("sms_spam", tmp_path)
    assert manifest["labels"] == {"ham": 4827, "spam": 747}
    duplicates = _check(summary, "at most 8.0% of texts repeat an earlier text")
    assert duplicates["unexpected_count"] == 5574 - 5171  # 403 repeats of an earlier message
    assert duplicates["success"] is True
    assert _check(summary, "no test text appears in train")["success"] is True
    damaged = _check(summary, "at most 1.00% of texts hold U+FFFD")
    assert damaged["unexpected_count"] == 35  # cp1252 quotes read as Latin-1 upstream (U+0092)
    assert summary["success"] is True


def test_mr_config_maps_labels_and_keeps_its_splits(tmp_path: Path) -> None:
    manifest, summary = _prepare("mr", tmp_path)
    assert manifest["labels"] == {"neg": 5331, "pos": 5331}
    assert manifest["rows"] == {"train": 8530, "validation": 1066, "test": 1066}
    assert manifest["split_from_source"] is True
    assert summary["success"] is True


@pytest.mark.skipif(not (SHARED_DATASETS / "wnut17").is_dir(), reason="wnut17 is absent")
def test_wnut17_config_keeps_the_published_splits_and_types(tmp_path: Path) -> None:
    from nlpflow.config.params import load_params

    params = load_params(CONFIGS.parent / "params.yaml", configs=[CONFIGS / "wnut17.yaml"])
    assert params.train.family == "token_transformer"  # bench/ner.py's run, docs/benchmarks.md
    assert params.sweep.metric == "val_entity_f1" and params.evaluate.main_metric == "entity_f1"
    manifest, summary = _prepare("wnut17", tmp_path)
    assert manifest["rows"] == {"train": 3394, "validation": 1009, "test": 1287}
    # the published entity counts (1975 + 836 + 1079), under WNUT's own type names
    assert manifest["labels"] == {"person": 1559, "location": 772, "group": 468,
                                  "creative-work": 387, "product": 383, "corporation": 321}  # fmt: skip
    assert sum(manifest["labels"].values()) == 1975 + 836 + 1079
    assert summary["success"] is True
    assert summary["label_counts"]["train"] == {
        "corporation": 221, "creative-work": 140, "group": 264, "location": 548, "person": 660,
        "product": 142,
    }  # fmt: skip


@pytest.mark.skipif(not (SHARED_DATASETS / "wnut17").is_dir(), reason="wnut17 is absent")
def test_wnut17_train_dev_config_trains_on_dev_and_keeps_test_whole(tmp_path: Path) -> None:
    manifest, summary = _prepare("wnut17", tmp_path, extra=("wnut17_train_dev",))
    rows = manifest["rows"]
    assert rows["test"] == 1287  # the official test file, whole
    # train and dev, less the one dev sentence that repeats a test sentence
    assert rows["train"] + rows["validation"] == 3394 + 1009 - 1
    assert manifest["test_overlap_dropped"] == 1
    assert abs(rows["validation"] - 0.1 * (3394 + 1009 - 1)) < 50  # 10%, stratified
    assert summary["success"] is True


@pytest.mark.skipif(
    not (SHARED_DATASETS / "conll2003").is_dir(),
    reason="../shared/datasets/conll2003 is absent: not among the shared datasets here",
)
def test_conll2003_config_reads_the_published_splits(tmp_path: Path) -> None:
    manifest, summary = _prepare("conll2003", tmp_path)
    assert manifest["rows"] == {"train": 14041, "validation": 3250, "test": 3453}
    assert sum(manifest["labels"].values()) == 23499 + 5942 + 5648
    assert summary["success"] is True


def test_sms_spam_rules_config_runs_as_a_model_against_the_tfidf_baseline(tmp_path: Path) -> None:
    """configs/sms_spam_rules.yaml: the hand-written rules through train, baseline and evaluate
    on the split the pipeline makes (bench/rules.py measured 0.961 accuracy, spam F1 0.865,
    MCC 0.845 there; tfidf_logreg 0.987, 0.952, 0.945)."""
    from nlpflow.config.params import load_params

    repo = CONFIGS.parent
    overrides = [  # the project is a temporary folder: the config's files by absolute path
        f"train.rules.patterns={CONFIGS / 'rules' / 'sms_spam.yaml'}",
        f"evaluate.behavioural={CONFIGS / 'behavioural' / 'sms_spam.yaml'}",
    ]
    files = [CONFIGS / "sms_spam.yaml", CONFIGS / "sms_spam_rules.yaml"]
    params = load_params(repo / "params.yaml", overrides, files)
    ctx = make_context(tmp_path, params, Settings(project_dir=tmp_path, data_root=repo),
                       tracked=False)  # fmt: skip
    for name in ("gather", "validate", "preprocess", "train", "baseline", "evaluate"):
        run_stage(name, ctx)
    metrics = json.loads((tmp_path / METRICS).read_text())
    assert (tmp_path / "models/model/rules.yaml").read_text() == (
        CONFIGS / "rules" / "sms_spam.yaml"
    ).read_text()
    assert metrics["accuracy"] >= 0.95 and metrics["mcc"] >= 0.8, metrics
    assert metrics["per_class"]["spam"]["f1"] >= 0.85
    assert metrics["baseline"]["family"] == "tfidf_logreg"
    # the learned baseline is better: the gate would refuse these rules as champion
    assert metrics["baseline"]["macro_f1"] > metrics["macro_f1"]
