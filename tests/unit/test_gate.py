"""The promotion gate's decisions and the paired statistics under them."""

from __future__ import annotations

import pytest

from nlpflow.config.params import Params
from nlpflow.evaluation.stats import bootstrap_ci, mcnemar, paired_bootstrap
from nlpflow.release.gate import (
    ChallengerEvidence,
    ChampionEvidence,
    Overlap,
    compare_predictions,
    decide,
)

GOLD = ["a", "b"] * 50  # 100 rows


def _accuracy(y, p) -> float:  # type: ignore[no-untyped-def]
    return sum(1 for g, q in zip(y, p, strict=True) if g == q) / len(y)


def _flip(labels: list[str], rows: range) -> list[str]:
    out = list(labels)
    for i in rows:
        out[i] = "b" if out[i] == "a" else "a"
    return out


def _slices(**scores: tuple[int, float]) -> dict[str, dict]:
    return {
        name: {"kind": "keywords", "rows": rows, "accuracy": value, "macro_f1": value,
               "trusted": rows >= 20}
        for name, (rows, value) in scores.items()
    }  # fmt: skip


def _challenger(predicted: list[str], **overrides) -> ChallengerEvidence:  # type: ignore[no-untyped-def]
    fields = dict(
        family="transformer", gold=GOLD, predicted=predicted, score=_accuracy(GOLD, predicted),
        slices=_slices(refunds=(40, 0.9)), behavioural_pass_rate=0.95, baseline_score=0.5,
    )  # fmt: skip
    fields.update(overrides)
    return ChallengerEvidence(**fields)  # type: ignore[arg-type]


def _champion(predicted: list[str], **overrides) -> ChampionEvidence:  # type: ignore[no-untyped-def]
    fields = dict(version=1, predicted=predicted, slices=_slices(refunds=(40, 0.9)),
                  score=_accuracy(GOLD, predicted))  # fmt: skip
    fields.update(overrides)
    return ChampionEvidence(**fields)  # type: ignore[arg-type]


def _params(**gate) -> Params:  # type: ignore[no-untyped-def]
    return Params.model_validate(
        {"evaluate": {"main_metric": "accuracy"}, "register": {"gate": gate}}
    )


def _failed(decision) -> set[str]:  # type: ignore[no-untyped-def]
    return {c.name for c in decision.failed}


def test_mcnemar_exact_one_sided_p_value() -> None:
    a = _flip(GOLD, range(10))  # A wrong on rows 0-9, B right everywhere
    test = mcnemar(GOLD, a, GOLD)
    assert (test.b_only_right, test.a_only_right) == (10, 0)
    assert test.p_value == pytest.approx(0.5**10)  # P(X >= 10), X ~ Binomial(10, 1/2)
    assert test.difference == pytest.approx(0.10)
    # 6 of 8 discordant rows for B: P(X >= 6) = (28 + 8 + 1) / 256
    b = _flip(GOLD, range(2))
    a = _flip(GOLD, range(2, 8))
    assert mcnemar(GOLD, a, b).p_value == pytest.approx(37 / 256)
    assert mcnemar(GOLD, GOLD, GOLD).p_value == 1.0


def test_paired_bootstrap_and_interval() -> None:
    worse = _flip(GOLD, range(30))
    clear = paired_bootstrap(GOLD, worse, GOLD, metric=_accuracy, samples=500, seed=1)
    assert clear.p_value == pytest.approx(1 / 501)  # B beats A in every resample
    same = paired_bootstrap(GOLD, GOLD, GOLD, metric=_accuracy, samples=200, seed=1)
    assert same.p_value == 1.0  # a tie never counts as better
    interval = bootstrap_ci(GOLD, worse, metric=_accuracy, name="accuracy", samples=500)
    assert interval.value == pytest.approx(0.7)
    assert 0.58 < interval.low < 0.7 < interval.high < 0.82  # about +-1.96 * sqrt(.21/100)


