"""Topic models on word counts (NLP task topic-modeling): lda and nmf, and what every topic
family shares.

- lda: scikit-learn's LatentDirichletAllocation on the counts of the vocabulary
  (nlpflow.training.families.topic_vocab); params train.topics, train.lda, train.seed.
- nmf: scikit-learn's NMF of the TF-IDF (or count) matrix; train.topics, train.nmf, train.seed.

A topic model's `labels` are its topic ids "0", "1", ... (topics have no class names), and
`transform(texts)` gives each document's topic shares, a row summing to 1. A document with
no word of the vocabulary (or, for nmf, one the factorisation gives no topic weight) gets the
uniform row 1/n_topics: nothing in it points to a topic.

    model = fit_lda((texts, labels), (val_texts, val_labels), labels=[], params=params)
    model.topic_words()[0][:3]       # [("goal", 0.031), ("match", 0.027), ("team", 0.022)]
    model.transform(["the team scored a late goal"])   # array([[0.91, 0.01, ...]])

Saved without pickles: the manifest, vocabulary.json, and the estimator (and nmf's TF-IDF
weighting) as skops files (nlpflow.training.families.sklearn_io).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, Self, TypeVar

import numpy as np

from nlpflow.config.sections.topics import LdaParams, NmfParams, TopicsParams
from nlpflow.errors import ModelError
from nlpflow.training.families import XY, EpochCallback, load_manifest, save_manifest
from nlpflow.training.families import TopicModel as FamilyTopicModel
from nlpflow.training.families.topic_vocab import TopicVocabulary, build_vocabulary
from nlpflow.training.progress import TrainingProgress

LDA_FAMILY = "lda"
NMF_FAMILY = "nmf"
ESTIMATOR_FILE = "estimator.skops"
TFIDF_FILE = "tfidf.skops"
DIVERSITY_TOP_N = 25  # the BERTopic paper's top words for topic diversity


class LdaTrainParams(Protocol):
    """The train fields lda reads (TrainParams has them)."""

    @property
    def seed(self) -> int: ...
    @property
    def topics(self) -> TopicsParams: ...
    @property
    def lda(self) -> LdaParams: ...


class NmfTrainParams(Protocol):
    """The train fields nmf reads (TrainParams has them)."""

    @property
    def seed(self) -> int: ...
    @property
    def topics(self) -> TopicsParams: ...
    @property
    def nmf(self) -> NmfParams: ...


class TopicModel(FamilyTopicModel, Protocol):
    """What every topic family's model is: what evaluate and serving use of a topic model
    (nlpflow.training.families.TopicModel), and the parts the families share."""

    vocab: TopicVocabulary  # the words its topics are made of
    top_words: int  # train.topics.top_words: topic_words' default length

    def transform(self, texts: Sequence[str]) -> np.ndarray: ...


def topic_ids(n_topics: int) -> list[str]:
    """The `labels` of a topic model: its topics' ids as strings."""
    return [str(i) for i in range(n_topics)]


def shares(weights: np.ndarray) -> np.ndarray:
    """Rows of non-negative topic weights as shares summing to 1; a row without weight is
    uniform (the document says nothing about its topic)."""
    weights = np.asarray(weights, dtype=np.float64)
    total = weights.sum(axis=1, keepdims=True)
    out = np.full_like(weights, 1.0 / weights.shape[1])
    some = total[:, 0] > 0
    out[some] = weights[some] / total[some]
    return out


def top_words(weights: np.ndarray, words: Sequence[str], n: int) -> list[list[tuple[str, float]]]:
    """Per row of (n_topics, n_words) `weights`, its `n` heaviest words, descending (ties by
    word order); words of weight 0 are no part of a topic and are left out."""
    out = []
    for row in np.asarray(weights, dtype=np.float64):
        order = np.argsort(-row, kind="stable")[:n]
        out.append([(words[j], float(row[j])) for j in order if row[j] > 0])
    return out


def score_topics(model: TopicModel, validation_texts: Sequence[str]) -> dict[str, float]:
    """What each topic family reports as its one epoch: val_npmi, the NPMI coherence of its
    top words on the validation documents (what a sweep maximises; left out without
    validation documents), and val_diversity over the top 25 words."""
    from nlpflow.evaluation.topics.metrics import compute_coherence, compute_diversity

    words = [[word for word, _ in topic] for topic in model.topic_words(DIVERSITY_TOP_N)]
    scores: dict[str, float] = {}
    if len(validation_texts):
        docs = [model.vocab.analyze(text) for text in validation_texts]
        scores["val_npmi"] = compute_coherence(
            words, docs, measure="c_npmi", top_n=model.top_words
        )[0]
    scores["val_diversity"] = compute_diversity(words, top_n=DIVERSITY_TOP_N)
    return scores


