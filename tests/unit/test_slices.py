"""Slices of the test set: bucket edges, negation cues, keyword and regex rules, and metrics."""

from __future__ import annotations

import pytest

from nlpflow.config.params import EvaluateParams, SliceParams
from nlpflow.errors import ParamsError
from nlpflow.evaluation.slices import (
    NEGATION,
    compute_slice_metrics,
    keyword_pattern,
    length_slices,
    slice_members,
)


def _words(n: int) -> str:
    return " ".join(["w"] * n)


def test_length_buckets_are_named_by_their_inclusive_edges() -> None:
    names = [name for name, _, _ in length_slices([8, 16, 32])]
    assert names == ["length_le_8", "length_9_16", "length_17_32", "length_gt_32"]


def test_a_text_on_an_edge_belongs_to_the_lower_bucket() -> None:
    params = EvaluateParams(length_buckets=[8, 16], negation=False)
    texts = [_words(1), _words(8), _words(9), _words(16), _words(17), "  spaced \n out\ttext  "]
    members = slice_members(texts, params=params)
    assert list(members) == ["length_le_8", "length_9_16", "length_gt_16"]
    assert members["length_le_8"][1].tolist() == [True, True, False, False, False, True]
    assert members["length_9_16"][1].tolist() == [False, False, True, True, False, False]
    assert members["length_gt_16"][1].tolist() == [False, False, False, False, True, False]


@pytest.mark.parametrize(
    "text",
    [
        "I don't want this",
        "it is n't funny",  # MR's tokenisation splits n't off
        "it isn’t working",  # typographic apostrophe
        "Never again.",
        "No refund yet",
        "I cannot log in",
        "nothing works",
        "neither the app nor the site",
    ],
)
def test_negation_cues_are_found(text: str) -> None:
    assert NEGATION.search(text)


@pytest.mark.parametrize(
    "text", ["a notable film", "I know the answer", "Nora's snow donut", "nothingness", "nonstop"]
)
def test_words_that_merely_contain_a_cue_are_not_negations(text: str) -> None:
    assert not NEGATION.search(text)


def test_keywords_match_whole_words_in_any_case_and_phrases_across_spaces() -> None:
    pattern = keyword_pattern(["refund", "money back", "#1"])
    assert pattern.search("REFUND please")
    assert pattern.search("I want my Money   back!")
    assert pattern.search("ranked #1 again")
    assert not pattern.search("it was refunded")  # a longer word is not the keyword
    assert not pattern.search("moneyback")
    assert not pattern.search("ranked #12")


def test_configured_keyword_and_regex_slices() -> None:
    params = EvaluateParams(
        length_buckets=[100], negation=False,
        slices={"refunds": SliceParams(keywords=["refund"]),
                "orders": SliceParams(regex=r"#\d{4,}")},
    )  # fmt: skip
    texts = ["Refund for order #12345", "order #123 is late", "refunds pending", "#98765"]
    members = slice_members(texts, params=params)
    assert members["refunds"] == ("keywords", members["refunds"][1])
    assert members["refunds"][1].tolist() == [True, False, False, False]
    assert members["orders"][0] == "regex"
    assert members["orders"][1].tolist() == [True, False, False, True]


def test_a_configured_slice_may_not_take_a_built_in_name() -> None:
    params = EvaluateParams(slices={"negation": SliceParams(keywords=["no"])})
    with pytest.raises(ParamsError, match=r"evaluate\.slices\.negation.*rename"):
        slice_members(["no"], params=params)


def test_slice_metrics_by_hand() -> None:
    params = EvaluateParams(
        length_buckets=[3], main_metric="macro_f1", min_slice_size=3,
        slices={"refunds": SliceParams(keywords=["refund"]),
                "unmatched": SliceParams(keywords=["zebra"])},
    )  # fmt: skip
    texts = ["no refund", "refund now", "not good", "a long text of words", "fine thanks here ok"]
    gold = ["billing", "billing", "tech", "tech", "tech"]
    predicted = ["tech", "billing", "tech", "billing", "tech"]
    slices = compute_slice_metrics(
        texts, gold, predicted, labels=["billing", "tech"], params=params
    )
    # length_le_3: rows 0-2; right: rows 1, 2 -> accuracy 2/3
    #   billing: tp 1, fp 0, fn 1 -> F1 2/3; tech: tp 1, fp 1, fn 0 -> F1 2/3; macro 2/3
    assert slices["length_le_3"] == {
        "kind": "length", "rows": 3, "accuracy": pytest.approx(2 / 3),
        "macro_f1": pytest.approx(2 / 3), "trusted": True,
    }  # fmt: skip
    # negation: rows 0 ("no") and 2 ("not") -> accuracy 1/2, untrusted (2 < 3 rows)
    assert slices["negation"]["rows"] == 2
    assert slices["negation"]["accuracy"] == pytest.approx(1 / 2)
    assert slices["negation"]["trusted"] is False
    # length_gt_3: rows 3, 4, all gold tech; predicted billing, tech
    #   tech: tp 1, fn 1 -> F1 2/3; billing: tp 0, fp 1 -> F1 0; macro over both = 1/3
    assert slices["length_gt_3"]["macro_f1"] == pytest.approx(1 / 3)
    assert slices["refunds"]["kind"] == "keywords"
    assert "unmatched" not in slices  # a slice without rows has no metrics to report


def test_slice_metrics_average_over_the_labels_present_in_the_slice() -> None:
    # every row of this slice is "tech" and right: macro F1 is 1, not 1/3 (three labels)
    params = EvaluateParams(length_buckets=[10], negation=False)
    slices = compute_slice_metrics(
        ["a b", "c d"], ["tech", "tech"], ["tech", "tech"],
        labels=["billing", "shipping", "tech"], params=params,
    )  # fmt: skip
    assert slices["length_le_10"]["macro_f1"] == 1.0


def test_slice_metrics_reject_misaligned_inputs() -> None:
    with pytest.raises(ValueError, match="one entry per row"):
        compute_slice_metrics(["a"], ["x", "y"], ["x"], labels=["x"], params=EvaluateParams())
