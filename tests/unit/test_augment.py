"""EDA augmentation: each operation does what it says, seeded draws, counts and cap, and the
train stage augments the train split only."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pydantic import ValidationError

import nlpflow.training.train as train_module
from nlpflow.config.params import AugmentParams, PreprocessParams, TfidfParams, TrainParams
from nlpflow.data.augment import (
    augment_texts,
    load_synonyms,
    load_synonyms_file,
    random_deletion,
    random_insertion,
    random_swap,
    synonym_replacement,
)
from nlpflow.errors import ModelError

WORDS = [
    "the",
    "plot",
    "is",
    "slow",
    "but",
    "the",
    "acting",
    "is",
    "warm",
    "and",
    "the",
    "ending",
    "feels",
    "earned",
]
SYNONYMS = {"slow": ("sluggish", "plodding"), "warm": ("tender",), "earned": ("deserved",)}


def _is_subsequence(short: list[str], long: list[str]) -> bool:
    rest = iter(long)
    return all(word in rest for word in short)


@pytest.mark.parametrize("seed", range(5))
def test_swap_keeps_the_multiset_of_words_and_changes_the_order(seed: int) -> None:
    out = random_swap(WORDS, 3, random.Random(seed))
    assert Counter(out) == Counter(WORDS)
    assert out != WORDS


@pytest.mark.parametrize("seed", range(5))
def test_deletion_only_removes_words(seed: int) -> None:
    out = random_deletion(WORDS, 3, random.Random(seed))
    assert len(out) == len(WORDS) - 3
    assert _is_subsequence(out, WORDS)


def test_deletion_of_every_word_keeps_one_and_a_single_word_stays() -> None:
    out = random_deletion(WORDS, 100, random.Random(0))
    assert len(out) == 1 and out[0] in WORDS
    assert random_deletion(["alone"], 1, random.Random(0)) == ["alone"]


@pytest.mark.parametrize("seed", range(5))
def test_insertion_without_a_resource_adds_only_words_of_the_text(seed: int) -> None:
    out = random_insertion(WORDS, 3, random.Random(seed))
    assert len(out) == len(WORDS) + 3
    assert _is_subsequence(WORDS, out)
    assert set(out) == set(WORDS)


@pytest.mark.parametrize("seed", range(5))
def test_insertion_with_a_resource_adds_only_synonyms_of_words_of_the_text(seed: int) -> None:
    out = random_insertion(WORDS, 4, random.Random(seed), SYNONYMS)
    added = Counter(out) - Counter(WORDS)
    assert sum(added.values()) == 4
    assert _is_subsequence(WORDS, out)
    assert set(added) <= {s for synonyms in SYNONYMS.values() for s in synonyms}


def test_insertion_with_a_resource_and_no_known_word_leaves_the_text() -> None:
    assert random_insertion(["a", "b"], 2, random.Random(0), SYNONYMS) == ["a", "b"]


@pytest.mark.parametrize("seed", range(5))
def test_synonym_replacement_uses_only_listed_synonyms(seed: int) -> None:
    out = synonym_replacement(WORDS, 2, random.Random(seed), SYNONYMS)
    assert len(out) == len(WORDS)
    changed = [(old, new) for old, new in zip(WORDS, out, strict=True) if old != new]
    assert len(changed) == 2
    assert all(new in SYNONYMS[old] for old, new in changed)


def test_synonym_replacement_replaces_at_most_the_words_that_have_synonyms() -> None:
    out = synonym_replacement(WORDS, 10, random.Random(0), SYNONYMS)
    assert [w for w in out if w not in WORDS] and len(out) == len(WORDS)
    assert not {"slow", "warm", "earned"} & set(out)


def _data(rows: int = 20) -> tuple[list[str], list[str]]:
    # Each label has its own vocabulary, so an augmented row shows which label it came from.
    texts = [
        " ".join(f"{'pos' if i % 2 else 'neg'}{(i + k) % 12}" for k in range(8))
        for i in range(rows)
    ]
    return texts, ["pos" if i % 2 else "neg" for i in range(rows)]


def _params(**kwargs: object) -> AugmentParams:
    return AugmentParams.model_validate({"enabled": True, **kwargs})


def test_same_seed_same_rows_other_seed_other_rows() -> None:
    texts, labels = _data()
    params = _params(ops=["swap", "delete", "insert"], n_aug=3)
    first = augment_texts(texts, labels, params=params, seed=7)
    assert first == augment_texts(texts, labels, params=params, seed=7)
    assert first != augment_texts(texts, labels, params=params, seed=8)


def test_labels_are_copied_from_the_original_row() -> None:
    texts, labels = _data()
    new_texts, new_labels = augment_texts(texts, labels, params=_params(n_aug=4), seed=1)
    assert new_texts
    for text, label in zip(new_texts, new_labels, strict=True):
        assert {w[:3] for w in text.split()} == {label}


def test_n_aug_new_rows_per_original_and_the_cap() -> None:
    texts, labels = _data(20)
    new_texts, _ = augment_texts(texts, labels, params=_params(ops=["swap"], n_aug=3), seed=0)
    assert len(new_texts) == 60
    capped, capped_labels = augment_texts(
        texts, labels, params=_params(ops=["swap"], n_aug=3, max_new_rows=7), seed=0
    )
    assert len(capped) == len(capped_labels) == 7
    # The cap is drawn over all rows, not taken from the first row's copies.
    assert len({frozenset(text.split()) for text in capped}) > 1


def test_copies_equal_to_their_original_are_dropped() -> None:
    # A one-word text cannot be swapped, and deletion keeps its last word.
    params = _params(ops=["swap", "delete"], n_aug=5)
    assert augment_texts(["alone"], ["x"], params=params, seed=0) == ([], [])
    new_texts, _ = augment_texts(["alone", "two words"], ["x", "y"], params=params, seed=0)
    assert new_texts and set(new_texts) <= {"words two", "two", "words"}


def test_synonym_files_tsv_and_json_load_the_same_mapping(tmp_path: Path) -> None:
    tsv = tmp_path / "syn.tsv"
    tsv.write_text("Slow\tsluggish\tplodding\nwarm\ttender\nwarm\ttender\nearned\tdeserved\n")
    js = tmp_path / "syn.json"
    js.write_text(json.dumps({k: list(v) for k, v in SYNONYMS.items()}))
    assert load_synonyms_file(tsv) == load_synonyms_file(js) == SYNONYMS
    with pytest.raises(ModelError, match="does not exist"):
        load_synonyms(str(tmp_path / "missing.tsv"))
    js.write_text(json.dumps({"slow": "sluggish"}))
    with pytest.raises(ModelError, match="list of synonyms"):
        load_synonyms_file(js)


def test_wordnet_synonyms_or_a_message_that_says_how_to_install_them() -> None:
    try:
        synonyms = load_synonyms("wordnet")
    except ModelError as exc:
        assert "pip install 'nlpflow[augment]'" in str(exc)
        return
    assert "dull" in synonyms["boring"] and "film" in synonyms["movie"]
    assert "the" not in synonyms and "a" not in synonyms  # stop words are never anchors


def test_params_refuse_synonym_replacement_without_a_resource() -> None:
    with pytest.raises(ValidationError, match="synonyms is null"):
        AugmentParams(ops=["synonym"])
    with pytest.raises(ValidationError, match="once"):
        AugmentParams(ops=["swap", "swap"])
    with pytest.raises(ValidationError):
        AugmentParams(alpha=0.9)


@pytest.mark.parametrize("enabled", [True, False])
def test_train_augments_the_train_split_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, enabled: bool
) -> None:
    src = tmp_path / "processed"
    src.mkdir()
    texts, labels = _data(20)
    frames = {
        "train": pd.DataFrame({"text": texts, "label": labels}),
        "validation": pd.DataFrame(
            {"text": ["pos1 pos2 pos3", "neg4 neg5 neg6"], "label": ["pos", "neg"]}
        ),
        "test": pd.DataFrame({"text": ["pos7 pos8", "neg9 neg10"], "label": ["pos", "neg"]}),
    }
    for name, frame in frames.items():
        frame.to_parquet(src / f"{name}.parquet", index=False)
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    seen: dict[str, tuple[list[str], list[str]]] = {}
    real_fit = train_module.fit

    Split = tuple[list[str], list[str]]

    def spy(train: Split, validation: Split, **kwargs: Any) -> Any:  # the real fit, inputs kept
        seen["train"], seen["validation"] = train, validation
        return real_fit(train, validation, **kwargs)

    monkeypatch.setattr(train_module, "fit", spy)
    params = TrainParams(
        family="tfidf_logreg",
        tfidf=TfidfParams(max_iter=200),
        augment=AugmentParams(enabled=enabled, n_aug=2, ops=["swap", "delete", "insert"]),
    )
    report = train_module.train(
        src=src, dst=tmp_path / "model", history_path=tmp_path / "history.csv",
        params=params, preprocess=PreprocessParams(),
    )  # fmt: skip
    assert seen["validation"] == (frames["validation"]["text"].tolist(), ["pos", "neg"])
    train_texts, train_labels = seen["train"]
    assert (train_texts[:20], train_labels[:20]) == (texts, labels)
    assert report.augmented_rows == len(train_texts) - 20
    if enabled:  # 2 copies of 20 rows, less the rare swap of two equal words
        assert 36 <= report.augmented_rows <= 40
        assert {w[:3] for w in " ".join(train_texts[20:]).split()} == {"pos", "neg"}
    else:
        assert report.augmented_rows == 0
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before
