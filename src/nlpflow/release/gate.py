"""The promotion gate: may the challenger become champion?

Every check gets a verdict and a one-line reason; the challenger is promoted only when every
applicable check passes. Checks against the champion re-score the champion on the challenger's
test rows, so both are judged on the same texts:

- overlap       the champion did not train on those rows: when it trained on some, both are
                judged on the rest, or, with fewer than `evaluate.min_slice_size` left, the
                comparison is refused and nothing is promoted. A champion that recorded no
                training texts (registered before nlpflow kept them) is compared on all rows,
                with a note: training on test rows can only raise the champion's score, so a
                challenger that still beats it is better, while refusing would block every
                automatic promotion of such a project for good.
- margin        the main metric beats the champion's by at least `register.gate.min_improvement`
- significance  a paired test (McNemar, or a paired bootstrap of the main metric) says so at alpha
- slices        no trusted slice loses more than `max_slice_drop` against the champion
- behavioural   the behavioural pass rate is at least `min_behavioural_pass_rate`
- baseline      the main metric beats the tfidf_logreg baseline trained on the same data
- serving       the registered pyfunc, loaded back, predicts what evaluate measured

- identity      (first) the champion is a model of the same NLP task, labels and data source
                (nlpflow.release.identity); otherwise nothing is compared and nothing promoted

Without a champion, the first four do not apply. This module is pure: the registry gathers the
evidence and records the decision. The paired bootstrap's metric is the NLP task's (params `task`,
nlpflow.evaluation.nlp: Scoring.paired_metric).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from nlpflow.config.params import Params


class Check(BaseModel):
    name: str
    passed: bool
    applicable: bool = True
    reason: str


class Decision(BaseModel):
    promote: bool
    checks: list[Check]
    compared_version: int | None  # the champion it was compared with
    metric: str
    values: dict[str, float | None]  # challenger, champion, baseline, p_value, ...
    notes: list[str] = []  # what holds whether or not it passed (rows the champion trained on)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.applicable and not c.passed]

    @property
    def refused(self) -> bool:
        """Not compared with the champion, a model of other data (nlpflow.release.identity)."""
        return any(c.name == "identity" and c.applicable and not c.passed for c in self.checks)

    @property
    def reasons(self) -> str:
        failed = self.failed
        notes = "".join(f"; note: {note}" for note in self.notes)
        if not failed:
            passed = ", ".join(c.name for c in self.checks if c.applicable)
            return f"all checks passed: {passed}{notes}"
        return "; ".join(f"{c.name}: {c.reason}" for c in failed) + notes


@dataclass
class Overlap:
    """The current test rows the champion trained on (its recorded training texts against the
    test texts, nlpflow.evaluation.evaluate.text_key)."""

    test_rows: int
    trained_on: int | None  # None: the champion recorded no training texts
    kept: list[int] | None = None  # the test rows it did not train on (None: all)

    @property
    def compared_rows(self) -> int:
        return self.test_rows if self.kept is None else len(self.kept)


def overlap_refused(overlap: Overlap | None, params: Params) -> bool:
    """Too few rows the champion did not train on to compare the two on."""
    return (
        overlap is not None
        and bool(overlap.trained_on)
        and overlap.compared_rows < params.evaluate.min_slice_size
    )


@dataclass
class ChampionEvidence:
    """The champion's predictions, slices and score on the compared rows: every test row,
    or those of `overlap.kept`, where `challenger` holds the challenger's on the same rows."""

    version: int
    predicted: list[str]
    slices: dict[str, dict[str, Any]]
    score: float
    overlap: Overlap | None = None  # None: not checked (no training texts were looked up)
    challenger: ChallengerEvidence | None = None


@dataclass
class ChallengerEvidence:
    family: str
    gold: list[str]
    predicted: list[str]
    score: float
    slices: dict[str, dict[str, Any]]
    behavioural_pass_rate: float | None
    baseline_score: float | None
    serving_mismatches: list[str] = field(default_factory=list)  # empty: serving agrees
    serving_compared: bool = True  # False for an int8 version, meant to differ a little


