"""TextPreprocessor switches, one at a time, and the preprocess stage on small Parquet splits."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from nlpflow.config.params import PreprocessParams
from nlpflow.data.preprocess import TextPreprocessor, preprocess, strip_accents
from nlpflow.errors import StageInputError

# Every switch off: only the tokenizer runs, so the text must come back unchanged.
ALL_OFF = {"remove_urls": False, "remove_emails": False}


def clean(text: str, **switches: object) -> str:
    params = PreprocessParams(**{**ALL_OFF, **switches})
    return TextPreprocessor(params).transform([text])[0]


def test_defaults_drop_urls_and_emails_and_keep_everything_else() -> None:
    cleaner = TextPreprocessor(PreprocessParams())
    out = cleaner.transform(
        [
            "Hello, world",
            "Mail bob@example.com or see https://example.com/help now.",
            "Order #123 arrived LATE!",
        ]
    )
    assert out == ["Hello, world", "Mail or see now.", "Order #123 arrived LATE!"]


def test_all_switches_off_returns_text_with_its_spacing() -> None:
    assert clean("Hello, world") == "Hello, world"
    assert clean("Café, 3 mice (see https://x.org)!") == "Café, 3 mice (see https://x.org)!"


def test_runs_of_whitespace_collapse_to_one_space() -> None:
    assert clean("  a  b\n\nc\t") == "a b c"


def test_lowercase() -> None:
    assert clean("Hello World, ÉTÉ", lowercase=True) == "hello world, été"
    assert clean("Hello World") == "Hello World"


def test_lemmatize() -> None:
    out = clean("mice were running", lemmatize=True)
    assert out == "mouse be run"
    assert "mouse" in out.split()
    assert "run" in out.split()
    assert clean("mice were running") == "mice were running"


def test_lemmatize_with_lowercase_lemmatizes_capitalised_words() -> None:
    assert clean("Mice were running", lemmatize=True, lowercase=True) == "mouse be run"


def test_remove_stopwords() -> None:
    assert clean("The cat is on the mat", remove_stopwords=True) == "cat mat"
    assert clean("The cat is on the mat") == "The cat is on the mat"


def test_remove_punctuation() -> None:
    text = "Hello, world! How are you?"
    assert clean(text, remove_punctuation=True) == "Hello world How are you"
    assert clean(text) == text


def test_remove_numbers() -> None:
    text = "I have 3 cats and 10,000 dogs"
    assert clean(text, remove_numbers=True) == "I have cats and dogs"
    assert clean(text) == text


def test_remove_urls_only() -> None:
    text = "see https://example.com/x or mail bob@example.com"
    assert clean(text, remove_urls=True) == "see or mail bob@example.com"
    assert clean(text) == text


def test_remove_emails_only() -> None:
    text = "see https://example.com/x or mail bob@example.com"
    assert clean(text, remove_emails=True) == "see https://example.com/x or mail"


def test_strip_accents() -> None:
    assert clean("café naïve", strip_accents=True) == "cafe naive"
    assert clean("Crème BRÛLÉE", strip_accents=True) == "Creme BRULEE"
    assert clean("café naïve") == "café naïve"
    assert strip_accents("Ångström") == "Angstrom"


def test_switches_combine() -> None:
    out = clean(
        "The 2 Cafés were CLOSED!", lowercase=True, remove_stopwords=True,
        remove_numbers=True, remove_punctuation=True, strip_accents=True,
    )  # fmt: skip
    assert out == "cafes closed"


def test_empty_text_stays_empty() -> None:
    assert TextPreprocessor(PreprocessParams()).transform(["", "   "]) == ["", ""]


def test_batch_larger_than_batch_size_keeps_length_and_order() -> None:
    texts = [f"Ticket {i}: see https://t.example/{i}" for i in range(11)]
    out = TextPreprocessor(PreprocessParams(batch_size=3)).transform(texts)
    assert len(out) == 11
    assert out == [f"Ticket {i}: see" for i in range(11)]


# ---------------------------------------------------------------- the stage


def _write_splits(folder: Path, splits: dict[str, list[tuple[str, str]]]) -> None:
    folder.mkdir(parents=True)
    for split, rows in splits.items():
        pd.DataFrame(
            {
                "text": [t for t, _ in rows],
                "label": [label for _, label in rows],
                "source_row": list(range(len(rows))),
            }
        ).to_parquet(folder / f"{split}.parquet", index=False)


SPLITS = {
    "train": [
        ("Refund my ORDER, please!", "billing"),
        ("Where is parcel 42? https://track.example/42", "shipping"),
        ("Charged twice, mail me at a@b.example", "billing"),
    ],
    "validation": [("Late DELIVERY again.", "shipping")],
    "test": [("Invoice wrong!", "billing"), ("!!!", "shipping")],
}


def test_preprocess_stage_writes_clean_text_and_keeps_raw_text(tmp_path: Path) -> None:
    src, dst = tmp_path / "gathered", tmp_path / "preprocessed"
    _write_splits(src, SPLITS)
    params = PreprocessParams(lowercase=True, remove_punctuation=True)
    report = preprocess(src=src, dst=dst, params=params)

    assert report.rows == {"train": 3, "validation": 1, "test": 2}
    assert report.emptied == 1  # "!!!" is all punctuation
    assert report.texts_per_second > 0
    assert sorted(p.name for p in dst.iterdir()) == [
        "test.parquet", "train.parquet", "validation.parquet",
    ]  # fmt: skip

    train = pd.read_parquet(dst / "train.parquet")
    assert train["raw_text"].tolist() == [t for t, _ in SPLITS["train"]]
    assert train["text"].tolist() == [
        "refund my order please",
        "where is parcel 42",
        "charged twice mail me at",
    ]
    assert train["label"].tolist() == ["billing", "shipping", "billing"]
    assert train["source_row"].tolist() == [0, 1, 2]

    validation = pd.read_parquet(dst / "validation.parquet")
    assert validation["text"].tolist() == ["late delivery again"]
    assert validation["raw_text"].tolist() == ["Late DELIVERY again."]

    test = pd.read_parquet(dst / "test.parquet")
    assert test["text"].tolist() == ["invoice wrong", ""]
    assert test["raw_text"].tolist() == ["Invoice wrong!", "!!!"]
    # the input folder is left alone
    assert pd.read_parquet(src / "test.parquet")["text"].tolist() == ["Invoice wrong!", "!!!"]


def test_preprocess_stage_without_input_raises_stage_input_error(tmp_path: Path) -> None:
    src = tmp_path / "gathered"
    _write_splits(src, {"train": SPLITS["train"], "validation": SPLITS["validation"]})
    with pytest.raises(StageInputError) as info:
        preprocess(src=src, dst=tmp_path / "out", params=PreprocessParams())
    assert f"{src / 'test.parquet'} is missing" in str(info.value)
    assert "run the earlier stages first" in str(info.value)
    assert not (tmp_path / "out").exists()


def test_snowball_stemming_after_lemmas() -> None:
    from nlpflow.config.params import PreprocessParams
    from nlpflow.data.preprocess import TextPreprocessor

    stem = TextPreprocessor(PreprocessParams(stem=True, lowercase=True))
    assert stem.transform(["Running runs connection connected"]) == ["run run connect connect"]
    both = TextPreprocessor(PreprocessParams(stem=True, lemmatize=True, lowercase=True))
    assert both.transform(["the mice were running"]) == ["the mous be run"]


def test_max_tokens_counts_kept_tokens_only() -> None:
    from nlpflow.config.params import PreprocessParams
    from nlpflow.data.preprocess import TextPreprocessor

    cleaner = TextPreprocessor(PreprocessParams(max_tokens=3, remove_punctuation=True))
    assert cleaner.transform(["Hi , , there my friend"]) == ["Hi there my"]
    assert cleaner.transform(["short"]) == ["short"]


def test_stemming_an_unsupported_language_is_a_clear_error() -> None:
    from nlpflow.config.params import PreprocessParams
    from nlpflow.data.preprocess import TextPreprocessor
    from nlpflow.errors import ModelError

    with pytest.raises(ModelError, match=r"no Snowball stemmer for language .xx."):
        TextPreprocessor(PreprocessParams(stem=True, language="xx")).transform(["x"])


def test_cache_reuses_outputs_for_the_same_input_params_and_code(tmp_path: Path) -> None:
    from nlpflow.config.params import PreprocessParams
    from nlpflow.data.preprocess import preprocess

    src = tmp_path / "gathered"
    src.mkdir()
    for split in ("train", "validation", "test"):
        texts = [f"The Mice were running {i} https://x.io" for i in range(5)]
        pd.DataFrame({"text": texts, "label": ["a"] * 5, "source_row": range(5)}).to_parquet(
            src / f"{split}.parquet"
        )
    cache = tmp_path / "cache"
    params = PreprocessParams(lowercase=True, lemmatize=True)
    first = preprocess(src=src, dst=tmp_path / "a", params=params, cache=cache)
    second = preprocess(src=src, dst=tmp_path / "b", params=params, cache=cache)
    assert (first.cached, second.cached) == (False, True)
    assert second.rows == first.rows
    for split in ("train", "validation", "test"):
        assert (tmp_path / "a" / f"{split}.parquet").read_bytes() == (
            tmp_path / "b" / f"{split}.parquet"
        ).read_bytes()
    assert pd.read_parquet(tmp_path / "b" / "train.parquet")["text"][0] == "the mouse be run 0"
    # other params, or other input, miss the cache
    assert (
        preprocess(src=src, dst=tmp_path / "c", params=PreprocessParams(), cache=cache).cached
        is False
    )
    pd.DataFrame({"text": ["new"], "label": ["a"], "source_row": [0]}).to_parquet(
        src / "test.parquet"
    )
    assert preprocess(src=src, dst=tmp_path / "d", params=params, cache=cache).cached is False
    assert len([p for p in cache.iterdir() if not p.name.startswith(".")]) == 3
