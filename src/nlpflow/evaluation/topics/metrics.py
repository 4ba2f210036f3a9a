"""Topic-model metrics, pure functions.

- coherence: do a topic's top words occur together in held-out documents? gensim's
  CoherenceModel, c_npmi (Bouma's normalised PMI, Aletras & Stevenson 2013) or c_v (Röder et
  al. 2015);
- diversity: the share of unique words among all topics' top words (Dieng et al. 2020, as
  the BERTopic paper reports it);
- agreement of each document's dominant topic with known labels: NMI, ARI (scikit-learn),
  purity;
- topic shares: how much of the corpus each topic holds.

    compute_coherence([["ball", "goal"]], [["ball", "goal"], ["oven"]], measure="c_npmi")
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

Measure = Literal["c_npmi", "c_v"]


def compute_coherence(
    topics: Sequence[Sequence[str]],
    docs: Sequence[Sequence[str]],
    *,
    measure: Measure = "c_npmi",
    top_n: int = 10,
) -> tuple[float, list[float]]:
    """Mean coherence of `topics` (each cut to its first `top_n` words) on the tokenised
    reference `docs`, and each topic's.

    gensim counts word (co-)occurrences in sliding windows (10 tokens for c_npmi, 110 for c_v):
    a document of L tokens gives L - window + 1 windows, a shorter one is one window, and every
    document counts in the total, whether or not it holds a topic word.

    A topic word absent from `docs` has probability 0, where gensim has no value for it
    (it drops the word unsaid, and fails when no word is left). Here, so that a topic is
    always scored on all its words:
    - c_npmi: each pair with an absent word scores -1, NPMI's value for words never seen
      together; the topic's score is the mean over all its pairs, as gensim's is.
    - c_v: absent words are left out, as gensim does; a topic with fewer than two words
      present scores 0.0 (no evidence that its words belong together).
    A topic of fewer than two distinct words (a factorisation's empty component) has no pair
    to judge: it scores the floor, -1 (c_npmi) or 0.0 (c_v).
    """
    if measure not in ("c_npmi", "c_v"):
        raise ValueError(f"measure must be c_npmi or c_v, not {measure!r}")
    if top_n < 2 or not topics:
        raise ValueError("coherence needs at least one topic and top_n of 2 or more")
    heads = [list(dict.fromkeys(topic))[:top_n] for topic in topics]
    seen = {token for doc in docs for token in doc}
    present = [[word for word in words if word in seen] for words in heads]
    scored = [i for i, words in enumerate(present) if len(words) >= 2]
    values = _gensim_coherence([present[i] for i in scored], docs, measure)
    by_gensim = dict(zip(scored, values, strict=True))
    per_topic = []
    for i, words in enumerate(heads):
        value = by_gensim.get(i)
        if measure == "c_v":
            per_topic.append(0.0 if value is None else value)
            continue
        pairs, known = _pairs(len(words)), _pairs(len(present[i]))
        per_topic.append(((value or 0.0) * known - (pairs - known)) / pairs if pairs else -1.0)
    return float(np.mean(per_topic)), per_topic


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def _gensim_coherence(
    topics: list[list[str]], docs: Sequence[Sequence[str]], measure: Measure
) -> list[float]:
    if not topics:
        return []
    from gensim.corpora import Dictionary
    from gensim.models.coherencemodel import CoherenceModel

    texts = [list(doc) for doc in docs]
    model = CoherenceModel(
        topics=topics,
        texts=texts,
        dictionary=Dictionary(texts),
        coherence=measure,
        # the longest topic: gensim cuts every topic to the first topic's length otherwise
        topn=max(len(topic) for topic in topics),
        processes=1,  # its process pool costs more than it saves on a validation split
    )
    return [float(value) for value in model.get_coherence_per_topic()]


def compute_diversity(topics: Sequence[Sequence[str]], top_n: int = 25) -> float:
    """Unique words among all topics' first `top_n` words, over their number: 1.0 when no
    two topics share a word, 1/len(topics) when all topics are the same."""
    words = [word for topic in topics for word in list(topic)[:top_n]]
    if not words:
        raise ValueError("diversity needs at least one topic word")
    return len(set(words)) / len(words)


def compute_purity(labels_true: Sequence[str], topic_ids: Sequence[int | str]) -> float:
    """Share of documents whose label is their topic's most common label."""
    from sklearn.metrics.cluster import contingency_matrix

    if not len(labels_true):
        raise ValueError("purity needs at least one document")
    table = contingency_matrix(labels_true, topic_ids)  # rows: labels, columns: topics
    return float(table.max(axis=0).sum() / table.sum())


def compute_label_agreement(
    labels_true: Sequence[str], topic_ids: Sequence[int | str]
) -> dict[str, float]:
    """How well dominant topics recover known labels: nmi (normalised mutual information,
    arithmetic mean), ari (adjusted Rand index), purity."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    return {
        "nmi": float(normalized_mutual_info_score(labels_true, topic_ids)),
        "ari": float(adjusted_rand_score(labels_true, topic_ids)),
        "purity": compute_purity(labels_true, topic_ids),
    }


def compute_topic_shares(doc_topic: np.ndarray) -> list[float]:
    """Each topic's mean share over the documents (rows of `doc_topic` sum to 1, so do these)."""
    if not len(doc_topic):
        raise ValueError("topic shares need at least one document")
    return [float(share) for share in np.asarray(doc_topic).mean(axis=0)]


def compute_dominant_counts(doc_topic: np.ndarray) -> list[int]:
    """Documents whose largest share is each topic (a tie goes to the lower topic id)."""
    doc_topic = np.asarray(doc_topic)
    if doc_topic.ndim != 2:
        raise ValueError(f"doc_topic must be (documents, topics), not shape {doc_topic.shape}")
    counts = np.bincount(doc_topic.argmax(axis=1), minlength=doc_topic.shape[1])
    return [int(count) for count in counts]