def test_a_clearly_better_challenger_is_promoted() -> None:
    decision = decide(_challenger(GOLD), _champion(_flip(GOLD, range(20))), _params())
    assert decision.promote, decision.reasons
    assert decision.compared_version == 1
    assert decision.values["p_value"] == pytest.approx(0.5**20)
    assert decision.reasons.startswith("all checks passed")


def test_a_degraded_challenger_is_rejected_naming_the_checks() -> None:
    champion = _champion(_flip(GOLD, range(5)))
    degraded = _challenger(_flip(GOLD, range(30)))
    decision = decide(degraded, champion, _params())
    assert not decision.promote
    assert _failed(decision) == {"margin", "significance"}
    assert "accuracy 0.7000 vs champion v1 0.9500" in decision.reasons


def test_better_but_not_significantly_is_rejected() -> None:
    champion = _champion(_flip(GOLD, range(3)))  # 0.97 against 0.98: one row apart
    decision = decide(_challenger(_flip(GOLD, range(2))), champion, _params())
    assert _failed(decision) == {"significance"}
    bootstrap = decide(
        _challenger(_flip(GOLD, range(2))), champion, _params(significance="bootstrap")
    )
    assert _failed(bootstrap) == {"significance"} and "paired bootstrap" in bootstrap.reasons


def test_margin_is_required_on_top_of_significance() -> None:
    decision = decide(
        _challenger(GOLD), _champion(_flip(GOLD, range(20))), _params(min_improvement=0.25)
    )
    assert _failed(decision) == {"margin"}


def test_a_slice_regression_blocks_promotion() -> None:
    challenger = _challenger(GOLD, slices=_slices(refunds=(40, 0.80), tiny=(5, 0.0)))
    champion = _champion(_flip(GOLD, range(20)), slices=_slices(refunds=(40, 0.90), tiny=(5, 1)))
    decision = decide(challenger, champion, _params(max_slice_drop=0.05))
    assert _failed(decision) == {"slices"}
    assert "refunds 0.900 -> 0.800" in decision.reasons
    assert "tiny" not in decision.reasons  # 5 rows: reported, not gated
    assert decide(challenger, champion, _params(max_slice_drop=0.2)).promote


def test_behavioural_baseline_and_serving_checks() -> None:
    champion = _champion(_flip(GOLD, range(20)))
    low = decide(_challenger(GOLD, behavioural_pass_rate=0.6), champion, _params())
    assert _failed(low) == {"behavioural"} and "pass rate 0.600" in low.reasons
    below = decide(_challenger(GOLD, baseline_score=1.0), champion, _params())
    assert _failed(below) == {"baseline"}
    drift = decide(_challenger(GOLD, serving_mismatches=["row 3"]), champion, _params())
    assert _failed(drift) == {"serving"}


def test_first_version_needs_only_its_own_checks() -> None:
    first = decide(_challenger(_flip(GOLD, range(40))), None, _params())
    assert first.promote and first.compared_version is None
    assert {c.name for c in first.checks if not c.applicable} == {
        "overlap", "margin", "significance", "slices"
    }  # fmt: skip
    assert not decide(
        _challenger(_flip(GOLD, range(40)), baseline_score=0.7), None, _params()
    ).promote
    # the baseline family is not asked to beat itself
    tfidf = _challenger(GOLD, family="tfidf_logreg", baseline_score=1.0)
    assert decide(tfidf, None, _params()).promote
    assert decide(_challenger(GOLD, baseline_score=1.0), None, _params(beat_baseline=False)).promote


def test_compare_predictions_flags_label_and_probability_changes() -> None:
    proba = [[0.9, 0.1], [0.4, 0.6]]
    assert compare_predictions(["a", "b"], proba, ["a", "b"], proba, texts=["x", "y"]) == []
    moved = [[0.9, 0.1], [0.4 + 1e-3, 0.6 - 1e-3]]
    out = compare_predictions(["a", "b"], proba, ["a", "b"], moved, texts=["x", "y"])
    assert len(out) == 1 and out[0].startswith("row 1 'y'")
    out = compare_predictions(["a", "b"], proba, ["a", "a"], proba, texts=["x", "y"])
    assert "b -> a" in out[0]