def _champion_checks(
    challenger: ChallengerEvidence, champion: ChampionEvidence, params: Params
) -> tuple[list[Check], float | None]:
    from nlpflow.evaluation.nlp import scoring
    from nlpflow.evaluation.stats import mcnemar, paired_bootstrap

    gate, main = params.register_.gate, params.evaluate.main_metric
    diff = challenger.score - champion.score
    rows = champion.overlap.compared_rows if champion.overlap is not None else 0
    where = f" on the {rows} test rows it did not train on" if champion.challenger else ""
    margin = Check(
        name="margin",
        passed=diff > 0 and diff >= gate.min_improvement,
        reason=f"{main} {challenger.score:.4f} vs champion v{champion.version} "
        f"{champion.score:.4f}{where} ({diff:+.4f}; needs > 0 and >= {gate.min_improvement})",
    )
    paired = scoring(params.task).paired_metric(main, sorted(set(challenger.gold)))
    if paired is None:  # a score of the whole model (topic coherence), not a sum over rows
        significance = Check(
            name="significance",
            passed=True,
            applicable=False,
            reason=f"not tested: {main} of task {params.task} scores the model's topics as a "
            "whole, not each test row, so there is no paired test over rows; margin decides",
        )
        return [margin, significance, _slice_check(challenger, champion, params)], None
    if gate.significance == "mcnemar":
        test = mcnemar(challenger.gold, champion.predicted, challenger.predicted)
        detail = (
            f"McNemar p={test.p_value:.4g} (challenger alone right on {test.b_only_right} rows, "
            f"champion alone on {test.a_only_right})"
        )
    else:
        # the NLP task's paired metric scores all resamples at once (text-classification's from
        # one bincount, where scikit-learn's full report per resample took minutes)
        test = paired_bootstrap(
            challenger.gold, champion.predicted, challenger.predicted,
            metric=paired,
            samples=params.evaluate.bootstrap_samples, seed=params.evaluate.seed,
        )  # fmt: skip
        detail = f"paired bootstrap of {main}: p={test.p_value:.4g}"
    significance = Check(
        name="significance",
        passed=test.p_value < gate.alpha,
        reason=f"{detail}; needs p < {gate.alpha}",
    )
    return [margin, significance, _slice_check(challenger, champion, params)], test.p_value


def _slice_check(
    challenger: ChallengerEvidence, champion: ChampionEvidence, params: Params
) -> Check:
    main, tolerance = params.evaluate.main_metric, params.register_.gate.max_slice_drop
    drops = []
    for name, ours in challenger.slices.items():
        theirs = champion.slices.get(name)
        if not ours.get("trusted") or theirs is None:
            continue
        drop = float(theirs[main]) - float(ours[main])
        if drop > tolerance:
            drops.append(f"{name} {theirs[main]:.3f} -> {ours[main]:.3f} ({ours['rows']} rows)")
    trusted = sum(1 for s in challenger.slices.values() if s.get("trusted"))
    if drops:
        return Check(
            name="slices",
            passed=False,
            reason=f"{main} drops more than {tolerance} on " + ", ".join(drops),
        )
    return Check(
        name="slices",
        passed=True,
        reason=f"no trusted slice ({trusted}) drops more than {tolerance}",
    )


def _own_checks(challenger: ChallengerEvidence, params: Params) -> list[Check]:
    gate, main = params.register_.gate, params.evaluate.main_metric
    baseline_family = params.baseline_family  # train.baseline, else the task's own
    rate = challenger.behavioural_pass_rate
    checks = [
        Check(
            name="behavioural",
            passed=rate is None or rate >= gate.min_behavioural_pass_rate,
            applicable=rate is not None,
            reason="no behavioural tests configured"
            if rate is None
            else f"pass rate {rate:.3f}; needs >= {gate.min_behavioural_pass_rate}",
        )
    ]
    baseline_applies = gate.beat_baseline and challenger.family != baseline_family
    base = challenger.baseline_score
    checks.append(
        Check(
            name="baseline",
            passed=not baseline_applies or (base is not None and challenger.score > base),
            applicable=baseline_applies,
            reason=f"{main} {challenger.score:.4f} vs {baseline_family} baseline "
            + (f"{base:.4f}; needs more" if base is not None else "missing: run the baseline stage")
            if baseline_applies
            else f"not checked (train.family is {challenger.family}; gate.beat_baseline "
            f"{gate.beat_baseline})",
        )
    )
    mismatches = challenger.serving_mismatches
    if not challenger.serving_compared:
        reason = "not compared: the registered version is quantized (register.quantize)"
    elif mismatches:
        reason = "the registered model predicts differently from evaluate: " + "; ".join(
            mismatches[:3]
        )
    else:
        reason = "the registered model reproduces evaluate's predictions"
    checks.append(
        Check(
            name="serving",
            passed=not mismatches,
            applicable=challenger.serving_compared,
            reason=reason,
        )
    )
    return checks


