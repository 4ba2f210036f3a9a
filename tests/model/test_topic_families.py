"""Topic-modeling families (lda, nmf, embedding_clusters) on a tiny corpus of two obvious
themes: the topics separate the themes, save -> load transforms identically, a batch
transforms as its documents one by one, and rows are shares.

    .venv/bin/python -m pytest tests/model/test_topic_families.py -q

embedding_clusters uses the installed all-MiniLM-L6-v2 (train.pretrained's default): the
tiny random encoder of the other model tests would embed nothing meaningful to cluster.
"""

from __future__ import annotations

import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from nlpflow.config.params import DEFAULT_ENCODER
from nlpflow.config.sections.topics import (
    EmbeddingClustersParams,
    LdaParams,
    NmfParams,
    TopicsParams,
)
from nlpflow.errors import ModelError
from nlpflow.training.families import MANIFEST, load_manifest
from nlpflow.training.families.topic_clusters import (
    EmbeddingClusterTopics,
    class_tfidf,
    fit_embedding_clusters,
)
from nlpflow.training.families.topic_models import (
    LdaTopicModel,
    NmfTopicModel,
    fit_lda,
    fit_nmf,
)

SPORTS = [
    "goal", "striker", "match", "referee", "stadium", "team", "coach", "league",
    "penalty", "season", "players", "tournament", "defender", "keeper", "fans", "pitch",
]  # fmt: skip
COOKING = [
    "oven", "recipe", "onions", "garlic", "simmer", "bake", "flour", "sauce",
    "pan", "salt", "chef", "butter", "dough", "pepper", "kitchen", "roast",
]  # fmt: skip
FAMILIES = {
    "lda": (fit_lda, LdaTopicModel),
    "nmf": (fit_nmf, NmfTopicModel),
    "embedding_clusters": (fit_embedding_clusters, EmbeddingClusterTopics),
}


