"""nlpflow.evaluation.ner.scores: hand-computed cases, and agreement with seqeval and nervaluate.

.venv/bin/pytest -q tests/unit/test_ner_scores.py
"""

from __future__ import annotations

import random
import warnings

import pytest
from nervaluate import Evaluator
from seqeval.metrics import classification_report
from seqeval.scheme import IOB2

from nlpflow.evaluation.ner.scores import (
    MISSED,
    SPURIOUS,
    entity_scores,
    error_table,
    sentence_entities,
    type_confusion,
)

TAGS = ["O", "O", "O", "B-per", "I-per", "B-loc", "I-loc", "B-org", "I-org"]


def random_tags(seed: int, *, sentences: int = 60) -> list[list[str]]:
    """Random tag sequences: some I- tags continue nothing (invalid IOB2)."""
    rng = random.Random(seed)
    return [[rng.choice(TAGS) for _ in range(rng.randint(0, 12))] for _ in range(sentences)]


def valid(sentences: list[list[str]]) -> list[list[str]]:
    """Each I- that does not continue an entity of its type made a B-: valid IOB2."""
    return [
        ["B-" + t[2:] if t[:2] == "I-" and (i == 0 or s[i - 1][2:] != t[2:]) else t
         for i, t in enumerate(s)]
        for s in sentences
    ]  # fmt: skip


def noisy(gold: list[list[str]], seed: int, *, rate: float = 0.3) -> list[list[str]]:
    rng = random.Random(seed)
    return [[rng.choice(TAGS) if rng.random() < rate else t for t in s] for s in gold]


def test_boundary_error_is_fp_and_fn_in_strict_but_half_credit_in_partial() -> None:
    scores = entity_scores([["B-per", "I-per", "O"]], [["B-per", "O", "O"]])
    assert scores["entity_precision"] == scores["entity_recall"] == scores["entity_f1"] == 0.0
    assert scores["exact_f1"] == 0.0  # other boundaries
    assert scores["partial_f1"] == pytest.approx(0.5)  # (0 correct + 0.5 * 1 partial) / 1
    assert scores["type_f1"] == 1.0  # overlaps, same type
    assert scores["token_accuracy"] == pytest.approx(2 / 3)


def test_type_error_keeps_exact_and_partial_but_not_type() -> None:
    scores = entity_scores([["O", "B-loc"]], [["O", "B-org"]])
    assert scores["entity_f1"] == 0.0
    assert scores["exact_f1"] == scores["partial_f1"] == 1.0
    assert scores["type_f1"] == 0.0
    assert scores["per_type"]["loc"] == {"precision": 0, "recall": 0, "f1": 0, "support": 1}
    assert scores["per_type"]["org"]["support"] == 0