# --- a champion that trained on some of the test rows ------------------------------------------


def test_a_champion_that_trained_on_test_rows_is_judged_on_the_rest() -> None:
    # On all 100 rows the champion (trained on rows 0-59, all of which it gets right) looks
    # better than the challenger; on the 40 rows it never saw, the challenger is far better.
    champion_all = _flip(GOLD, range(60, 100, 2))  # wrong on 20 of the 40 unseen rows
    challenger_all = _flip(GOLD, range(0, 30))  # wrong on 30 rows it was tested on fairly
    kept = list(range(60, 100))
    gold = [GOLD[i] for i in kept]
    theirs, ours = [champion_all[i] for i in kept], [challenger_all[i] for i in kept]
    overlap = Overlap(test_rows=100, trained_on=60, kept=kept)
    on_kept = ChallengerEvidence(
        family="transformer", gold=gold, predicted=ours, score=_accuracy(gold, ours),
        slices=_slices(refunds=(40, 0.9)), behavioural_pass_rate=0.95, baseline_score=0.5,
    )  # fmt: skip
    champion = ChampionEvidence(
        version=1, predicted=theirs, slices=_slices(refunds=(40, 0.9)),
        score=_accuracy(gold, theirs), overlap=overlap, challenger=on_kept,
    )  # fmt: skip
    decision = decide(_challenger(challenger_all), champion, _params())
    assert decision.promote, decision.reasons
    assert decision.values["champion"] == 0.5 and decision.values["challenger_compared"] == 1.0
    assert decision.values["challenger"] == 0.7  # its own test score stays what it is
    assert decision.values["compared_rows"] == 40 and decision.values["champion_trained_on"] == 60
    assert decision.reasons.endswith(
        "note: champion v1 trained on 60 of the 100 test rows; both compared on the remaining 40"
    )
    margin = next(c for c in decision.checks if c.name == "margin")
    assert "on the 40 test rows it did not train on" in margin.reason


def test_too_few_unseen_rows_refuse_the_comparison_and_never_promote() -> None:
    overlap = Overlap(test_rows=100, trained_on=90, kept=list(range(90, 100)))
    champion = _champion(_flip(GOLD, range(50)), overlap=overlap)  # far worse: still refused
    decision = decide(_challenger(GOLD), champion, _params())
    assert not decision.promote
    assert _failed(decision) == {"overlap"}
    assert decision.reasons.startswith(
        "overlap: champion v1 trained on 90 of the 100 test rows; the 10 left are fewer than "
        "evaluate.min_slice_size (20): comparison refused"
    )
    assert decision.reasons.count("trained on 90") == 1
    assert {c.name for c in decision.checks if not c.applicable} == {
        "margin", "significance", "slices"
    }  # fmt: skip
    assert decision.values["champion"] is None and decision.values["p_value"] is None


def test_no_overlap_and_an_unchecked_champion_compare_on_all_rows() -> None:
    clean = _champion(_flip(GOLD, range(20)), overlap=Overlap(test_rows=100, trained_on=0))
    decision = decide(_challenger(GOLD), clean, _params())
    assert decision.promote and decision.notes == []
    overlap = next(c for c in decision.checks if c.name == "overlap")
    assert overlap.reason == "champion v1 trained on none of the 100 test rows"
    legacy = _champion(_flip(GOLD, range(20)), overlap=Overlap(test_rows=100, trained_on=None))
    decision = decide(_challenger(GOLD), legacy, _params())
    assert decision.promote  # a warning, not a refusal: see nlpflow.release.gate's docstring
    assert "could not be checked; compared on all of them" in decision.reasons
    assert decision.values["champion_trained_on"] is None
