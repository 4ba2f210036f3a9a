"""nlpflow.evaluation.ner.slices: seen/unseen entities, entity and sentence length, by hand.

.venv/bin/pytest -q tests/unit/test_ner_slices.py
"""

from __future__ import annotations

import random

import pytest

from nlpflow.evaluation.ner.scores import entity_scores
from nlpflow.evaluation.ner.slices import (
    by_entity_length,
    by_sentence_length,
    seen_unseen,
    surface_forms,
)

TAGS = ["O", "O", "O", "B-per", "I-per", "B-loc", "I-loc"]


def test_surface_forms_are_lower_cased_text_and_type() -> None:
    tokens = [["In", "New", "York", "with", "PARIS"]]
    tags = [["O", "B-loc", "I-loc", "O", "B-per"]]
    assert surface_forms(tokens, tags) == {("new york", "loc"), ("paris", "per")}


def test_seen_unseen_by_hand() -> None:
    train = surface_forms([["PARIS", "!"]], [["B-loc", "O"]])  # ("paris", "loc") only
    tokens = [["Paris", "is", "big"], ["paris", "and", "Rome"], ["Paris", "Hilton"]]
    gold = [["B-loc", "O", "O"], ["B-loc", "O", "B-loc"], ["B-per", "I-per"]]
    pred = [["B-loc", "O", "O"], ["O", "O", "B-per"], ["B-loc", "O"]]
    out = seen_unseen(train, gold, pred, tokens)
    # seen: gold Paris, paris; predicted Paris (right) and the loc "Paris" of "Paris Hilton"
    assert out["seen"] == pytest.approx(
        {"entities": 2, "predicted": 2, "precision": 0.5, "recall": 0.5, "f1": 0.5}
    )
    # unseen: gold Rome (loc), Paris Hilton (per); predicted Rome as per: ("rome", "per")
    assert out["unseen"] == {
        "entities": 2, "predicted": 1, "precision": 0.0, "recall": 0.0, "f1": 0.0,
    }  # fmt: skip


def test_seen_unseen_partitions_the_entities() -> None:
    rng = random.Random(3)
    gold = [[rng.choice(TAGS) for _ in range(rng.randint(1, 10))] for _ in range(80)]
    pred = [[rng.choice(TAGS) if rng.random() < 0.3 else t for t in s] for s in gold]
    tokens = [[rng.choice(["a", "b", "C"]) for _ in s] for s in gold]
    train = surface_forms(tokens[:40], gold[:40])
    out = seen_unseen(train, gold, pred, tokens)
    total = entity_scores(gold, pred)
    assert out["seen"]["entities"] + out["unseen"]["entities"] == total["gold_entities"]
    assert out["seen"]["predicted"] + out["unseen"]["predicted"] == total["predicted_entities"]
    found = sum(s["recall"] * s["entities"] for s in out.values())
    assert found == pytest.approx(total["entity_recall"] * total["gold_entities"])
    assert out["seen"]["entities"] > 0 and out["unseen"]["entities"] > 0


def test_by_entity_length_by_hand() -> None:
    gold = [["B-per", "O", "B-loc", "I-loc", "O", "B-per", "I-per", "I-per", "I-per"]]
    pred = [["B-per", "O", "B-loc", "O", "O", "B-per", "I-per", "I-per", "I-per"]]
    out = by_entity_length(gold, pred)
    assert out["entity_len_1"] == pytest.approx(  # right person; loc cut to one token: fp
        {"entities": 1, "predicted": 2, "precision": 0.5, "recall": 1.0, "f1": 2 / 3}
    )
    assert out["entity_len_2"] == {  # the two-token loc, missed
        "entities": 1, "predicted": 0, "precision": 0.0, "recall": 0.0, "f1": 0.0,
    }  # fmt: skip
    assert out["entity_len_3+"]["f1"] == 1.0  # four tokens count as 3+


def test_by_entity_length_leaves_out_empty_slices() -> None:
    assert list(by_entity_length([["B-per", "O"]], [["B-per", "O"]])) == ["entity_len_1"]


def test_by_sentence_length_buckets_by_token_count() -> None:
    gold = [["B-per"], ["O", "B-loc", "O"], ["O", "O", "B-per", "O", "O"], ["B-loc", "I-loc"]]
    pred = [["B-per"], ["O", "O", "O"], ["O", "O", "B-per", "O", "B-loc"], ["B-loc", "I-loc"]]
    out = by_sentence_length(gold, pred, edges=[2, 4])
    assert list(out) == ["length_le_2", "length_3_4", "length_gt_4"]
    assert out["length_le_2"]["rows"] == 2 and out["length_le_2"]["f1"] == 1.0
    assert out["length_3_4"] == {
        "rows": 1, "entities": 1, "predicted": 0, "precision": 0.0, "recall": 0.0, "f1": 0.0,
    }  # fmt: skip
    assert out["length_gt_4"]["precision"] == 0.5 and out["length_gt_4"]["recall"] == 1.0


def test_by_sentence_length_checks_edges() -> None:
    with pytest.raises(ValueError, match="increasing"):
        by_sentence_length([["O"]], [["O"]], edges=[8, 8])
    assert list(by_sentence_length([["O"]], [["O"]])) == ["length_le_8"]
