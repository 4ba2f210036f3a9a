"""The words topic models count: whitespace tokens of the cleaned text, collocations joined
(gensim Phrases, learnt on the train documents), then filtered by document frequency
(train.topics: min_df, max_df, max_features).

    vocab = build_vocabulary(train_texts, params.topics)
    counts = vocab.count(texts)          # scipy CSR, (n_docs, len(vocab.words))
    vocab.save(folder); TopicVocabulary.load(folder)

Saved as JSON, never a pickle (gensim's own save pickles): the phrases gensim found and the
word list. Joining is redone here from that list, as gensim's FrozenPhrases does without
connector words: left to right, a token joins the next when the pair is a learnt phrase, and
the joined token is not joined again. The reloaded vocabulary therefore analyses a text
exactly as the one trained.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from nlpflow.config.sections.topics import TopicsParams
from nlpflow.errors import ModelError

VOCAB_FILE = "vocabulary.json"
DELIMITER = "_"


def tokenize(text: str) -> list[str]:
    """Whitespace tokens: the text is preprocess' output, already cleaned and split."""
    return text.split()


def learn_phrases(docs: Iterable[list[str]], *, min_count: int, threshold: float) -> list[str]:
    """The word pairs gensim's Phrases (default scoring) joins in `docs`, as "a_b", sorted."""
    from gensim.models.phrases import Phrases

    model = Phrases(docs, min_count=min_count, threshold=threshold, delimiter=DELIMITER)
    return sorted(model.export_phrases())


def join_phrases(tokens: Sequence[str], phrases: frozenset[str]) -> list[str]:
    """`tokens` with each learnt pair joined by "_", greedily from the left (gensim's
    FrozenPhrases without connector words: a joined pair never joins a third token)."""
    out: list[str] = []
    i = 0
    while i < len(tokens):
        if i + 1 < len(tokens) and (pair := tokens[i] + DELIMITER + tokens[i + 1]) in phrases:
            out.append(pair)
            i += 2
        else:
            out.append(tokens[i])
            i += 1
    return out


class TopicVocabulary:
    """Phrases and the kept words; a word's column is its index in `words`."""

    def __init__(self, phrases: Sequence[str], words: Sequence[str]) -> None:
        self.phrases = tuple(phrases)
        self.words = tuple(words)
        self._phrases = frozenset(self.phrases)
        self._index = {word: i for i, word in enumerate(self.words)}

    def analyze(self, text: str) -> list[str]:
        """Every token of `text`, phrases joined, none dropped: what coherence slides its
        windows over (dropping words would bring far-apart words into one window)."""
        tokens = tokenize(text)
        return join_phrases(tokens, self._phrases) if self._phrases else tokens

    def count(self, texts: Sequence[str]) -> Any:
        """The (n_docs, n_words) CSR matrix of counts of the kept words (int64)."""
        import numpy as np
        from scipy.sparse import csr_matrix

        index = self._index
        rows, cols = [0], []
        for text in texts:
            cols += [index[t] for t in self.analyze(text) if t in index]
            rows.append(len(cols))
        data = np.ones(len(cols), dtype=np.int64)
        matrix = csr_matrix(
            (data, np.asarray(cols, dtype=np.int64), np.asarray(rows, dtype=np.int64)),
            shape=(len(texts), len(self.words)),
        )
        matrix.sum_duplicates()  # repeated words in a document add up
        return matrix

    def save(self, folder: Path) -> None:
        body = {"phrases": list(self.phrases), "words": list(self.words)}
        (folder / VOCAB_FILE).write_text(json.dumps(body, ensure_ascii=False, indent=0))

    @classmethod
    def load(cls, folder: Path) -> TopicVocabulary:
        file = folder / VOCAB_FILE
        if not file.exists():
            raise ModelError(f"{file} is missing: the model folder is incomplete; retrain.")
        body = json.loads(file.read_text())
        return cls(body["phrases"], body["words"])


def build_vocabulary(texts: Sequence[str], params: TopicsParams) -> TopicVocabulary:
    """Phrases learnt on `texts` (train), then the words kept by document frequency."""
    from sklearn.feature_extraction.text import CountVectorizer

    phrases: list[str] = []
    if params.phrases:
        docs = [tokenize(text) for text in texts]
        phrases = learn_phrases(
            docs, min_count=params.phrase_min_count, threshold=params.phrase_threshold
        )
    analyzer = TopicVocabulary(phrases, ()).analyze
    # CountVectorizer only to choose the words (min_df, max_df, max_features); counting
    # later goes through TopicVocabulary.count, which needs no fitted vectorizer.
    vectorizer = CountVectorizer(
        analyzer=analyzer,
        min_df=params.min_df,
        max_df=params.max_df,
        max_features=params.max_features,
    )
    try:
        vectorizer.fit(texts)
    except ValueError as exc:  # no word left, or max_df below min_df on this few documents
        raise ModelError(
            f"topic vocabulary from {len(texts)} train documents: {exc}. Lower "
            f"train.topics.min_df (now {params.min_df}) or raise train.topics.max_df (now "
            f"{params.max_df}), or train on more documents."
        ) from None
    ignored = set(params.ignore_words)
    kept = [w for w in vectorizer.vocabulary_ if w not in ignored]
    if params.letters_only:
        kept = [w for w in kept if has_letters(w)]
    return TopicVocabulary(phrases, sorted(kept))


def has_letters(word: str) -> bool:
    """Whether every part of `word` (split at the collocation delimiter) holds a letter."""
    return all(any(c.isalpha() for c in part) for part in word.split(DELIMITER))