def test_micro_macro_and_per_type_by_hand() -> None:
    gold = [["B-per", "I-per", "O", "B-loc"], ["O", "B-org", "I-org", "I-org"]]
    pred = [["B-per", "O", "O", "B-org"], ["O", "B-org", "I-org", "I-org"]]
    s = entity_scores(gold, pred)
    # one of 3 gold and one of 3 predicted entities match exactly (the 3-token org)
    assert (s["gold_entities"], s["predicted_entities"]) == (3, 3)
    assert s["entity_precision"] == s["entity_recall"] == s["entity_f1"] == pytest.approx(1 / 3)
    # per type F1: loc 0, org 2*0.5*1/1.5, per 0; precision: loc 0, org 1/2, per 0
    assert s["per_type"]["org"] == pytest.approx(
        {"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1}
    )
    assert s["entity_macro_f1"] == pytest.approx(2 / 9)
    assert s["entity_macro_precision"] == pytest.approx(1 / 6)
    assert s["token_accuracy"] == pytest.approx(6 / 8)
    # partial: org exact, loc/org same boundaries (correct), per half -> 2.5 / 3
    assert s["partial_f1"] == pytest.approx(2.5 / 3)
    assert s["exact_f1"] == pytest.approx(2 / 3)
    assert s["type_f1"] == pytest.approx(2 / 3)  # org exact, per overlaps with its type
    assert s["strict_f1"] == pytest.approx(1 / 3)


def test_a_stray_inside_tag_is_no_entity_in_any_schema() -> None:
    """seqeval's strict IOB2 reads I-per after O as nothing; nervaluate's own reader would call
    it an entity and score it correct under partial matching."""
    s = entity_scores([["B-per", "O"]], [["I-per", "O"]])
    assert s["predicted_entities"] == 0
    assert s["entity_recall"] == s["partial_recall"] == s["type_recall"] == 0.0
    assert sentence_entities([["O", "I-per", "B-loc", "I-per"]]) == [[(2, 3, "loc")]]


def test_no_entities_and_no_sentences_score_zero_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        none = entity_scores([["O", "O"]], [["O", "O"]])
        empty = entity_scores([], [])
    assert none["entity_f1"] == none["entity_macro_f1"] == none["partial_f1"] == 0.0
    assert none["token_accuracy"] == 1.0 and none["per_type"] == {}
    assert empty["token_accuracy"] == 0.0 and empty["gold_entities"] == 0


@pytest.mark.parametrize(
    ("gold", "pred", "message"),
    [
        ([["O"]], [["O"], ["O"]], "1 gold sentences against 2"),
        ([["O", "O"]], [["O"]], "sentence 0: 2 gold tags against 1"),
        ([["E-per"]], [["O"]], "not IOB2"),
        ([["O"]], [["B-"]], "not IOB2"),
    ],
)
def test_malformed_input_is_a_value_error(gold, pred, message) -> None:
    with pytest.raises(ValueError, match=message):
        entity_scores(gold, pred)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_entity_figures_agree_with_seqeval_strict_on_random_tags(seed: int) -> None:
    gold = random_tags(seed)
    pred = noisy(gold, seed + 100)
    ours = entity_scores(gold, pred)
    report = classification_report(
        gold, pred, mode="strict", scheme=IOB2, output_dict=True, zero_division=0
    )
    assert ours["entity_f1"] == pytest.approx(report["micro avg"]["f1-score"])
    assert ours["entity_precision"] == pytest.approx(report["micro avg"]["precision"])
    assert ours["entity_macro_recall"] == pytest.approx(report["macro avg"]["recall"])
    assert ours["per_type"]["loc"]["f1"] == pytest.approx(report["loc"]["f1-score"])
    assert ours["strict_f1"] == pytest.approx(ours["entity_f1"])
    assert 0 < ours["entity_f1"] < ours["partial_f1"] < 1  # partial credit, and errors exist


@pytest.mark.parametrize("seed", [4, 5])
def test_matching_schemas_agree_with_nervaluate_on_valid_iob2(seed: int) -> None:
    """On valid IOB2 both readers find the same entities, so handing nervaluate seqeval's
    entities (ends made inclusive) must give what nervaluate computes from the tags."""
    gold = valid(random_tags(seed))
    pred = valid(noisy(gold, seed + 50))
    ours = entity_scores(gold, pred)
    overall = Evaluator(gold, pred, ["per", "loc", "org"], loader="list").evaluate()["overall"]
    for schema, key in (("strict", "strict"), ("exact", "exact"), ("partial", "partial"),
                        ("ent_type", "type")):  # fmt: skip
        for figure in ("precision", "recall", "f1"):
            assert ours[f"{key}_{figure}"] == pytest.approx(getattr(overall[schema], figure))


def test_type_confusion_counts_exact_boundaries_missed_and_spurious() -> None:
    gold = [["B-per", "I-per", "O", "B-loc"], ["O", "B-org", "I-org", "I-org"]]
    pred = [["B-per", "O", "O", "B-org"], ["O", "B-org", "I-org", "I-org"]]
    labels, matrix = type_confusion(gold, pred)
    assert labels == ["loc", "org", "per", MISSED, SPURIOUS]
    assert matrix == [
        [0, 1, 0, 0, 0],  # loc predicted as org, same boundaries
        [0, 1, 0, 0, 0],  # org right
        [0, 0, 0, 1, 0],  # per: no prediction with its boundaries
        [0, 0, 0, 0, 0],
        [0, 0, 1, 0, 0],  # the one-token per matches no gold boundaries
    ]


def test_error_table_classifies_every_kind() -> None:
    texts = ("John Smith visited New York City with Acme Corp today", "Bank of Italy said Rossi")
    tokens = [text.split() for text in texts]
    gold = [
        ["B-per", "I-per", "O", "B-loc", "I-loc", "I-loc", "O", "B-org", "I-org", "O"],
        ["B-org", "I-org", "I-org", "O", "B-per"],
    ]
    pred = [
        ["B-per", "O", "O", "B-loc", "I-loc", "I-loc", "O", "B-loc", "I-loc", "B-per"],
        ["B-loc", "I-loc", "O", "O", "O"],
    ]
    rows = error_table(tokens, gold, pred)
    summary = [(r["sentence"], r["kind"], r["gold_text"], r["predicted_text"]) for r in rows]
    assert summary == [
        (0, "wrong_boundary", "John Smith", "John"),
        (0, "wrong_type", "Acme Corp", "Acme Corp"),
        (0, "spurious", None, "today"),
        (1, "wrong_type", "Bank of Italy", "Bank of"),  # another type and other boundaries
        (1, "missed", "Rossi", None),
    ]  # New York City is right: no row
    assert rows[1]["gold_type"] == "org" and rows[1]["predicted_type"] == "loc"
    assert (rows[3]["gold_end"], rows[3]["predicted_end"]) == (3, 2)


def test_error_table_pairs_the_same_type_before_the_larger_overlap() -> None:
    tokens = [["a", "b", "c", "d"]]
    gold = [["B-per", "I-per", "I-per", "I-per"]]
    pred = [["B-loc", "I-loc", "I-loc", "B-per"]]  # loc overlaps 3 tokens, per 1
    kinds = [(r["kind"], r["predicted_text"]) for r in error_table(tokens, gold, pred)]
    assert kinds == [("spurious", "a b c"), ("wrong_boundary", "d")]


def test_error_table_is_empty_for_a_perfect_prediction_and_checks_tokens() -> None:
    gold = random_tags(7)
    tokens = [[f"w{i}" for i in range(len(s))] for s in gold]
    assert error_table(tokens, gold, gold) == []
    with pytest.raises(ValueError, match="one token per tag"):
        error_table([["x"]] * len(gold), gold, gold)