def check_sizes(n_topics: int, *, docs: int, words: int) -> None:
    if n_topics > min(docs, words):
        raise ModelError(
            f"{n_topics} topics from {docs} train documents and a vocabulary of {words} words: "
            "a topic model needs no more topics than either. Lower train.topics.n_topics, or "
            "lower train.topics.min_df to keep more words."
        )


class CountTopicModel:
    """A scikit-learn decomposition of the document-word matrix: components_ are the topics'
    word weights, transform gives documents' topic weights."""

    family: str

    def __init__(
        self, vocab: TopicVocabulary, estimator: Any, *, top_words: int, tfidf: Any = None
    ) -> None:
        self.vocab = vocab
        self.estimator = estimator
        self.tfidf = tfidf  # nmf's fitted TfidfTransformer, when it factorises TF-IDF
        self.top_words = top_words
        self.labels = topic_ids(estimator.components_.shape[0])

    def topic_words(self, n: int | None = None) -> list[list[tuple[str, float]]]:
        """Each topic's top `n` (default train.topics.top_words) words and their share of the
        topic's weight (lda: the topic's word probabilities), descending."""
        components = np.asarray(self.estimator.components_, dtype=np.float64)
        weights = components / components.sum(axis=1, keepdims=True).clip(min=1e-300)
        return top_words(weights, self.vocab.words, n or self.top_words)

    def features(self, texts: Sequence[str]) -> Any:
        counts = self.vocab.count(texts)
        return counts if self.tfidf is None else self.tfidf.transform(counts)

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """(n_docs, n_topics) topic shares, rows summing to 1 (empty documents uniform)."""
        if not len(texts):  # scikit-learn refuses an empty batch; a server may send one
            return np.zeros((0, len(self.labels)))
        x = self.features(texts)
        weights = np.zeros((len(texts), len(self.labels)))
        rows = np.flatnonzero(x.getnnz(axis=1))
        if len(rows):
            weights[rows] = self._weights(x[rows])
        return shares(weights)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return self.transform(texts)

    def _weights(self, x: Any) -> np.ndarray:
        return np.asarray(self.estimator.transform(x))

    def save(self, path: Path) -> None:
        from nlpflow.training.families.sklearn_io import save_sklearn

        extra = {"top_words": self.top_words, "tfidf": self.tfidf is not None}
        save_manifest(path, family=self.family, labels=self.labels, extra=extra)
        self.vocab.save(path)
        save_sklearn(self.estimator, path / ESTIMATOR_FILE)
        if self.tfidf is not None:
            save_sklearn(self.tfidf, path / TFIDF_FILE)

    @classmethod
    def load(cls, path: Path) -> Self:
        from nlpflow.training.families.sklearn_io import load_sklearn

        manifest = load_manifest(path)
        tfidf = load_sklearn(path / TFIDF_FILE) if manifest["tfidf"] else None
        return cls(
            TopicVocabulary.load(path),
            load_sklearn(path / ESTIMATOR_FILE),
            top_words=manifest["top_words"],
            tfidf=tfidf,
        )


class LdaTopicModel(CountTopicModel):
    """lda. Its transform runs the variational E-step one document at a time, each from the
    same start: a document's shares do not depend on the batch it comes in."""

    family = LDA_FAMILY


class NmfTopicModel(CountTopicModel):
    """nmf. scikit-learn's NMF.transform stops when the whole batch has converged (and its
    multiplicative updates start from the batch's mean), so a document's shares would move
    with its batch (by 1e-5 where measured). Here coordinate descent (frobenius) runs all
    its max_iter sweeps, each row's updates independent of the other rows' (7 s for 22,000
    documents and 20 topics on a busy CPU; 73 s one document at a time); multiplicative
    updates (kullback-leibler) solve one document at a time, each stopping on its own
    convergence (about 8 ms a document)."""

    family = NMF_FAMILY

    def _weights(self, x: Any) -> np.ndarray:
        if self.estimator.solver == "mu":  # alone, a row's early stop is its own
            return np.vstack([self._solve(x[i], tol=self.estimator.tol) for i in range(x.shape[0])])
        return self._solve(x, tol=0.0)

    def _solve(self, x: Any, *, tol: float) -> np.ndarray:
        from sklearn.decomposition import non_negative_factorization

        est = self.estimator
        w, _, _ = non_negative_factorization(
            x, H=est.components_, n_components=est.n_components_, update_H=False,
            solver=est.solver, beta_loss=est.beta_loss, tol=tol, max_iter=est.max_iter,
            alpha_W=est.alpha_W, alpha_H=est.alpha_H, l1_ratio=est.l1_ratio,
        )  # fmt: skip
        return np.asarray(w)


