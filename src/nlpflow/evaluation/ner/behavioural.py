"""Behavioural tests of a named-entity model (CheckList style, as classification's), from YAML:

    tests:
      - name: people_and_cities            # mft: the entities each sentence must get
        type: mft
        examples:
          - text: "Ship it to Alice in Berlin"
            entities: [{text: Alice, label: person}, {text: Berlin, label: city}]
          - {text: "Thanks a lot", entities: []}
      - name: swap_people                  # invariance: another name of the same type
        type: invariance
        perturbation: swap
        swap: {person: [Maria, Kenji, Priya]}
        from_test: 50                      # or texts: [...] or examples: [...] as in mft
      - {name: lowercase, type: invariance, perturbation: casing, casing: lower, from_test: 50}
      - {name: typos_in_entities, type: invariance, perturbation: typos, within: entities,
         from_test: 50}

How a case passes (entities are predicted on the raw text as the served model does, tokenised
by spaCy's blank English tokenizer: `entities_of`):
- mft: the predicted (text, label) pairs equal the expected ones, counted with repeats, so a
  missing, mistyped or extra entity fails; `allow_extra: true` lets extra entities pass.
- invariance: the model's entities on the perturbed text equal its entities on the original,
  each moved to where the text moved it. swap replaces every entity whose type has a list (the
  test split's gold entities for from_test, the listed ones for examples, the predicted ones
  for texts) by a seeded pick of another name, in the original's case (all lower or upper kept):
  an entity predicted at the swapped span must come back at the new span with the same type,
  and nothing else may change. casing and typos (adjacent letter swaps inside words of four or
  more letters, nlpflow.evaluation.perturbations.add_typos) keep offsets: every entity must be
  found again with its type, and none added. `within: entities | context` changes only the
  entities or only the rest. from_test draws test sentences holding an entity the test applies
  to, in an order seeded by evaluate.seed and the test's name, until it has N cases.
  A text is a case only when the model found in the original what the case tests (an entity at
  a swapped span; for within: entities, an entity the perturbation changed; else any entity):
  otherwise a model finding nothing would pass. It is skipped, not a case, as is a text the
  perturbation leaves unchanged or whose prediction cuts through a swapped entity.

Results have classification's shape (BehaviouralReport: behavioural.json, the card, MLflow's
behavioural/<test> and the gate's min_behavioural_pass_rate).
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from nlpflow.evaluation.behavioural import is_sample
from nlpflow.evaluation.behavioural_run import MAX_FAILURES
from nlpflow.evaluation.behavioural_suite import (
    BehaviouralReport,
    BehaviouralResult,
)
from nlpflow.evaluation.ner.behavioural_suite import (
    InvarianceTest,
    MftTest,
    NerSuite,
    check_types,
    load_suite,
    locate,
)
from nlpflow.evaluation.ner.forms import Records, entities_of
from nlpflow.evaluation.perturbations import add_typos

Predict = Callable[[list[str]], list[Records]]
Edit = tuple[int, int, str]  # (start, end) of the original text replaced by a new text


def model_types(labels: Sequence[str]) -> list[str]:
    """The entity types of BIO tags."""
    return sorted({tag[2:] for tag in labels if tag[:2] in ("B-", "I-")})


def behavioural_json(
    path: Path | None, model: Any, *, texts: list[str], gold: list[Records], seed: int
) -> dict[str, Any]:
    """behavioural.json's content for evaluate: `texts` are the test split's raw texts and
    `gold` their entities (what from_test draws from)."""
    if path is None:
        return {"pass_rate": None, "cases": 0, "tests": []}
    if path.is_file() and is_sample(path):
        # params' default file is classification's sample: like its tests naming absent labels
        # on other data, it runs none here, and says so
        warning = (
            f"{path} is the text-classification sample's behavioural file: its tests do not "
            "apply to entities, so none ran. Point evaluate.behavioural at an entity suite "
            "(configs/behavioural/ner_sample.yaml shows the format) or set it to null."
        )
        logging.getLogger("nlpflow.evaluate").warning(warning)
        return {"pass_rate": None, "cases": 0, "tests": [], "warning": warning}
    suite = load_suite(path)
    check_types(suite, model_types(model.labels), path=path)
    report = run_suite(suite, lambda batch: entities_of(model, batch), texts=texts, gold=gold,
                       seed=seed)  # fmt: skip
    return report.model_dump()


def run_suite(
    suite: NerSuite, predict: Predict, *, texts: Sequence[str], gold: Sequence[Records],
    seed: int,
) -> BehaviouralReport:  # fmt: skip
    results = [
        _run_mft(test, predict)
        if isinstance(test, MftTest)
        else _run_invariance(test, predict, texts=texts, gold=gold, seed=seed)
        for test in suite.tests
    ]
    cases, passed = sum(r.cases for r in results), sum(r.passed for r in results)
    return BehaviouralReport(
        pass_rate=passed / cases if cases else None, cases=cases, tests=results
    )


def _result(
    test: MftTest | InvarianceTest, verdicts: list[bool], failures: list[dict[str, Any]], *,
    skipped: int,
) -> BehaviouralResult:  # fmt: skip
    cases, passed = len(verdicts), sum(verdicts)
    return BehaviouralResult(
        name=test.name, type=test.type, cases=cases, passed=passed, skipped=skipped,
        pass_rate=passed / cases if cases else None, failures=failures[:MAX_FAILURES],
    )  # fmt: skip


def _pairs(records: Records) -> list[list[str]]:
    return [[str(r["text"]), str(r["label"])] for r in records]


def _run_mft(test: MftTest, predict: Predict) -> BehaviouralResult:
    predicted = predict([x.text for x in test.examples])
    verdicts, failures = [], []
    for example, found in zip(test.examples, predicted, strict=True):
        want = Counter((e.text, e.label) for e in example.entities)
        got = Counter((str(r["text"]), str(r["label"])) for r in found)
        missing, extra = want - got, got - want
        ok = not missing and (test.allow_extra or not extra)
        verdicts.append(ok)
        if not ok:
            failures.append({
                "text": example.text, "expected": [[t, k] for t, k in want.elements()],
                "predicted": _pairs(found), "missing": [[t, k] for t, k in missing.elements()],
                "extra": [[t, k] for t, k in extra.elements()],
            })  # fmt: skip
    return _result(test, verdicts, failures, skipped=0)


def _run_invariance(
    test: InvarianceTest, predict: Predict, *, texts: Sequence[str], gold: Sequence[Records],
    seed: int,
) -> BehaviouralResult:  # fmt: skip
    """Perturb and predict in batches until the test has from_test cases (or every text)."""
    limit = test.from_test or float("inf")
    sources = _sources(test, predict, texts=texts, gold=gold, seed=seed)
    verdicts: list[bool] = []
    failures: list[dict[str, Any]] = []
    skipped = 0
    while len(verdicts) < limit:
        batch: list[tuple[str, str, list[Edit]]] = []
        for text, entities in sources:
            changed, edits = perturb(test, text, entities, seed=seed)
            if changed == text:
                skipped += 1
                continue
            batch.append((text, changed, edits))
            if len(batch) >= limit - len(verdicts):
                break
        if not batch:
            break
        predicted = predict([o for o, _, _ in batch] + [c for _, c, _ in batch])
        for (original, changed, edits), before, after in zip(
            batch, predicted[: len(batch)], predicted[len(batch) :], strict=True
        ):
            expected = moved(before, edits)
            if expected is None or not _tested(test, before, edits, original, changed):
                skipped += 1
                continue
            want, got = set(expected), {(r["start"], r["end"], r["label"]) for r in after}
            verdicts.append(want == got)
            if want != got:
                failures.append({
                    "original": original, "perturbed": changed,
                    "predicted_original": _pairs(before), "predicted_perturbed": _pairs(after),
                    "lost": [[changed[s:e], k] for s, e, k in sorted(want - got)],
                    "added": [[changed[s:e], k] for s, e, k in sorted(got - want)],
                })  # fmt: skip
    return _result(test, verdicts, failures, skipped=skipped)


def _tested(
    test: InvarianceTest, before: Records, edits: list[Edit], original: str, changed: str
) -> bool:
    """Whether the model found, in the original, something the case tests: an entity at a
    swapped span, an entity with a changed letter (within: entities), or any entity. Without
    one, "unchanged" would pass a model that finds nothing."""
    spans = [(int(r["start"]), int(r["end"])) for r in before]
    if test.perturbation == "swap":
        return any((a, b) in spans for a, b, _ in edits)
    if test.within == "entities":
        return any(original[s:e] != changed[s:e] for s, e in spans)
    return bool(spans)


def _applies(test: InvarianceTest, entities: Records) -> bool:
    swap = test.swap or {}
    return any(r["label"] in swap for r in entities) if swap else bool(entities)


def _sources(
    test: InvarianceTest, predict: Predict, *, texts: Sequence[str], gold: Sequence[Records],
    seed: int,
) -> Iterator[tuple[str, Records]]:  # fmt: skip
    """(text, its entities) in the order the test uses them."""
    if test.examples is not None:
        yield from ((x.text, locate(x)) for x in test.examples)
    elif test.texts is not None:
        yield from zip(test.texts, predict(list(test.texts)), strict=True)
    else:
        rows = [i for i, entities in enumerate(gold) if _applies(test, entities)]
        random.Random(f"{seed}\x00{test.name}").shuffle(rows)
        yield from ((texts[i], gold[i]) for i in rows)


def perturb(
    test: InvarianceTest, text: str, entities: Records, *, seed: int
) -> tuple[str, list[Edit]]:
    """The perturbed text and, for swap, the edits that made it (casing and typos keep every
    offset)."""
    if test.perturbation == "swap":
        return swap_entities(text, entities, test.swap or {}, seed=seed, salt=test.name)
    regions = _regions(text, entities, test.within)
    if test.perturbation == "casing":
        return recase(text, regions, test.casing), []
    return typos_within(text, regions, seed=seed, swaps=test.typos), []


def swap_entities(
    text: str, entities: Records, names: dict[str, list[str]], *, seed: int, salt: str = ""
) -> tuple[str, list[Edit]]:
    """Each entity of a type in `names` replaced by another of its names (never itself), in its
    case when it is all lower or all upper case; seeded by the seed, `salt` and the text."""
    rng = random.Random(f"{seed}\x00{salt}\x00{text}")
    edits: list[Edit] = []
    for record in sorted(entities, key=lambda r: r["start"]):
        start, end = int(record["start"]), int(record["end"])
        old = text[start:end]
        choices = [n for n in names.get(str(record["label"]), []) if n.lower() != old.lower()]
        if not choices or (edits and start < edits[-1][1]):  # nothing else, or overlapping
            continue
        new = rng.choice(choices)
        if old.islower():
            new = new.lower()
        elif old.isupper() and len(old) > 1:  # "I" alone is not shouting
            new = new.upper()
        edits.append((start, end, new))
    pieces, at = [], 0
    for start, end, new in edits:
        pieces += [text[at:start], new]
        at = end
    return "".join(pieces) + text[at:], edits


def moved(records: Records, edits: list[Edit]) -> list[tuple[int, int, str]] | None:
    """(start, end, label) of each entity at its place after `edits`; None when one starts or
    ends inside a replaced span (the model cut through it: there is no place to expect it)."""
    out = []
    for r in records:
        start, end = int(r["start"]), int(r["end"])
        if any(a < start < b or a < end < b for a, b, _ in edits):
            return None
        shift_start = sum(len(new) - (b - a) for a, b, new in edits if b <= start)
        shift_end = sum(len(new) - (b - a) for a, b, new in edits if b <= end)
        out.append((start + shift_start, end + shift_end, str(r["label"])))
    return out


def _regions(text: str, entities: Records, within: str) -> list[tuple[int, int]]:
    spans = sorted((int(r["start"]), int(r["end"])) for r in entities)
    if within == "text":
        return [(0, len(text))]
    if within == "entities":
        return spans
    out, at = [], 0
    for start, end in spans:
        out.append((at, start))
        at = max(at, end)
    return [*out, (at, len(text))]


def recase(text: str, regions: list[tuple[int, int]], casing: str) -> str:
    """`regions` of the text in lower, upper or title case, each character keeping its place
    (one whose case change is longer, like ß in upper case, is left as it is)."""
    chars = list(text)
    for start, end in regions:
        changed = getattr(text[start:end], casing)()
        if len(changed) == end - start:
            chars[start:end] = changed
            continue
        for i in range(start, end):  # title case falls back to lower/upper per word start
            one = chars[i].upper() if casing == "upper" or (
                casing == "title" and (i == 0 or not text[i - 1].isalpha())
            ) else chars[i].lower()  # fmt: skip
            chars[i] = one if len(one) == 1 else chars[i]
    return "".join(chars)


def typos_within(text: str, regions: list[tuple[int, int]], *, seed: int, swaps: int) -> str:
    """add_typos in `regions` only: the rest is masked with `_`, which ends a word for it."""
    inside = [False] * len(text)
    for start, end in regions:
        inside[start:end] = [True] * (end - start)
    masked = "".join(c if inside[i] else "_" for i, c in enumerate(text))
    changed = add_typos(masked, seed=seed, swaps=swaps)
    return "".join(changed[i] if inside[i] else c for i, c in enumerate(text))
