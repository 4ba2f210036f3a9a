"""The model card speaks the task's language: an entity tagger's card lists entity metrics and
per-type scores, and counts its test set in entities; a classifier's, classes and rows."""

from __future__ import annotations

import json
from pathlib import Path

from nlpflow.config.params import Params
from nlpflow.release.card import build_model_card
from nlpflow.release.gate import Check, Decision

DECISION = Decision(promote=True, checks=[Check(name="margin", passed=True, reason="ok")],
                    compared_version=None, metric="entity_f1", values={})  # fmt: skip


def _card(tmp_path: Path, metrics: dict[str, object], main: str) -> str:
    evaluation = tmp_path / "evaluation"
    evaluation.mkdir(exist_ok=True)
    (evaluation / "slices.json").write_text(json.dumps({"slices": {"unseen": {
        "rows": 300, main: 0.21, "trusted": True}}}))  # fmt: skip
    # a test that had no case to run (the model found none of what it tests) has no rate
    (evaluation / "behavioural.json").write_text(json.dumps({"pass_rate": 0.5, "tests": [
        {"name": "swap_people", "type": "invariance", "cases": 0, "pass_rate": None},
        {"name": "mft_orders", "type": "mft", "cases": 4, "pass_rate": 0.5}]}))  # fmt: skip
    params = Params().model_copy(update={"evaluate": Params().evaluate.model_copy(
        update={"main_metric": main})})  # fmt: skip
    return build_model_card(
        model_name="ner", version=3, run_id="r1", manifest={"family": "spacy_ner", "labels": []},
        data_manifest=tmp_path / "none.json", metrics=metrics, evaluation=evaluation,
        decision=DECISION, params=params,
    )  # fmt: skip


def test_an_entity_taggers_card_lists_entity_metrics_and_types(tmp_path: Path) -> None:
    metrics = {
        "entity_f1": 0.4512, "entity_precision": 0.5, "entity_recall": 0.41, "token_accuracy": 0.93,
        "ci": {"metric": "entity_f1", "low": 0.41, "high": 0.49, "level": 0.95},
        "per_type": {"person": {"precision": 0.6, "recall": 0.5, "f1": 0.5455, "support": 120},
                     "product": {"precision": 0.2, "recall": 0.1, "f1": 0.1333, "support": 40}},
    }  # fmt: skip
    card = _card(tmp_path, metrics, "entity_f1")
    assert "| **entity_f1** | 0.4512 | 0.4100 to 0.4900 (95%, bootstrap) |" in card
    assert "| token_accuracy | 0.9300 |" in card
    assert "| entity type | precision | recall | f1 | support |" in card
    assert "| product | 0.2000 | 0.1000 | 0.1333 | 40 |" in card
    assert "The test set holds 160 entities: one mistake moves entity_f1" in card
    assert "Weaker on slice `unseen`: entity_f1 0.210 against 0.451 overall" in card
    assert "macro_f1" not in card.split("## Test metrics")[1].split("## Slices")[0]
    assert "| swap_people | invariance | 0 | no cases |" in card
    assert "Behavioural test `mft_orders` (mft) passes 50% of its 4 cases." in card
    assert "swap_people` (invariance) passes" not in card


def test_a_classifiers_card_keeps_classes_and_rows(tmp_path: Path) -> None:
    metrics = {"accuracy": 0.9, "macro_f1": 0.88,
               "per_class": {"spam": {"precision": 0.9, "recall": 0.8, "f1": 0.85, "support": 30},
                             "ham": {"precision": 0.9, "recall": 0.95, "f1": 0.92, "support": 70}}}  # fmt: skip
    card = _card(tmp_path, metrics, "macro_f1")
    assert "| class | precision | recall | f1 | support |" in card
    assert "The test set holds 100 rows: one mistake moves macro_f1 by about 1.00 points" in card