M = TypeVar("M", bound=CountTopicModel)
T = TypeVar("T", bound="TopicModel")


def _fit_counts(
    model_class: type[M],
    estimator: Any,
    train: Sequence[str],
    validation: Sequence[str],
    *,
    topics: TopicsParams,
    tfidf: bool,
    on_epoch: EpochCallback | None,
) -> M:
    progress = TrainingProgress(model_class.family, metric="npmi")
    progress.begin(examples=len(train))
    vocab = build_vocabulary(train, topics)
    check_sizes(topics.n_topics, docs=len(train), words=len(vocab.words))
    counts = vocab.count(train)
    weighting = None
    if tfidf:
        from sklearn.feature_extraction.text import TfidfTransformer

        weighting = TfidfTransformer().fit(counts)
    estimator.fit(counts if weighting is None else weighting.transform(counts))
    model = model_class(vocab, estimator, top_words=topics.top_words, tfidf=weighting)
    return finish_fit(model, validation, progress=progress, on_epoch=on_epoch)


def finish_fit(
    model: T, validation: Sequence[str], *, progress: Any, on_epoch: EpochCallback | None
) -> T:
    """Score a fitted topic model on the validation texts and report that as its one epoch
    (the whole fit): val_npmi and val_diversity, what a sweep maximises."""
    scores = score_topics(model, validation)
    progress.finish([{"epoch": 1.0, **scores}])
    if on_epoch is not None:
        on_epoch(1, scores)
    return model


def fit_lda_topics(
    train: Sequence[str],
    validation: Sequence[str],
    *,
    topics: TopicsParams,
    lda: LdaParams,
    seed: int,
    on_epoch: EpochCallback | None = None,
) -> LdaTopicModel:
    """LDA on the train texts; validation texts only score the topics (val_npmi)."""
    from sklearn.decomposition import LatentDirichletAllocation

    estimator = LatentDirichletAllocation(
        n_components=topics.n_topics,
        doc_topic_prior=lda.doc_topic_prior,  # None: scikit-learn's 1/n_components
        topic_word_prior=lda.topic_word_prior,
        learning_method=lda.learning_method,
        learning_decay=lda.learning_decay,
        batch_size=lda.batch_size,
        max_iter=lda.max_iter,
        random_state=seed,
    )
    return _fit_counts(
        LdaTopicModel, estimator, train, validation, topics=topics, tfidf=False,
        on_epoch=on_epoch,
    )  # fmt: skip


def fit_nmf_topics(
    train: Sequence[str],
    validation: Sequence[str],
    *,
    topics: TopicsParams,
    nmf: NmfParams,
    seed: int,
    on_epoch: EpochCallback | None = None,
) -> NmfTopicModel:
    """NMF of the train texts' TF-IDF (or counts); validation texts only score the topics."""
    from sklearn.decomposition import NMF

    estimator = NMF(
        n_components=topics.n_topics,
        init=nmf.init,
        # coordinate descent is faster, but minimises the Frobenius norm only
        solver="cd" if nmf.beta_loss == "frobenius" else "mu",
        beta_loss=nmf.beta_loss,
        alpha_W=nmf.alpha_W,
        alpha_H="same",
        l1_ratio=nmf.l1_ratio,
        max_iter=nmf.max_iter,
        random_state=seed,
    )
    return _fit_counts(
        NmfTopicModel, estimator, train, validation, topics=topics, tfidf=nmf.tfidf,
        on_epoch=on_epoch,
    )  # fmt: skip


def fit_lda(
    train: XY, validation: XY, *, labels: list[str], params: LdaTrainParams,
    on_epoch: EpochCallback | None = None, on_step: EpochCallback | None = None,
    workdir: Path | None = None,
) -> LdaTopicModel:  # fmt: skip
    """lda's registered fit: train.topics, train.lda, train.seed. Labels, when the data has
    them, are ignored (one closed-form fit: no steps, no checkpoints)."""
    return fit_lda_topics(
        train[0], validation[0], topics=params.topics, lda=params.lda, seed=params.seed,
        on_epoch=on_epoch,
    )  # fmt: skip


def fit_nmf(
    train: XY, validation: XY, *, labels: list[str], params: NmfTrainParams,
    on_epoch: EpochCallback | None = None, on_step: EpochCallback | None = None,
    workdir: Path | None = None,
) -> NmfTopicModel:  # fmt: skip
    """nmf's registered fit: train.topics, train.nmf, train.seed (labels ignored)."""
    return fit_nmf_topics(
        train[0], validation[0], topics=params.topics, nmf=params.nmf, seed=params.seed,
        on_epoch=on_epoch,
    )  # fmt: skip
