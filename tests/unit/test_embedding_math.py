"""The arithmetic of embeddings_logreg and of the static vectors' evaluation, on examples small
enough to work out by hand: SIF weights and pooling, the principal component SIF removes, the
Spearman correlation on nlpflow's shipped word-pair list, and the list's own rubric.

    .venv/bin/python -m pytest tests/unit/test_embedding_math.py -q
"""

from __future__ import annotations

import numpy as np
import pytest

from nlpflow.evaluation.embeddings import Table, compute_word_similarity, frequent_words
from nlpflow.evaluation.report import EvaluateReport
from nlpflow.evaluation.word_pairs import WORD_PAIRS_TSV, load_word_pairs
from nlpflow.training.families.embeddings import (
    WordVectors,
    compute_first_component,
    compute_sif_weights,
    compute_text_vectors,
    remove_component,
)

# the, film, dull: 6 + 3 + 1 = 10 tokens, so p = 0.6, 0.3, 0.1
COUNTS = {"the": 6, "film": 3, "dull": 1}


def test_sif_weights_are_a_over_a_plus_the_words_share() -> None:
    weights = compute_sif_weights(COUNTS, a=0.1)
    # 0.1 / (0.1 + 0.6), 0.1 / (0.1 + 0.3), 0.1 / (0.1 + 0.1)
    assert weights == pytest.approx({"the": 1 / 7, "film": 0.25, "dull": 0.5})
    assert compute_sif_weights({}, a=0.1) == {}


def test_sif_pooling_weighs_known_words_and_divides_by_their_number() -> None:
    vectors = WordVectors(["the", "film", "dull"], np.array([[1, 0], [0, 1], [2, 2]], np.float32))
    weights = compute_sif_weights(COUNTS, a=0.1)
    text = ["the", "film", "dull", "unseen"]  # "unseen" has no vector: not counted
    pooled = compute_text_vectors([text, ["unseen"]], vectors, weights)
    # (1/7 * [1, 0] + 0.25 * [0, 1] + 0.5 * [2, 2]) / 3 = [8/21, 5/12]
    np.testing.assert_allclose(pooled[0], [8 / 21, 5 / 12])
    np.testing.assert_array_equal(pooled[1], [0, 0])  # no known word: the zero vector
    mean = compute_text_vectors([text], vectors)  # mean pooling: weights all 1
    np.testing.assert_allclose(mean[0], [1, 1])


def test_lookup_falls_back_to_the_lower_case_word() -> None:
    vectors = WordVectors(["film"], np.array([[1, 2]], np.float32))
    np.testing.assert_array_equal(vectors.vector("Film"), [1, 2])  # type: ignore[arg-type]
    assert vectors.vector("movie") is None


def test_the_first_component_is_removed_from_every_row() -> None:
    rows = np.array([[3.0, 0.0], [4.0, 0.0]])
    component = compute_first_component(rows)
    np.testing.assert_allclose(np.abs(component), [1, 0], atol=1e-12)
    np.testing.assert_allclose(remove_component(np.array([[1.0, 1.0]]), component), [[0, 1]])
    assert not compute_first_component(np.zeros((2, 3))).any()  # nothing to remove


def _shipped(*pairs: tuple[str, str]) -> list[tuple[str, str, float]]:
    """Pairs of the shipped list, with the list's own scores."""
    scored = {(a, b): (a, b, s) for a, b, s in load_word_pairs()}
    return [scored[pair] for pair in pairs]


def test_spearman_on_three_shipped_pairs_by_hand() -> None:
    pairs = _shipped(("film", "movie"), ("actor", "director"), ("water", "script"))
    assert [s for _, _, s in pairs] == [9, 5, 0]  # S, C and U in the rubric
    words = ["film", "movie", "actor", "director", "water", "script"]
    # cosines 1, 0 and -1: the same order as the scores, so rho = 1
    agreeing = np.array([[1, 0], [1, 0], [1, 0], [0, 1], [1, 0], [-1, 0]], np.float32)
    summary, rows = compute_word_similarity(Table(words, agreeing), pairs)
    assert summary == {"word_sim_spearman": 1.0, "word_sim_pairs": 3, "word_sim_total": 3}
    assert [round(r["cosine"], 6) for r in rows] == [1, 0, -1]
    # cosines 1, -1, 0: ranks (3, 1, 2) against (3, 2, 1); sum of d^2 = 2, so
    # rho = 1 - 6 * 2 / (3 * (9 - 1)) = 0.5
    swapped = np.array([[1, 0], [1, 0], [1, 0], [-1, 0], [1, 0], [0, 1]], np.float32)
    summary, _ = compute_word_similarity(Table(words, swapped), pairs)
    assert summary["word_sim_spearman"] == 0.5


def test_pairs_without_vectors_are_counted_out_and_too_few_give_no_correlation() -> None:
    pairs = _shipped(("film", "movie"), ("love", "hate"), ("soul", "minute"))
    table = Table(["film", "movie", "love", "hate"], np.eye(4, dtype=np.float32))
    summary, rows = compute_word_similarity(table, pairs)
    assert summary == {"word_sim_spearman": None, "word_sim_pairs": 2, "word_sim_total": 3}
    assert rows[2]["cosine"] is None


def test_the_shipped_list_follows_its_rubric() -> None:
    scores = {"S": 9, "N": 7, "C": 5, "R": 3, "A": 1, "U": 0}
    lines = [line.split("\t") for line in WORD_PAIRS_TSV.splitlines()]
    assert len(lines) == 58
    for first, second, score, kind in lines:
        assert float(score) == scores[kind], (first, second)
        assert first != second and first.islower() and second.islower()
    assert len({frozenset(line[:2]) for line in lines}) == len(lines)  # no pair twice
    assert {kind for *_, kind in lines} == set(scores)


def test_frequent_words_put_train_counts_first_then_the_tables_order() -> None:
    words = ["glove-only", "rare", "common", "also-glove"]
    assert frequent_words(words, {"rare": 1, "common": 5}, 3) == [2, 1, 0]


def test_the_vectors_figures_are_tracked_under_embeddings() -> None:
    report = EvaluateReport(
        metrics={"accuracy": 0.7}, confusion=[], labels=[], rows=0,
        embeddings={"vocab_size": 10, "word_sim_spearman": 0.5, "word_sim_pairs": 3,
                    "neighbours": {"good": ["great"]}},
    )  # fmt: skip
    tracked = report.tracked_metrics()
    assert tracked["embeddings/word_sim_spearman"] == 0.5
    assert tracked["embeddings/vocab_size"] == 10.0
    assert not any("neighbours" in key for key in tracked)
