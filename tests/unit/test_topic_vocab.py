"""The topic families' vocabulary (nlpflow.training.families.topic_vocab): phrases joined as
gensim joins them, kept from JSON alone, words filtered by document frequency.

    .venv/bin/python -m pytest tests/unit/test_topic_vocab.py -q
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gensim.models.phrases import Phrases

from nlpflow.config.sections.topics import TopicsParams
from nlpflow.errors import ModelError
from nlpflow.training.families.topic_vocab import (
    VOCAB_FILE,
    TopicVocabulary,
    build_vocabulary,
    join_phrases,
    learn_phrases,
)

# "new york" and "ice cream" always together; "york" alone never; "new" also elsewhere
TEXTS = [
    "new york has ice cream shops",
    "ice cream in new york city",
    "a new shop sells ice cream",
    "new york new york ice cream ice cream",
    "the city of new york",
    "cream cheese and ice tea",
] * 3


def test_phrases_join_as_gensim_joins_them() -> None:
    docs = [text.split() for text in TEXTS]
    phrases = learn_phrases(docs, min_count=2, threshold=1.0)
    assert "new_york" in phrases and "ice_cream" in phrases
    # gensim's own FrozenPhrases (connector words off, as here) on every document
    frozen = Phrases(docs, min_count=2, threshold=1.0, delimiter="_").freeze()
    tricky = [["york", "new", "york", "new", "york"], ["ice", "ice", "cream", "cream"]]
    for doc in [*docs, *tricky]:
        assert join_phrases(doc, frozenset(phrases)) == frozen[doc]
    # a joined pair is not joined again: new_york then york, not new + york_new
    assert join_phrases(["new", "york", "york"], frozenset({"new_york", "york_york"})) == [
        "new_york",
        "york",
    ]


def test_vocabulary_keeps_words_by_document_frequency() -> None:
    texts = ["apple banana", "apple cherry", "apple banana durian", "elder"]
    # apple in 3/4 documents (> max_df 0.5: dropped), banana in 2, cherry durian elder in 1
    params = TopicsParams(min_df=2, max_df=0.5, phrases=False)
    assert build_vocabulary(texts, params).words == ("banana",)
    params = TopicsParams(min_df=1, max_df=1.0, phrases=False, max_features=2)
    # the 2 most frequent words overall: apple (3), banana (2)
    assert build_vocabulary(texts, params).words == ("apple", "banana")


def test_ignored_words_and_symbols_are_never_counted() -> None:
    texts = ["hello >>> refund = card", "hello `x` refund card", "hello e.g. 3d card"] * 2
    params = TopicsParams(
        min_df=1, max_df=1.0, phrases=False, ignore_words=["hello"], letters_only=True
    )
    # ">>>" and "=" hold no letter; "`x`", "e.g." and "3d" do; hello is the domain's filler
    assert build_vocabulary(texts, params).words == ("3d", "`x`", "card", "e.g.", "refund")
    kept = build_vocabulary(texts, params.model_copy(update={"letters_only": False})).words
    assert {">>>", "="} <= set(kept) and "hello" not in kept
    # a collocation counts when each of its parts has a letter
    joined = ["refund_card", ">>>_import", "new_york"] * 2
    words = build_vocabulary(joined, params.model_copy(update={"ignore_words": []})).words
    assert words == ("new_york", "refund_card")


def test_counts_use_phrases_and_the_kept_words_only(tmp_path: Path) -> None:
    vocab = TopicVocabulary(["ice_cream"], ["city", "ice_cream", "shop"])
    counts = vocab.count(["ice cream shop ice cream", "", "unknown words only", "city"])
    assert counts.toarray().tolist() == [[0, 2, 1], [0, 0, 0], [0, 0, 0], [1, 0, 0]]
    # analyze keeps every token (coherence windows need the real distances)
    assert vocab.analyze("an ice cream shop") == ["an", "ice_cream", "shop"]
    vocab.save(tmp_path)
    assert json.loads((tmp_path / VOCAB_FILE).read_text()) == {
        "phrases": ["ice_cream"],
        "words": ["city", "ice_cream", "shop"],
    }
    again = TopicVocabulary.load(tmp_path)
    assert (again.count(["ice cream shop ice cream"]) != counts[0]).nnz == 0


def test_reloaded_vocabulary_analyses_every_text_identically(tmp_path: Path) -> None:
    params = TopicsParams(min_df=2, max_df=0.9, phrase_min_count=2, phrase_threshold=1.0)
    vocab = build_vocabulary(TEXTS, params)
    assert "new_york" in vocab.words
    vocab.save(tmp_path)
    again = TopicVocabulary.load(tmp_path)
    assert [again.analyze(t) for t in TEXTS] == [vocab.analyze(t) for t in TEXTS]
    assert (again.count(TEXTS) != vocab.count(TEXTS)).nnz == 0


def test_a_vocabulary_with_no_word_left_says_which_params_to_change() -> None:
    with pytest.raises(ModelError, match=r"Lower train.topics.min_df \(now 5\)"):
        build_vocabulary(["one document", "two documents"], TopicsParams())
