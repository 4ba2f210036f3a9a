"""Behavioural tests in the style of CheckList (Ribeiro et al., ACL 2020), from a YAML file.

Three kinds, each a list of cases that pass or fail:
- invariance: a perturbation that must not change the prediction (`typos`, `person_names`,
  `punctuation`), over texts listed in the file or `from_test: N` seeded test rows;
- directional: a transform (`add_negation`, or `append:` / `prepend:` a text) and an
  expectation on one label: its probability must `increase` or `decrease`, or the prediction
  must `flip` away from it;
- mft (minimum functionality): short canonical texts with the labels they must get.

Texts are raw: the caller's `predict` cleans them as serving does, then predicts. Example file:

    tests:
      - {name: typos, type: invariance, perturbation: typos, from_test: 50}
      - name: negation_lowers_pos
        type: directional
        transform: add_negation
        label: pos
        expect: decrease
        from_test: 50
        predicted_as: pos
      - name: canonical
        type: mft
        examples:
          - {text: "a wonderful, moving film", label: pos}
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from nlpflow.errors import ParamsError

Predict = Callable[[list[str]], tuple[list[str], np.ndarray]]
MAX_FAILURES = 5  # examples kept per test: enough to see the pattern, small enough to read


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Sourced(_Strict):
    """Tests that run over texts: listed in the file, or drawn from the test split."""

    name: str = Field(min_length=1, description="Unique; names the test in reports and MLflow.")
    texts: list[str] | None = Field(default=None, description="Raw texts to test.")
    from_test: int | None = Field(
        default=None, ge=1, description="Draw up to this many test rows (seeded by evaluate.seed)."
    )
    predicted_as: str | None = Field(
        default=None,
        description="from_test draws only rows the model predicts as this label (directional "
        "tests with expect: flip default to their `label`: only those can flip away from it).",
    )

    @model_validator(mode="after")
    def _one_source(self) -> _Sourced:
        if (self.texts is None) == (self.from_test is None):
            raise ValueError("give either texts or from_test (exactly one)")
        if self.texts is not None and not self.texts:
            raise ValueError("texts is empty")
        return self


class InvarianceTest(_Sourced):
    type: Literal["invariance"]
    perturbation: Literal["typos", "person_names", "punctuation"]
    typos: int = Field(default=1, ge=1, le=5, description="typos: adjacent swaps per text.")


class DirectionalTest(_Sourced):
    type: Literal["directional"]
    transform: Literal["add_negation"] | None = None
    append: str | None = Field(default=None, description="Text added at the end (after a space).")
    prepend: str | None = Field(default=None, description="Text put in front (then a space).")
    label: str = Field(description="The label whose probability or prediction is expected to move.")
    expect: Literal["increase", "decrease", "flip"]

    @model_validator(mode="after")
    def _one_transform(self) -> DirectionalTest:
        given = [v for v in (self.transform, self.append, self.prepend) if v is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of transform (add_negation), append or prepend")
        return self


class MftExample(_Strict):
    text: str = Field(min_length=1)
    label: str


class MftTest(_Strict):
    name: str = Field(min_length=1)
    type: Literal["mft"]
    examples: list[MftExample] = Field(min_length=1)


BehaviouralTest = Annotated[InvarianceTest | DirectionalTest | MftTest, Field(discriminator="type")]


class BehaviouralSuite(_Strict):
    tests: list[BehaviouralTest]

    @model_validator(mode="after")
    def _unique_names(self) -> BehaviouralSuite:
        names = [t.name for t in self.tests]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"test names must be unique; repeated: {', '.join(repeated)}")
        return self


class BehaviouralResult(BaseModel):
    name: str
    type: str
    cases: int
    passed: int
    skipped: int  # texts the test does not apply to (unchanged by the perturbation, ...)
    pass_rate: float | None
    failures: list[dict[str, Any]]
    not_run: str | None = None  # why the whole test did not run (the sample's, on other labels)


class BehaviouralReport(BaseModel):
    pass_rate: float | None  # passed cases over all cases; None without cases
    cases: int
    tests: list[BehaviouralResult]

    def summary(self) -> dict[str, Any]:
        return {"pass_rate": self.pass_rate, "tests": {t.name: t.pass_rate for t in self.tests}}


# --- the file ---------------------------------------------------------------------------------


def load_behavioural(path: Path) -> BehaviouralSuite:
    """Read and validate a behavioural test file; every problem names the file and the key."""
    import yaml

    if not path.is_file():
        raise ParamsError(
            f"behavioural test file {path} does not exist: create it (see behavioural.yaml "
            "in the nlpflow repository) or set evaluate.behavioural: null to run none."
        )
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(tree, dict):
        raise ParamsError(f"{path}: expected a mapping with a `tests:` list at the top.")
    try:
        return BehaviouralSuite.model_validate(tree)
    except ValidationError as exc:
        problems = "; ".join(_describe(error, tree) for error in exc.errors())
        raise ParamsError(f"{path}: {problems}") from None


def _describe(error: Any, tree: dict[str, Any]) -> str:
    """`tests[2] (negation).expect: Input should be ...` from one pydantic error."""
    loc, parts = list(error["loc"]), []
    if len(loc) >= 2 and loc[0] == "tests" and isinstance(loc[1], int):
        test = (tree.get("tests") or [None] * (loc[1] + 1))[loc[1]]
        name = test.get("name") if isinstance(test, dict) else None
        parts.append(f"tests[{loc[1]}]" + (f" ({name})" if name else ""))
        loc = loc[2:]
        if loc and loc[0] in ("invariance", "directional", "mft"):
            loc = loc[1:]  # the discriminator's tag, not a key of the file
    parts += [f"[{p}]" if isinstance(p, int) else str(p) for p in loc]
    where = ".".join(parts).replace(".[", "[") or "top level"
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key (check its spelling and the documented keys)"
    return f"{where}: {message}"


# The digest of the sample project's behavioural.yaml as shipped (its parsed content, so
# comments and layout do not count). That file names the sample's labels; on other data its
# tests naming absent labels are left out with a warning. Any other file is the user's own and
# must fit the data (checked in validate, before training). tests/unit/test_behavioural_fit.py
# fails when behavioural.yaml changes without this digest.
SAMPLE_SUITE_SHA256 = "e54d7b127c491b1215c22f75bcddc088816dac662537d45242bfccad72fd9043"


def suite_digest(path: Path) -> str | None:
    """sha256 of the file's parsed YAML (None when it does not parse)."""
    import hashlib
    import json

    import yaml

    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    return hashlib.sha256(json.dumps(tree, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def is_sample(path: Path) -> bool:
    return suite_digest(path) == SAMPLE_SUITE_SHA256


def _named_labels(test: InvarianceTest | DirectionalTest | MftTest) -> list[str]:
    if isinstance(test, MftTest):
        return [e.label for e in test.examples]
    if isinstance(test, DirectionalTest):
        return [n for n in (test.label, test.predicted_as) if n is not None]
    return [n for n in (test.predicted_as,) if n is not None]


def unknown_labels(suite: BehaviouralSuite, labels: Sequence[str]) -> dict[str, list[str]]:
    """test name -> the labels it names that are not among `labels`, for tests naming any."""
    out = {}
    for test in suite.tests:
        unknown = sorted({n for n in _named_labels(test) if n not in labels})
        if unknown:
            out[test.name] = unknown
    return out


def check_labels(suite: BehaviouralSuite, labels: Sequence[str], *, path: Path) -> None:
    """Every label the file names must be one the model predicts; the sample's file as
    shipped is exempt (run_behavioural leaves out its tests that do not fit)."""
    unknown = unknown_labels(suite, labels)
    if unknown and not is_sample(path):
        name, missing = next(iter(unknown.items()))
        raise ParamsError(
            f"{path}: test {name!r} names label(s) {', '.join(missing)}, which the "
            f"model does not predict; its labels are {', '.join(labels)}."
        )


class BehaviouralFit(BaseModel):
    """How the behavioural file fits the data's labels, decided before training."""

    path: str
    sample: bool  # the sample project's file, as shipped
    left_out: dict[str, list[str]] = {}  # test -> labels it names that the data lacks

    def warning(self) -> str | None:
        if not self.left_out:
            return None
        tests = ", ".join(f"{t} ({', '.join(labels)})" for t, labels in self.left_out.items())
        return (
            f"{self.path} is the sample project's behavioural file and does not fit this "
            f"data's labels: its tests {tests} name labels the data lacks, so evaluate runs "
            "without them. Write behavioural tests for your labels in it (see its comments), "
            "or set evaluate.behavioural: null."
        )


def check_fit(path: Path, labels: Sequence[str]) -> BehaviouralFit:
    """Before training: the user's own file must name only the data's labels (ParamsError);
    the sample's file as shipped is fitted, its tests that name absent labels left out."""
    suite = load_behavioural(path)
    unknown, sample = unknown_labels(suite, labels), is_sample(path)
    if unknown and not sample:
        tests = "; ".join(f"{t} names {', '.join(missing)}" for t, missing in unknown.items())
        raise ParamsError(
            f"{path} does not fit the data: {tests}, but the data's labels are "
            f"{', '.join(labels)}. Fix those tests' labels (or map the data's labels with "
            "data.label_map), or set evaluate.behavioural: null. Checked before training, "
            "so no model is trained only to fail in evaluate."
        )
    return BehaviouralFit(path=str(path), sample=sample, left_out=unknown)


# --- perturbations and transforms -------------------------------------------------------------
# Each depends on the text and the seed only (random.Random seeds a string through SHA-512),
# so a rerun perturbs the same texts the same way on any machine.


def _rng(seed: int, text: str) -> random.Random:
    return random.Random(f"{seed}\x00{text}")


_INNER = re.compile(r"[^\W\d_]{4,}")  # words of 4+ letters: swaps inside keep them readable


def add_typos(text: str, *, seed: int, swaps: int = 1) -> str:
    """Swap `swaps` pairs of adjacent, different letters inside words, never a word's first or
    last letter (people read past those typos; the model should too)."""
    spots = [
        i
        for m in _INNER.finditer(text)
        for i in range(m.start() + 1, m.end() - 2)
        if text[i] != text[i + 1]
    ]
    rng, chars = _rng(seed, text), list(text)
    for _ in range(swaps):
        if not spots:
            break
        i = rng.choice(spots)
        chars[i], chars[i + 1] = chars[i + 1], chars[i]
        spots = [s for s in spots if abs(s - i) > 1]  # never undo or overlap a swap
    return "".join(chars)


# First names from several languages. Left out on purpose: names that are also common English
# words (Will, May, Bill, Mark, Grace, Rose, Jack), which would change meaning, not a name.
FIRST_NAMES = (
    "Ahmed", "Aisha", "Anna", "Björn", "Carlos", "Chloé", "Daniel", "David", "Emma", "Fatima",
    "Hannah", "James", "John", "José", "Julia", "Karen", "Kenji", "Laura", "Liam", "Linda",
    "Lucia", "Lucy", "Maria", "Mary", "Mei", "Michael", "Noémie", "Olivia", "Omar", "Paul",
    "Peter", "Priya", "René", "Robert", "Sarah", "Sofia", "Steven", "Thomas", "Tom", "Wei", "Zoë",
)  # fmt: skip
_NAMES = re.compile(rf"\b(?:{'|'.join(FIRST_NAMES)})\b", re.IGNORECASE)


def swap_names(text: str, *, seed: int) -> str:
    """Replace each first name of FIRST_NAMES found in the text (any case) by another one,
    written in the same case; the same name gets the same replacement throughout."""
    rng, chosen = _rng(seed, text), {}
    for found in sorted({m.group(0).lower() for m in _NAMES.finditer(text)}):
        chosen[found] = rng.choice([n for n in FIRST_NAMES if n.lower() != found])

    def replace(match: re.Match[str]) -> str:
        new, old = chosen[match.group(0).lower()], match.group(0)
        return new.lower() if old.islower() else new.upper() if old.isupper() else new

    return _NAMES.sub(replace, text)


_TRAILING = re.compile(r"\s*[.!?]+\s*$")


def toggle_punctuation(text: str, *, seed: int) -> str:
    """Strip the closing punctuation, or add a full stop or exclamation mark where there is none."""
    if _TRAILING.search(text):
        return _TRAILING.sub("", text)
    return text.rstrip() + _rng(seed, text).choice([".", "!"])


# Words that are nearly always auxiliaries in front of a verb or adjective; do/have are left out
# because as main verbs ("I have a refund") a "not" after them reads wrong.
_AUXILIARY = re.compile(
    r"\b(?:is|are|was|were|am|can|could|will|would|should|must|might|did)\b"
    r"(?!\s*n?['’]t\b)(?!\s+not\b)",  # not negated yet: isn't, is n't, can't, is not
    re.IGNORECASE,
)


def add_negation(text: str) -> str:
    """Insert "not" after the first auxiliary that is not negated yet ("it was fun" -> "it was
    not fun"); without one, prefix "It is not true that "."""
    match = _AUXILIARY.search(text)
    if match is not None:
        return f"{text[: match.end()]} not{text[match.end() :]}"
    keep_case = text[:2] == "I " or (text[:1].isupper() and text[1:2].isupper())  # I, acronyms
    return "It is not true that " + (text if keep_case else text[:1].lower() + text[1:])


def perturb(test: InvarianceTest, text: str, *, seed: int) -> str:
    if test.perturbation == "typos":
        return add_typos(text, seed=seed, swaps=test.typos)
    if test.perturbation == "person_names":
        return swap_names(text, seed=seed)
    return toggle_punctuation(text, seed=seed)


def transform(test: DirectionalTest, text: str) -> str:
    if test.append is not None:
        return f"{text.rstrip()} {test.append}"
    if test.prepend is not None:
        return f"{test.prepend} {text.lstrip()}"
    return add_negation(text)


# --- running ----------------------------------------------------------------------------------


def run_behavioural(
    suite: BehaviouralSuite,
    *,
    predict: Predict,
    labels: Sequence[str],
    test_texts: Sequence[str],
    test_predicted: Sequence[str],
    seed: int,
) -> BehaviouralReport:
    """Run every test. `predict` maps raw texts to (labels, probabilities in `labels` order);
    `test_texts`/`test_predicted` are the test split's raw texts and their predictions, which
    `from_test` draws from."""
    results = []
    for test in suite.tests:
        absent = sorted({n for n in _named_labels(test) if n not in labels})
        if absent:  # only the sample's file gets here (check_labels refuses the others)
            results.append(_not_run(test, absent))
            continue
        if isinstance(test, MftTest):
            results.append(_run_mft(test, predict))
            continue
        pool = _pool(test, test_texts, test_predicted, seed=seed)
        if isinstance(test, InvarianceTest):
            results.append(_run_invariance(test, pool, predict, seed=seed))
        else:
            results.append(_run_directional(test, pool, predict, labels=labels))
    cases, passed = sum(r.cases for r in results), sum(r.passed for r in results)
    return BehaviouralReport(
        pass_rate=passed / cases if cases else None, cases=cases, tests=results
    )


def _pool(
    test: InvarianceTest | DirectionalTest,
    test_texts: Sequence[str],
    test_predicted: Sequence[str],
    *,
    seed: int,
) -> list[str]:
    """The texts a test may use, in the order it uses them: the file's, or the test rows in an
    order seeded by evaluate.seed and the test's name (tests do not all draw the same rows)."""
    if test.texts is not None:
        return list(test.texts)
    wanted = test.predicted_as
    if isinstance(test, DirectionalTest) and test.expect == "flip" and wanted is None:
        wanted = test.label
    rows = [i for i, p in enumerate(test_predicted) if wanted is None or p == wanted]
    random.Random(f"{seed}\x00{test.name}").shuffle(rows)
    return [str(test_texts[i]) for i in rows]


def _result(
    test: InvarianceTest | DirectionalTest | MftTest,
    verdicts: list[bool],
    failures: list[dict[str, Any]],
    *,
    skipped: int,
) -> BehaviouralResult:
    cases, passed = len(verdicts), sum(verdicts)
    return BehaviouralResult(
        name=test.name, type=test.type, cases=cases, passed=passed, skipped=skipped,
        pass_rate=passed / cases if cases else None, failures=failures[:MAX_FAILURES],
    )  # fmt: skip


def _not_run(
    test: InvarianceTest | DirectionalTest | MftTest, absent: list[str]
) -> BehaviouralResult:
    return BehaviouralResult(
        name=test.name, type=test.type, cases=0, passed=0, skipped=0, pass_rate=None,
        failures=[], not_run=f"names label(s) {', '.join(absent)}, which the model does not predict",
    )  # fmt: skip


def _run_invariance(
    test: InvarianceTest, pool: list[str], predict: Predict, *, seed: int
) -> BehaviouralResult:
    """Pass: the prediction does not change. A text the perturbation leaves unchanged (no name
    to swap) is no case; from_test keeps drawing until it has N cases or runs out of rows."""
    limit = test.from_test or len(pool)
    pairs: list[tuple[str, str]] = []
    skipped = 0
    for text in pool:
        if len(pairs) == limit:
            break
        changed = perturb(test, text, seed=seed)
        if changed == text:
            skipped += 1
        else:
            pairs.append((text, changed))
    before, _, after, _ = _predict_pairs(predict, pairs)
    verdicts = [a == b for a, b in zip(before, after, strict=True)]
    failures = [
        {"original": o, "perturbed": c, "predicted_original": a, "predicted_perturbed": b}
        for (o, c), a, b, ok in zip(pairs, before, after, verdicts, strict=True)
        if not ok
    ]
    return _result(test, verdicts, failures, skipped=skipped)


def _predict_pairs(
    predict: Predict, pairs: list[tuple[str, str]]
) -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    """Predictions of the originals and of the changed texts, in one batch."""
    if not pairs:
        return [], np.zeros((0, 0)), [], np.zeros((0, 0))
    predicted, proba = predict([a for a, _ in pairs] + [b for _, b in pairs])
    n = len(pairs)
    return list(predicted[:n]), proba[:n], list(predicted[n:]), proba[n:]


def _run_directional(
    test: DirectionalTest, pool: list[str], predict: Predict, *, labels: Sequence[str]
) -> BehaviouralResult:
    """Pass: the label's probability moves the expected way (strictly), or for flip, a text
    predicted as the label is not any more. Under flip, texts not predicted as the label
    cannot flip away from it: they are skipped, not failed."""
    limit = test.from_test or len(pool)
    pairs = [(text, transform(test, text)) for text in pool[:limit]]
    before, p_before, after, p_after = _predict_pairs(predict, pairs)
    column = list(labels).index(test.label)
    verdicts, failures, skipped = [], [], 0
    for i, (original, changed) in enumerate(pairs):
        if test.expect == "flip" and before[i] != test.label:
            skipped += 1
            continue
        a, b = float(p_before[i, column]), float(p_after[i, column])
        ok = {"increase": b > a, "decrease": b < a, "flip": after[i] != test.label}[test.expect]
        verdicts.append(ok)
        if not ok:
            failures.append({
                "original": original, "perturbed": changed,
                "predicted_original": before[i], "predicted_perturbed": after[i],
                f"p_{test.label}_original": a, f"p_{test.label}_perturbed": b,
            })  # fmt: skip
    return _result(test, verdicts, failures, skipped=skipped)


def _run_mft(test: MftTest, predict: Predict) -> BehaviouralResult:
    """Pass: the canonical text gets its expected label."""
    predicted, proba = predict([e.text for e in test.examples])
    verdicts = [p == e.label for p, e in zip(predicted, test.examples, strict=True)]
    failures = [
        {"text": e.text, "expected": e.label, "predicted": p, "confidence": float(proba[i].max())}
        for i, (e, p, ok) in enumerate(zip(test.examples, predicted, verdicts, strict=True))
        if not ok
    ]
    return _result(test, verdicts, failures, skipped=0)