def _overlap_check(champion: ChampionEvidence, params: Params) -> tuple[Check, list[str]]:
    """The overlap check and the note the decision carries, pass or fail."""
    overlap, v = champion.overlap, f"champion v{champion.version}"
    if overlap is None:
        return Check(name="overlap", passed=True, applicable=False, reason="not checked"), []
    if overlap.trained_on is None:
        note = (
            f"{v} recorded no training texts (registered before nlpflow kept them), so whether "
            f"it trained on some of the {overlap.test_rows} test rows could not be checked; "
            "compared on all of them (training on them could only raise its score)"
        )
        return Check(name="overlap", passed=True, reason=note), [note]
    if not overlap.trained_on:
        reason = f"{v} trained on none of the {overlap.test_rows} test rows"
        return Check(name="overlap", passed=True, reason=reason), []
    said = f"{v} trained on {overlap.trained_on} of the {overlap.test_rows} test rows"
    if overlap_refused(overlap, params):
        reason = (
            f"{said}; the {overlap.compared_rows} left are fewer than evaluate.min_slice_size "
            f"({params.evaluate.min_slice_size}): comparison refused, not promoted. Compare the "
            "two by hand and move the champion with `nlpflow registry promote`."
        )
        return Check(name="overlap", passed=False, reason=reason), []  # the failure says it
    note = f"{said}; both compared on the remaining {overlap.compared_rows}"
    return Check(name="overlap", passed=True, reason=note), [note]


def _comparison(
    challenger: ChallengerEvidence, champion: ChampionEvidence | None, params: Params
) -> tuple[list[Check], float | None, list[str]]:
    """The checks against the champion (overlap, margin, significance, slices), the p-value
    and the decision's notes."""
    if champion is None:
        return [
            Check(name=name, passed=True, applicable=False, reason="no champion yet")
            for name in ("overlap", "margin", "significance", "slices")
        ], None, []  # fmt: skip
    overlap, notes = _overlap_check(champion, params)
    if overlap_refused(champion.overlap, params):
        return [overlap] + [
            Check(name=name, passed=True, applicable=False, reason="refused: see overlap")
            for name in ("margin", "significance", "slices")
        ], None, notes  # fmt: skip
    checks, p_value = _champion_checks(champion.challenger or challenger, champion, params)
    return [overlap, *checks], p_value, notes


def _refused(identity: Check) -> list[Check]:
    """The champion is a model of other data (nlpflow.release.identity): nothing compared."""
    return [identity] + [
        Check(name=name, passed=True, applicable=False, reason="refused: see identity")
        for name in ("overlap", "margin", "significance", "slices")
    ]


def decide(
    challenger: ChallengerEvidence, champion: ChampionEvidence | None, params: Params, *,
    identity: Check | None = None, refused_version: int | None = None,
) -> Decision:  # fmt: skip
    """`identity`: the check that the champion is a model of the same task, labels and data
    (nlpflow.release.identity.identity_check); failed, `champion` is None (never scored) and
    `refused_version` is the champion's version."""
    if identity is not None and identity.applicable and not identity.passed:
        checks, p_value, notes = _refused(identity), None, list[str]()
    else:
        checks, p_value, notes = _comparison(challenger, champion, params)
        checks = ([identity] if identity is not None else []) + checks
    checks += _own_checks(challenger, params)
    compared = champion is not None and not overlap_refused(champion.overlap, params)
    overlap = champion.overlap if champion is not None else None
    return Decision(
        promote=all(c.passed for c in checks if c.applicable),
        checks=checks,
        compared_version=champion.version if champion is not None else refused_version,
        metric=params.evaluate.main_metric,
        values={
            "challenger": challenger.score,
            "champion": champion.score if champion is not None and compared else None,
            "baseline": challenger.baseline_score,
            "p_value": p_value,
            "behavioural_pass_rate": challenger.behavioural_pass_rate,
        }
        | _overlap_values(champion, overlap),
        notes=notes,
    )


def _overlap_values(champion: ChampionEvidence | None, overlap: Overlap | None) -> dict[str, Any]:
    """The rows the comparison stood on, and the challenger's score on them when they were
    not all test rows."""
    if champion is None or overlap is None:
        return {}
    values: dict[str, Any] = {
        "champion_trained_on": overlap.trained_on, "compared_rows": overlap.compared_rows,
    }  # fmt: skip
    if champion.challenger is not None:
        values["challenger_compared"] = champion.challenger.score
    return values


def compare_predictions(
    expected: Sequence[str],
    expected_proba: Any,
    got: Sequence[str],
    got_proba: Any,
    *,
    texts: Sequence[str],
    tolerance: float = 1e-5,
) -> list[str]:
    """Rows where the served model's label differs, or a probability moves by more than
    `tolerance` (float noise of batching differently is far below it)."""
    import numpy as np

    gap = np.abs(np.asarray(expected_proba, dtype=float) - np.asarray(got_proba, dtype=float))
    out = []
    for i, (a, b) in enumerate(zip(expected, got, strict=True)):
        if a != b or float(gap[i].max()) > tolerance:
            out.append(f"row {i} {texts[i][:40]!r}: {a} -> {b}, max |dp| {gap[i].max():.2e}")
    return out
