"""Behavioural tests: perturbations, the YAML schema and its errors, and runs with a real model
(tfidf_logreg trained on the bundled sample in the test)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from nlpflow.config.params import TrainParams
from nlpflow.errors import ParamsError
from nlpflow.evaluation.behavioural import (
    FIRST_NAMES,
    BehaviouralSuite,
    add_negation,
    add_typos,
    check_labels,
    load_behavioural,
    run_behavioural,
    swap_names,
    toggle_punctuation,
)
from nlpflow.training.families import predict_labels
from nlpflow.training.train import fit
from tests.conftest import REPO, SAMPLE

TEXTS = [
    "My parcel never arrived and the tracking page shows nothing.",
    "Please refund the duplicate payment on my credit card.",
    "The dashboard crashes whenever I export a report.",
]

# --- perturbations ----------------------------------------------------------------------------


@pytest.mark.parametrize("text", TEXTS)
def test_typos_swap_two_inner_letters_deterministically(text: str) -> None:
    typo = add_typos(text, seed=13)
    assert typo != text
    assert typo == add_typos(text, seed=13)  # same seed, same typo
    assert Counter(typo) == Counter(text)  # letters moved, none added or lost
    changed = [i for i, (a, b) in enumerate(zip(text, typo, strict=True)) if a != b]
    assert len(changed) == 2 and changed[1] == changed[0] + 1  # one adjacent swap
    assert text[changed[0] - 1].isalpha() and text[changed[1] + 1].isalpha()  # inside a word


def test_typos_depend_on_the_seed_and_count_the_swaps() -> None:
    text = TEXTS[0]
    assert len({add_typos(text, seed=s) for s in range(10)}) > 1
    two = add_typos(text, seed=13, swaps=2)
    assert sum(a != b for a, b in zip(text, two, strict=True)) == 4
    assert add_typos("a cat is ok", seed=13) == "a cat is ok"  # no word long enough


def test_person_names_are_swapped_for_other_known_names_in_the_same_case() -> None:
    text = "Priya asked Tom to call. Thanks, Priya"
    swapped = swap_names(text, seed=13)
    assert swapped == swap_names(text, seed=13)
    words = swapped.replace(",", "").replace(".", "").split()
    new_priya, new_tom = words[0], words[2]
    assert new_priya != "Priya" and new_tom != "Tom"
    assert {new_priya, new_tom} <= set(FIRST_NAMES)
    assert words[-1] == new_priya  # one name, one replacement throughout
    lower = swap_names("i loved what john did here", seed=13)
    assert lower != "i loved what john did here" and lower == lower.lower()


def test_words_that_are_not_listed_names_are_left_alone() -> None:
    text = "Will you mark the bill as paid? Thanks, Mark"  # word-names are not in the list
    assert swap_names(text, seed=13) == text


def test_punctuation_is_stripped_or_added() -> None:
    assert toggle_punctuation("The app crashes!!", seed=13) == "The app crashes"
    assert toggle_punctuation("a dull film .", seed=13) == "a dull film"  # MR's spacing
    added = toggle_punctuation("The app crashes", seed=13)
    assert added in ("The app crashes.", "The app crashes!")
    assert added == toggle_punctuation("The app crashes", seed=13)


@pytest.mark.parametrize(
    ("text", "negated"),
    [
        ("the film is fun", "the film is not fun"),
        ("it is n't fun but it was long", "it is n't fun but it was not long"),
        (
            "They can't ship it and they will charge me",
            "They can't ship it and they will not charge me",
        ),
        ("Great movie", "It is not true that great movie"),
        ("I loved it", "It is not true that I loved it"),
    ],
)
def test_add_negation(text: str, negated: str) -> None:
    assert add_negation(text) == negated


# --- the file ---------------------------------------------------------------------------------


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "behavioural.yaml"
    path.write_text(body)
    return path


def test_the_repository_files_are_valid() -> None:
    sample = load_behavioural(REPO / "behavioural.yaml")
    assert {t.type for t in sample.tests} == {"invariance", "directional", "mft"}
    check_labels(sample, ["account", "billing", "shipping", "technical"], path=Path("b.yaml"))
    mr = load_behavioural(REPO / "configs/behavioural/mr.yaml")
    check_labels(mr, ["neg", "pos"], path=Path("mr.yaml"))


def test_a_missing_file_is_an_error_that_names_it(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match=r"absent\.yaml does not exist.*behavioural: null"):
        load_behavioural(tmp_path / "absent.yaml")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("tests: [{name: t, type: invariance, perturbaton: typos, from_test: 3}]",
         r"tests\[0\] \(t\)\.perturbaton: unknown key"),
        ("tests: [{name: t, type: directional, append: x, label: a, expect: up, texts: [a]}]",
         r"tests\[0\] \(t\)\.expect: Input should be 'increase', 'decrease' or 'flip'"),
        ("tests: [{name: t, type: invariance, perturbation: typos, texts: [a], from_test: 2}]",
         r"tests\[0\] \(t\): give either texts or from_test"),
        ("tests: [{name: t, type: directional, append: x, prepend: y, label: a, expect: flip, "
         "from_test: 2}]", r"exactly one of transform \(add_negation\), append or prepend"),
        ("tests: [{name: t, type: mft, examples: [{text: hi}]}]",
         r"tests\[0\] \(t\)\.examples\[0\]\.label: Field required"),
        ("tests: [{name: t, type: fuzz}]", r"tests\[0\] \(t\)"),
        ("tests: [{name: t, type: mft, examples: [{text: a, label: b}]}, "
         "{name: t, type: mft, examples: [{text: a, label: b}]}]", r"repeated: t"),
        ("tests: [name: t", r"not valid YAML"),
        ("- just a list", r"expected a mapping with a `tests:` list"),
    ],
)  # fmt: skip
def test_a_malformed_file_names_the_file_and_the_key(
    tmp_path: Path, body: str, message: str
) -> None:
    path = _write(tmp_path, body)
    with pytest.raises(ParamsError) as caught:
        load_behavioural(path)
    assert str(path) in str(caught.value)
    assert caught.match(message)


def test_labels_the_model_does_not_know_are_an_error(tmp_path: Path) -> None:
    suite = BehaviouralSuite.model_validate(
        {"tests": [{"name": "t", "type": "mft", "examples": [{"text": "x", "label": "refunds"}]}]}
    )
    with pytest.raises(ParamsError, match=r"b\.yaml: test 't' names label\(s\) refunds.*billing"):
        check_labels(suite, ["billing"], path=Path("b.yaml"))


# --- runs with a real model -------------------------------------------------------------------


@pytest.fixture(scope="module")
def model():  # type: ignore[no-untyped-def]
    frame = pd.read_csv(SAMPLE)
    xy = (frame["text"].tolist(), frame["label"].tolist())
    labels = sorted(set(xy[1]))
    return fit(
        xy, (xy[0][:20], xy[1][:20]), labels=labels, params=TrainParams(family="tfidf_logreg")
    )


def _run(model, tests: list[dict], *, pool: list[str] | None = None):  # type: ignore[no-untyped-def]
    texts = pool or TEXTS
    predicted, _ = predict_labels(model, texts)
    return run_behavioural(
        BehaviouralSuite.model_validate({"tests": tests}),
        predict=lambda batch: predict_labels(model, batch), labels=model.labels,
        test_texts=texts, test_predicted=predicted, seed=13,
    )  # fmt: skip


def test_directional_increase_passes_and_decrease_fails_for_the_same_change(model) -> None:  # type: ignore[no-untyped-def]
    texts = [
        "Hello, I have a question.",
        "Can you help me please?",
        "Quick question about my order.",
    ]
    change = {"append": "I was charged twice for this and want a refund.", "label": "billing"}
    report = _run(model, [
        {"name": "up", "type": "directional", "expect": "increase", "texts": texts, **change},
        {"name": "down", "type": "directional", "expect": "decrease", "texts": texts, **change},
    ])  # fmt: skip
    up, down = report.tests
    assert (up.cases, up.passed, up.pass_rate) == (3, 3, 1.0)
    assert (down.cases, down.passed, down.pass_rate) == (3, 0, 0.0)
    assert len(down.failures) == 3
    failure = down.failures[0]
    assert failure["p_billing_perturbed"] > failure["p_billing_original"]
    assert failure["perturbed"] == f"{texts[0]} {change['append']}"
    assert report.pass_rate == pytest.approx(3 / 6) and report.cases == 6


def test_flip_counts_only_texts_predicted_as_the_label(model) -> None:  # type: ignore[no-untyped-def]
    shipping = "My parcel never arrived and tracking shows nothing."
    billing = "I was charged twice for my subscription, please refund me."
    assert predict_labels(model, [shipping, billing])[0] == ["shipping", "billing"]
    report = _run(model, [{
        "name": "flip", "type": "directional", "prepend": "My parcel is lost and never arrived.",
        "label": "shipping", "expect": "flip", "texts": [shipping, billing],
    }])  # fmt: skip
    (flip,) = report.tests
    # the billing text is not predicted shipping, so it cannot flip away from it: skipped
    assert (flip.cases, flip.skipped) == (1, 1)
    assert flip.passed == 0  # more shipping words keep a shipping text shipping


def test_mft_passes_right_labels_and_reports_wrong_ones(model) -> None:  # type: ignore[no-untyped-def]
    examples = [
        {"text": "My parcel never arrived.", "label": "shipping"},
        {"text": "I was charged twice on my card.", "label": "billing"},
        {"text": "I was charged twice on my card.", "label": "technical"},  # wrong on purpose
    ]
    report = _run(model, [{"name": "mft", "type": "mft", "examples": examples}])
    (mft,) = report.tests
    assert (mft.cases, mft.passed) == (3, 2)
    assert mft.pass_rate == pytest.approx(2 / 3)
    assert mft.failures == [{
        "text": "I was charged twice on my card.", "expected": "technical",
        "predicted": "billing", "confidence": pytest.approx(mft.failures[0]["confidence"]),
    }]  # fmt: skip


def test_invariance_counts_only_texts_the_perturbation_changes(model) -> None:  # type: ignore[no-untyped-def]
    report = _run(model, [
        {"name": "names", "type": "invariance", "perturbation": "person_names", "texts": TEXTS},
        {"name": "punct", "type": "invariance", "perturbation": "punctuation", "texts": TEXTS},
    ])  # fmt: skip
    names, punct = report.tests
    assert (names.cases, names.skipped, names.pass_rate) == (0, 3, None)  # no names in TEXTS
    assert (punct.cases, punct.passed) == (3, 3)
    assert report.pass_rate == 1.0 and report.summary()["tests"] == {"names": None, "punct": 1.0}


def test_from_test_draws_seeded_rows_of_the_wanted_prediction(model) -> None:  # type: ignore[no-untyped-def]
    pool = pd.read_csv(SAMPLE)["text"].tolist()[:120]
    test = {"name": "neg", "type": "directional", "transform": "add_negation",
            "label": "billing", "expect": "decrease", "from_test": 5, "predicted_as": "billing"}  # fmt: skip
    first, again = _run(model, [test], pool=pool), _run(model, [test], pool=pool)
    assert first == again  # same seed, same rows, same verdicts
    assert first.tests[0].cases == 5
    drawn = [f["original"] for f in first.tests[0].failures]
    assert all(p == "billing" for p in predict_labels(model, drawn)[0])
    typos = {"name": "typos", "type": "invariance", "perturbation": "typos", "from_test": 200}
    assert _run(model, [typos], pool=pool).tests[0].cases == 120  # at most the rows there are
