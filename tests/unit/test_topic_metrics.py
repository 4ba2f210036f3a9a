"""Topic-model metrics (nlpflow.evaluation.topics.metrics) against values computed by hand.

    .venv/bin/python -m pytest tests/unit/test_topic_metrics.py -q

NPMI as gensim's c_npmi computes it: probabilities are shares of sliding windows of 10 tokens
(a shorter document is one window; every document counts), natural logs, and
NPMI(a, b) = ln(p(a,b) / (p(a) p(b))) / -ln(p(a,b)), with 1e-12 added to p(a,b).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from nlpflow.evaluation.topics.metrics import (
    compute_coherence,
    compute_diversity,
    compute_dominant_counts,
    compute_label_agreement,
    compute_purity,
    compute_topic_shares,
)

# 4 documents, each shorter than the window: one window each, N = 4
DOCS = [
    ["ball", "goal", "team"],
    ["ball", "goal"],
    ["ball", "oven"],
    ["oven", "pan", "salt"],
]
# p(ball) = 3/4, p(goal) = 2/4, p(ball, goal) = 2/4:
# ln((1/2) / (3/8)) / -ln(1/2) = ln(4/3) / ln(2) = 0.28768 / 0.69315
NPMI_BALL_GOAL = math.log(4 / 3) / math.log(2)  # 0.41504
# p(oven) = 2/4, p(pan) = 1/4, p(oven, pan) = 1/4: ln((1/4) / (1/8)) / ln(4) = 0.5
NPMI_OVEN_PAN = 0.5
# p(ball) = 3/4, p(pan) = 1/4, never together: gensim's epsilon makes it
# ln(1e-12 / (3/16)) / -ln(1e-12) = -1 + ln(16/3) / ln(1e12) = -0.93942, not quite -1
NPMI_BALL_PAN = -1 + math.log(16 / 3) / math.log(1e12)


def test_npmi_matches_the_hand_computed_window_probabilities() -> None:
    mean, per_topic = compute_coherence(
        [["ball", "goal"], ["oven", "pan"], ["ball", "pan"]], DOCS, measure="c_npmi"
    )
    assert per_topic == pytest.approx([NPMI_BALL_GOAL, NPMI_OVEN_PAN, NPMI_BALL_PAN], abs=1e-9)
    assert per_topic[0] == pytest.approx(0.41504, abs=1e-5)
    assert mean == pytest.approx(np.mean(per_topic))


def test_a_document_longer_than_the_window_counts_once_per_window() -> None:
    # 11 tokens: windows [ball .. w9] and [w1 .. goal], so ball and goal are never in one
    # window. N = 4 + 2 = 6; p(ball) = 4/6, p(goal) = 3/6, p(ball, goal) = 2/6:
    # ln((1/3) / (4/6 * 3/6)) = ln(1) = 0
    long_doc = ["ball", *[f"w{i}" for i in range(1, 10)], "goal"]
    _, per_topic = compute_coherence([["ball", "goal"]], [*DOCS, long_doc], measure="c_npmi")
    assert per_topic == pytest.approx([0.0], abs=1e-9)


def test_npmi_scores_pairs_with_an_absent_word_minus_one() -> None:
    # zebra is in no document: pairs (ball, zebra) and (goal, zebra) score -1, (ball, goal)
    # its NPMI; the topic is the mean of its 3 pairs
    _, per_topic = compute_coherence([["ball", "goal", "zebra"]], DOCS, measure="c_npmi")
    assert per_topic == pytest.approx([(NPMI_BALL_GOAL - 2) / 3], abs=1e-9)
    # no word present at all: every pair -1, and gensim is not asked (it would fail)
    mean, per_topic = compute_coherence([["zebra", "yak"], ["ball", "goal"]], DOCS)
    assert per_topic == pytest.approx([-1.0, NPMI_BALL_GOAL], abs=1e-9)
    assert mean == pytest.approx((NPMI_BALL_GOAL - 1) / 2, abs=1e-9)


def test_npmi_is_cut_to_top_n_words_before_scoring() -> None:
    # the third word (absent) is past top_n=2, so it costs nothing
    _, per_topic = compute_coherence([["ball", "goal", "zebra"]], DOCS, top_n=2)
    assert per_topic == pytest.approx([NPMI_BALL_GOAL], abs=1e-9)


def test_c_v_leaves_absent_words_out_and_scores_unjudgeable_topics_zero() -> None:
    _, with_absent = compute_coherence([["ball", "goal", "zebra"]], DOCS, measure="c_v")
    _, without = compute_coherence([["ball", "goal"]], DOCS, measure="c_v")
    assert with_absent == pytest.approx(without, abs=1e-12)
    assert 0.0 < without[0] <= 1.0
    _, lone = compute_coherence([["ball", "zebra"]], DOCS, measure="c_v")
    assert lone == [0.0]


def test_a_topic_without_a_pair_scores_the_floor() -> None:
    # an NMF component with no weight lists no word; one word repeated is one word
    _, npmi = compute_coherence([[], ["ball", "ball"], ["ball", "goal"]], DOCS)
    assert npmi == pytest.approx([-1.0, -1.0, NPMI_BALL_GOAL], abs=1e-9)
    _, c_v = compute_coherence([[], ["ball"]], DOCS, measure="c_v")
    assert c_v == [0.0, 0.0]


def test_coherence_refuses_what_it_cannot_score() -> None:
    with pytest.raises(ValueError, match="top_n"):
        compute_coherence([["ball", "goal"]], DOCS, top_n=1)
    with pytest.raises(ValueError, match="at least one topic"):
        compute_coherence([], DOCS)
    with pytest.raises(ValueError, match="measure"):
        compute_coherence([["ball", "goal"]], DOCS, measure="u_mass")  # type: ignore[arg-type]


def test_diversity_counts_shared_words_once() -> None:
    topics = [["ball", "goal", "team", "match"], ["team", "match", "oven", "pan"]]
    assert compute_diversity(topics, top_n=4) == 6 / 8  # team and match are in both
    assert compute_diversity(topics, top_n=2) == 1.0  # ball goal | team match: no overlap
    assert compute_diversity([["a", "b"], ["a", "b"]]) == 0.5  # identical topics: 1/2


def test_purity_of_a_small_contingency_table() -> None:
    #            topic 0  topic 1  topic 2
    # sports        3        1        0
    # cooking       1        3        0
    # news          0        1        1
    # purity = (3 + 3 + 1) / 10 = 0.7: each topic's largest label, over all documents
    labels = ["sports"] * 4 + ["cooking"] * 4 + ["news"] * 2
    topics = [0, 0, 0, 1, 1, 1, 1, 0, 1, 2]  # sports rows, cooking rows, news rows
    assert compute_purity(labels, topics) == pytest.approx(0.7)
    agreement = compute_label_agreement(labels, topics)
    assert agreement["purity"] == pytest.approx(0.7)
    assert 0.0 < agreement["nmi"] < 1.0 and -1.0 < agreement["ari"] < 1.0


def test_label_agreement_is_one_for_renamed_labels() -> None:
    # topic ids are names, not classes: a perfect split under other names agrees fully
    agreement = compute_label_agreement(["a", "a", "b", "b"], ["7", "7", "3", "3"])
    assert agreement == pytest.approx({"nmi": 1.0, "ari": 1.0, "purity": 1.0})


def test_topic_shares_and_dominant_counts() -> None:
    doc_topic = np.array([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8], [0.4, 0.4, 0.2]])
    assert compute_topic_shares(doc_topic) == pytest.approx([0.45, 0.25, 0.3])
    # the tie in the last row goes to topic 0
    assert compute_dominant_counts(doc_topic) == [3, 0, 1]
    assert compute_dominant_counts(np.zeros((0, 3))) == [0, 0, 0]
