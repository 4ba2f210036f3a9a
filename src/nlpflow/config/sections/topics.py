"""Params of the topic-modeling families: train.topics (every topic family reads it), and one
section per family: train.lda, train.nmf, train.embedding_clusters.

    train:
      family: lda
      seed: 13
      topics: {n_topics: 20, min_df: 5}
      lda: {learning_method: batch, max_iter: 20}

The seed is train.seed; embedding_clusters' encoder is train.pretrained and its device
train.device (fp32, train.cpu_threads threads on a CPU).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from nlpflow.config.sections.base import Section


class TopicsParams(Section):
    """train.topics: the number of topics and the vocabulary every topic family counts."""

    n_topics: int = Field(
        default=20,
        ge=2,
        le=1000,
        description="Topics to find (lda, nmf, embedding_clusters with kmeans); hdbscan finds "
        "its own number.",
    )
    top_words: int = Field(
        default=10,
        ge=2,
        le=100,
        description="Words that describe a topic, and that its coherence is computed on.",
    )
    min_df: int = Field(
        default=5, ge=1, description="Drop words found in fewer train documents than this."
    )
    max_df: float = Field(
        default=0.5,
        gt=0.0,
        le=1.0,
        description="Drop words found in a larger share of train documents than this (1.0 "
        "keeps all): words in most documents tell topics apart no more than stop words do.",
    )
    max_features: int | None = Field(
        default=20_000,
        ge=1,
        description="Keep at most this many words, the most frequent in train; null = all.",
    )
    ignore_words: list[str] = Field(
        default=[],
        description="Words never counted, besides preprocess' stop words: the domain's own "
        "filler (greetings and sign-offs in support mail, 'movie' in film reviews), written "
        "as they look after preprocess (lower-cased, lemmatised).",
    )
    letters_only: bool = Field(
        default=False,
        description="Count only words with a letter in each part (of a collocation too): "
        "drops the symbols and markup that preprocess' punctuation switch keeps (>>>, =, "
        "backticks), which no theme of code or markup is made of. Off by default: in other "
        "text a symbol can mark a theme (£ and $ in billing tickets).",
    )
    phrases: bool = Field(
        default=True,
        description="Join collocations learnt on the train documents into one word with _ "
        "(new york -> new_york; gensim Phrases), before counting.",
    )
    phrase_min_count: int = Field(
        default=5, ge=1, description="phrases: ignore word pairs seen fewer times than this."
    )
    phrase_threshold: float = Field(
        default=10.0,
        gt=0.0,
        description="phrases: join a pair whose score passes this (gensim's default scoring, "
        "Mikolov et al. 2013: higher joins fewer pairs).",
    )


class LdaParams(Section):
    """train.lda: scikit-learn's LatentDirichletAllocation on the word counts."""

    learning_method: Literal["batch", "online"] = Field(
        default="batch",
        description="batch: variational Bayes over all documents each iteration; online: "
        "mini-batches of batch_size (faster on large corpora).",
    )
    max_iter: int = Field(default=20, ge=1, le=10_000, description="Passes over the data.")
    doc_topic_prior: float | None = Field(
        default=None,
        gt=0.0,
        description="alpha: smaller makes each document about fewer topics; null = 1/n_topics.",
    )
    topic_word_prior: float | None = Field(
        default=None,
        gt=0.0,
        description="eta: smaller makes each topic use fewer words; null = 1/n_topics.",
    )
    learning_decay: float = Field(
        default=0.7,
        gt=0.5,
        le=1.0,
        description="online: how fast the learning rate falls (kappa, in (0.5, 1] for "
        "convergence).",
    )
    batch_size: int = Field(
        default=128, ge=1, le=100_000, description="online: documents per update."
    )


class NmfParams(Section):
    """train.nmf: scikit-learn's NMF of the document-word matrix (TF-IDF or counts)."""

    init: Literal["nndsvda", "nndsvd", "nndsvdar", "random"] = Field(
        default="nndsvda",
        description="Start of the factors: nndsvd* from an SVD (nndsvda fills its zeros with "
        "the data's mean), random from train.seed.",
    )
    beta_loss: Literal["frobenius", "kullback-leibler"] = Field(
        default="frobenius",
        description="What the factorisation minimises: frobenius (coordinate descent) or "
        "kullback-leibler (multiplicative updates; often better topics on counts).",
    )
    alpha_W: float = Field(
        default=0.0,
        ge=0.0,
        description="Regularisation of the document-topic factor (the topic-word factor gets "
        "the same); 0 = none.",
    )
    l1_ratio: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Share of L1 in the regularisation (1 = sparse topics), the rest L2.",
    )
    max_iter: int = Field(default=400, ge=1, le=100_000, description="Solver iterations.")
    tfidf: bool = Field(
        default=True,
        description="Factorise TF-IDF weights (idf from train), so frequent words weigh less; "
        "false = raw counts.",
    )

    @model_validator(mode="after")
    def _updates_can_move(self) -> NmfParams:
        # Multiplicative updates never move a zero, and nndsvd starts with many.
        if self.beta_loss == "kullback-leibler" and self.init == "nndsvd":
            raise ValueError(
                "kullback-leibler trains by multiplicative updates, which cannot move the "
                "zeros nndsvd starts with; use init nndsvda"
            )
        return self


class EmbeddingClustersParams(Section):
    """train.embedding_clusters: documents embedded by the sentence encoder train.pretrained
    (mean pooling, unit length), reduced, clustered; each cluster is a topic, described by its
    words' class-based TF-IDF (BERTopic's c-TF-IDF)."""

    reduce: Literal["pca", "none"] = Field(
        default="pca",
        description="pca: project the embeddings on their first `components` principal axes "
        "before clustering (distances mean more in few dimensions); none: cluster them as is.",
    )
    components: int = Field(
        default=10,
        ge=1,
        le=4096,
        description="pca: dimensions kept. 10 by validation NPMI on bench/topics.py's docstrings "
        "(5: -0.083, 10: -0.051, 20: -0.058): a linear projection needs more dimensions than "
        "BERTopic's UMAP (5) to keep clusters apart.",
    )
    cluster: Literal["kmeans", "hdbscan"] = Field(
        default="kmeans",
        description="kmeans: topics.n_topics clusters; hdbscan: as many as the data's dense "
        "regions (topics.n_topics is ignored), its outliers then joined to the nearest "
        "cluster's centroid so every document has a topic.",
    )
    min_cluster_size: int = Field(
        default=10, ge=2, description="hdbscan: the fewest documents a topic may have."
    )
    batch_size: int = Field(
        default=64, ge=1, le=4096, description="Texts per encoder forward pass."
    )
    max_length: int = Field(
        default=128, ge=8, le=4096, description="Tokens per text the encoder reads (truncated)."
    )