def make_corpus(n: int, seed: int) -> tuple[list[str], list[str]]:
    """`n` short documents, half of each theme, shuffled: 7 theme words among stop words
    (which max_df drops, as they are in every document)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        theme = "sports" if i % 2 else "cooking"
        w = rng.sample(SPORTS if theme == "sports" else COOKING, 7)
        rows.append((f"the {w[0]} and the {w[1]} {w[2]} {w[3]} with {w[4]} {w[5]} {w[6]}", theme))
    rng.shuffle(rows)
    return [text for text, _ in rows], [theme for _, theme in rows]


def train_params(**clusters: Any) -> SimpleNamespace:
    """What the topic families read of TrainParams (train.topics etc. once registered)."""
    return SimpleNamespace(
        seed=13,
        topics=TopicsParams(n_topics=2, min_df=2, max_df=0.5, phrases=False),
        lda=LdaParams(),
        nmf=NmfParams(),
        embedding_clusters=EmbeddingClustersParams(components=2, **clusters),
        pretrained=DEFAULT_ENCODER,
        device="cpu",
        cpu_threads=None,
    )


TRAIN = make_corpus(40, seed=0)
VALIDATION = make_corpus(20, seed=1)


@pytest.fixture(scope="module", params=list(FAMILIES))
def fitted(request: pytest.FixtureRequest) -> tuple[str, Any, list[dict[str, float]]]:
    fit = FAMILIES[request.param][0]
    reports: list[dict[str, float]] = []
    model = fit(
        TRAIN, VALIDATION, labels=[""] * 2, params=train_params(),
        on_epoch=lambda epoch, scores: reports.append({"epoch": epoch, **scores}),
    )  # fmt: skip
    return request.param, model, reports


def test_topics_separate_the_two_themes(fitted: tuple[str, Any, list]) -> None:
    family, model, _ = fitted
    assert model.family == family and model.labels == ["0", "1"]
    texts, themes = TRAIN
    dominant = model.transform(texts).argmax(axis=1)
    by_theme: dict[str, set[int]] = {theme: set() for theme in themes}
    for topic, theme in zip(dominant, themes, strict=True):
        by_theme[theme].add(int(topic))
    assert len(by_theme["sports"]) == 1 and len(by_theme["cooking"]) == 1
    assert by_theme["sports"] != by_theme["cooking"]
    # each topic's top 10 words come from its theme only, heaviest first
    for topic, words in enumerate(model.topic_words()):
        assert len(words) == 10
        theme = SPORTS if topic in by_theme["sports"] else COOKING
        assert {word for word, _ in words} <= set(theme), words
        weights = [weight for _, weight in words]
        assert weights == sorted(weights, reverse=True) and weights[-1] > 0


def test_one_epoch_reports_coherence_and_diversity(fitted: tuple[str, Any, list]) -> None:
    _, _, reports = fitted
    assert len(reports) == 1 and reports[0]["epoch"] == 1
    assert set(reports[0]) == {"epoch", "val_npmi", "val_diversity"}
    # theme words co-occur (7 of 16 per document) more than chance: NPMI above 0
    assert 0.05 < reports[0]["val_npmi"] < 1.0
    assert 0.5 <= reports[0]["val_diversity"] <= 1.0


def test_rows_are_shares_and_an_empty_document_is_uniform(fitted: tuple[str, Any, list]) -> None:
    _, model, _ = fitted
    shares = model.transform(["", "goal striker referee", "words the model never saw"])
    assert shares.shape == (3, 2)
    assert np.allclose(shares.sum(axis=1), 1.0) and (shares >= 0).all()
    assert shares[0].tolist() == [0.5, 0.5]
    assert np.array_equal(model.predict_proba(["goal striker"]), model.transform(["goal striker"]))
    assert model.transform([]).shape == (0, 2)


def test_reloaded_model_transforms_identically(
    fitted: tuple[str, Any, list], tmp_path: Path
) -> None:
    family, model, _ = fitted
    model.save(tmp_path)
    manifest = load_manifest(tmp_path)
    assert manifest["family"] == family and manifest["labels"] == ["0", "1"]
    # no pickles: JSON, numpy arrays, skops
    assert {p.suffix for p in tmp_path.iterdir()} <= {".json", ".npy", ".skops"}
    again = FAMILIES[family][1].load(tmp_path)
    texts = VALIDATION[0]
    assert np.array_equal(again.transform(texts), model.transform(texts))
    assert again.topic_words() == model.topic_words()
    assert (tmp_path / MANIFEST).exists()


def test_a_batch_transforms_as_its_documents_one_by_one(fitted: tuple[str, Any, list]) -> None:
    family, model, _ = fitted
    texts = VALIDATION[0]
    alone = np.vstack([model.transform([text]) for text in texts])
    together = model.transform(texts)
    if family == "embedding_clusters":
        # the encoder pads a batch: float sums in another order, equal to rounding
        assert np.allclose(together, alone, rtol=0, atol=1e-9)
    else:
        assert np.array_equal(together, alone)


@pytest.mark.parametrize("loss", ["frobenius", "kullback-leibler"])
def test_nmf_shares_do_not_depend_on_the_batch(loss: str) -> None:
    # Four topics and documents mixing both themes: here scikit-learn's NMF.transform of the
    # batch differs from its rows' one by one by 1.6e-5 (it stops on the batch's
    # convergence, and its multiplicative updates start from the batch's mean).
    params = train_params()
    params.topics = TopicsParams(n_topics=4, min_df=2, max_df=0.5, phrases=False)
    params.nmf = NmfParams(beta_loss=loss)
    model = fit_nmf(TRAIN, VALIDATION, labels=[], params=params)
    rng = random.Random(5)
    mixed = [" ".join(rng.sample(SPORTS, 3) + rng.sample(COOKING, 1 + i % 4)) for i in range(20)]
    texts = VALIDATION[0] + mixed
    alone = np.vstack([model.transform([text]) for text in texts])
    assert np.array_equal(model.transform(texts), alone)


def test_same_seed_same_topics() -> None:
    # lda and nmf: the fixture's model is no help, a second fit must match it bit for bit
    for fit in (fit_lda, fit_nmf):
        one = fit(TRAIN, VALIDATION, labels=[], params=train_params())
        two = fit(TRAIN, VALIDATION, labels=[], params=train_params())
        assert one.topic_words() == two.topic_words()
        assert np.array_equal(one.transform(VALIDATION[0]), two.transform(VALIDATION[0]))


def test_hdbscan_finds_the_two_themes_and_gives_every_document_a_topic() -> None:
    params = train_params(cluster="hdbscan", min_cluster_size=5)
    model = fit_embedding_clusters(TRAIN, VALIDATION, labels=[], params=params)
    assert model.labels == ["0", "1"]  # found by the data: n_topics is not read
    dominant = model.transform(TRAIN[0]).argmax(axis=1)
    sports = {int(t) for t, theme in zip(dominant, TRAIN[1], strict=True) if theme == "sports"}
    cooking = {int(t) for t, theme in zip(dominant, TRAIN[1], strict=True) if theme == "cooking"}
    assert len(sports) == len(cooking) == 1 and sports != cooking


def test_unreduced_clusters_reload_without_pca_files(tmp_path: Path) -> None:
    # reduce: none clusters the 384-dimensional embeddings; an empty train text is skipped
    params = train_params(reduce="none")
    texts, themes = TRAIN[0] + [""], TRAIN[1] + ["cooking"]
    model = fit_embedding_clusters((texts, themes), VALIDATION, labels=[], params=params)
    assert model.pca is None and model.centroids.shape == (2, 384)
    dominant = model.transform(TRAIN[0]).argmax(axis=1)
    sports = {int(t) for t, theme in zip(dominant, TRAIN[1], strict=True) if theme == "sports"}
    cooking = {int(t) for t, theme in zip(dominant, TRAIN[1], strict=True) if theme == "cooking"}
    assert len(sports) == len(cooking) == 1 and sports != cooking
    model.save(tmp_path)
    assert not list(tmp_path.glob("pca_*"))
    again = EmbeddingClusterTopics.load(tmp_path)
    assert np.array_equal(again.transform(VALIDATION[0]), model.transform(VALIDATION[0]))


def test_hdbscan_without_clusters_says_what_to_lower() -> None:
    params = train_params(cluster="hdbscan", min_cluster_size=30)
    with pytest.raises(ModelError, match=r"Lower train\.embedding_clusters\.min_cluster_size"):
        fit_embedding_clusters(TRAIN, VALIDATION, labels=[], params=params)


def test_class_tfidf_by_hand() -> None:
    from scipy.sparse import csr_matrix

    # words: a b c; documents 0, 1 in class 0, document 2 in class 1
    counts = csr_matrix(np.array([[2, 1, 0], [1, 0, 0], [0, 1, 3]]))
    weights = class_tfidf(counts, np.array([0, 0, 1]), 2)
    # class 0 joined: a 3, b 1, c 0 (4 words); class 1: b 1, c 3 (4 words); A = 4
    # f: a 3, b 2, c 3 -> idf a = ln(1 + 4/3), b = ln(1 + 4/2), c = ln(1 + 4/3)
    idf_a, idf_b = np.log(1 + 4 / 3), np.log(3.0)
    expected = [[3 / 4 * idf_a, 1 / 4 * idf_b, 0.0], [0.0, 1 / 4 * idf_b, 3 / 4 * idf_a]]
    assert np.allclose(weights, expected, rtol=0, atol=1e-12)


def test_more_topics_than_words_is_refused_with_the_fix() -> None:
    params = train_params()
    params.topics = TopicsParams(n_topics=200, min_df=2, max_df=0.5, phrases=False)
    with pytest.raises(ModelError, match=r"Lower train\.topics\.n_topics"):
        fit_lda(TRAIN, VALIDATION, labels=[], params=params)
