"""nlpflow.evaluation.ner.bootstrap: per-sentence counts against seqeval, the intervals by hand,
and agreement with nlpflow.evaluation.stats (whose conventions it follows).

    .venv/bin/pytest -q tests/unit/test_ner_bootstrap.py
"""

from __future__ import annotations

import random

import pytest
from seqeval.metrics import classification_report
from seqeval.scheme import IOB2, Entities

from nlpflow.evaluation.ner.bootstrap import EntityF1, bootstrap_f1, paired, sentence_counts
from nlpflow.evaluation.stats import bootstrap_ci, paired_bootstrap

TAGS = ["O", "O", "O", "B-per", "I-per", "B-loc", "I-loc", "B-org", "I-org"]


def corpus(seed: int, *, sentences: int = 120, rate: float = 0.25) -> tuple[list, list]:
    """Random gold tags (stray I- tags included) and a copy with a share of tags replaced."""
    rng = random.Random(seed)
    gold = [[rng.choice(TAGS) for _ in range(rng.randint(0, 10))] for _ in range(sentences)]
    pred = [[rng.choice(TAGS) if rng.random() < rate else t for t in s] for s in gold]
    return gold, pred


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sentence_counts_sum_to_seqeval_strict_totals(seed: int) -> None:
    gold, pred = corpus(seed)
    tp, fp, fn = sentence_counts(gold, pred).sum(axis=0)
    report = classification_report(
        gold, pred, mode="strict", scheme=IOB2, output_dict=True, zero_division=0
    )
    predicted = sum(map(len, Entities(pred, IOB2).entities))
    assert tp + fp == predicted
    assert tp + fn == report["micro avg"]["support"]
    assert tp / (tp + fp) == pytest.approx(report["micro avg"]["precision"])
    assert tp / (tp + fn) == pytest.approx(report["micro avg"]["recall"])
    assert EntityF1()(gold, pred) == pytest.approx(report["micro avg"]["f1-score"])


def test_sentence_counts_by_hand() -> None:
    gold = [["B-per", "I-per", "O"], ["B-loc", "O", "B-org"], ["O"]]
    pred = [["B-per", "I-per", "O"], ["B-loc", "I-loc", "B-per"], ["I-per"]]  # stray I-: nothing
    assert sentence_counts(gold, pred).tolist() == [[1, 0, 0], [0, 2, 2], [0, 0, 0]]


def test_interval_of_two_sentences_by_hand() -> None:
    """Sentence 0 all right (tp 1), sentence 1 all wrong (fp 1, fn 1): F1 2/4. A resample of
    sentence 0 twice scores 1, of sentence 1 twice 0, a quarter of resamples each."""
    gold, pred = [["B-per"], ["B-loc"]], [["B-per"], ["B-org"]]
    ci = bootstrap_f1(gold, pred, samples=2000, level=0.9, seed=5)
    assert (ci.value, ci.low, ci.high) == (0.5, 0.0, 1.0)
    assert (ci.metric, ci.level, ci.samples) == ("entity_f1", 0.9, 2000)


def test_bootstrap_is_seeded_and_contains_its_estimate() -> None:
    gold, pred = corpus(4)
    first = bootstrap_f1(gold, pred, samples=500, seed=7)
    assert bootstrap_f1(gold, pred, samples=500, seed=7) == first
    assert bootstrap_f1(gold, pred, samples=500, seed=8) != first
    assert first.low < first.value < first.high
    assert 0.02 < first.high - first.low < 0.5


@pytest.mark.parametrize("same_length", [False, True])
def test_bootstrap_equals_stats_bootstrap_ci_of_entity_f1(same_length: bool) -> None:
    """Same resamples as stats draws them; stats hands rows over as a numpy object array,
    2-D when every sentence has the same length."""
    gold, pred = corpus(5)
    if same_length:
        gold = [s[:3] for s in gold if len(s) >= 3]
        pred = [s[:3] for s in pred if len(s) >= 3]
    ours = bootstrap_f1(gold, pred, samples=300, seed=11)
    theirs = bootstrap_ci(gold, pred, metric=EntityF1(), name="entity_f1", samples=300, seed=11)
    assert ours.model_dump() == pytest.approx(theirs.model_dump())


def test_paired_difference_is_b_minus_a_and_agrees_with_stats() -> None:
    gold, better = corpus(6, rate=0.1)
    _, worse = corpus(6, rate=0.4)
    test, diff = paired(gold, worse, better, samples=400, seed=3)
    assert test.b > test.a and test.difference == pytest.approx(test.b - test.a)
    assert diff.value == test.difference and diff.low < diff.value < diff.high
    assert diff.low > 0 and test.p_value == pytest.approx(1 / 401)  # B beats A every time
    theirs = paired_bootstrap(gold, worse, better, metric=EntityF1(), samples=400, seed=3)
    assert test.p_value == theirs.p_value and test.difference == pytest.approx(theirs.difference)
    reverse, _ = paired(gold, better, worse, samples=400, seed=3)
    assert reverse.p_value == 1.0 and reverse.difference == pytest.approx(-test.difference)


def test_paired_of_one_model_with_itself_is_a_tie() -> None:
    gold, pred = corpus(7)
    test, diff = paired(gold, pred, pred, samples=200)
    assert test.p_value == 1.0  # a tie is not better
    assert diff.value == diff.low == diff.high == 0.0


def test_no_sentences_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="at least one sentence"):
        bootstrap_f1([], [])
    with pytest.raises(ValueError, match="at least one sentence"):
        paired([], [], [])
