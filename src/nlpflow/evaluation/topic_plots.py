"""evaluate's pictures of a topic model (PNG, for MLflow, the model card and README), and the
CSV files `dvc plots` draws:

- topic_words.png: a bar chart of each topic's top words, by weight;
- topic_map.png: the topics on a 2-D map (MDS of the distances between their top-word weight
  vectors: topics sharing words sit close), each a circle sized by its share of the documents;
- topic_shares_over_time.png (+ topic_shares_over_time.csv): each topic's share per period,
  when the data has a time column (data.time_column);
- topic_shares.csv: each topic's share of the test documents.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from nlpflow.evaluation.plots import _pyplot

BARS = 8  # words drawn per topic
COLUMNS = 4  # charts per row of topic_words.png


def save_topic_words_png(
    path: Path, words: Sequence[Sequence[tuple[str, float]]], names: list[str]
) -> None:
    plt = _pyplot()
    rows = max(1, -(-len(words) // COLUMNS))
    fig, axes = plt.subplots(rows, COLUMNS, figsize=(3.2 * COLUMNS, 2.3 * rows), squeeze=False)
    for ax in axes.flat[len(words) :]:
        ax.axis("off")
    for ax, topic, name in zip(axes.flat, words, names, strict=False):
        top = list(topic)[:BARS][::-1]
        ax.barh([w for w, _ in top], [float(v) for _, v in top], color="#4c72b0")
        ax.set_title(f"topic {name}", fontsize=10)
        ax.tick_params(axis="both", labelsize=8)
    fig.suptitle("Top words of each topic (weight)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def topic_positions(words: Sequence[Sequence[tuple[str, float]]]) -> np.ndarray:
    """2-D coordinates of the topics: metric MDS (seeded) of the cosine distances between their
    top-word weight vectors over the union of their words, so topics sharing words sit close.
    Not PCA: topics sharing no word are all equally far apart, which a projection onto two
    principal axes collapses onto each other, and MDS spreads around."""
    from sklearn.manifold import MDS

    vocab = sorted({w for topic in words for w, _ in topic})
    index = {w: i for i, w in enumerate(vocab)}
    vectors = np.zeros((len(words), max(1, len(vocab))))
    for row, topic in enumerate(words):
        for word, weight in topic:
            vectors[row, index[word]] = float(weight)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = vectors / np.where(norms > 0, norms, 1.0)
    distances = np.clip(1.0 - vectors @ vectors.T, 0.0, 2.0)
    np.fill_diagonal(distances, 0.0)
    if len(words) < 3:  # MDS needs three points; one or two lie on a line
        return np.array([[float(i), 0.0] for i in range(len(words))])
    import inspect

    if "metric_mds" in inspect.signature(MDS).parameters:  # scikit-learn 1.8 and later
        options = {"metric": "precomputed", "metric_mds": True, "init": "random"}
    else:
        options = {"dissimilarity": "precomputed", "metric": True}
    mds = MDS(n_components=2, random_state=0, n_init=4, normalized_stress="auto", **options)
    return np.asarray(mds.fit_transform(distances))


def save_topic_map_png(
    path: Path,
    words: Sequence[Sequence[tuple[str, float]]],
    names: list[str],
    shares: Sequence[float],
) -> None:
    plt = _pyplot()
    coords = topic_positions(words)
    fig, ax = plt.subplots(figsize=(7.5, 6))
    sizes = 6000 * np.asarray(shares, dtype=float) + 40
    ax.scatter(
        coords[:, 0], coords[:, 1], s=sizes, alpha=0.35, color="#dd8452", edgecolor="#8c4a1c"
    )
    for (x, y), name, topic, share in zip(coords, names, words, shares, strict=True):
        label = f"{name}: " + ", ".join(w for w, _ in list(topic)[:3]) + f"\n{share:.1%}"
        ax.annotate(label, (x, y), ha="center", va="center", fontsize=7)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.margins(0.25)  # room for the circles and their labels at the edges
    ax.set_title("Topics by shared words (MDS); circle area = share of documents")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def compute_shares_over_time(
    times: pd.Series, shares: np.ndarray, names: list[str]
) -> pd.DataFrame:
    """Each topic's mean share of the documents of each period: months when the documents span
    more than two years' worth of months is too many, years then; days when they span under two
    months. Rows: period (ISO text), topic, share, documents."""
    times = pd.to_datetime(times, utc=True)
    keep = times.notna().to_numpy()
    times, shares = times[keep], shares[keep]
    if times.empty:
        return pd.DataFrame(columns=["period", "topic", "share", "documents"])
    span = times.max() - times.min()
    freq = (
        "D" if span < pd.Timedelta(days=62) else "M" if span < pd.Timedelta(days=3 * 365) else "Y"
    )
    periods = times.dt.tz_localize(None).dt.to_period(freq).astype(str).to_numpy()
    frame = pd.DataFrame(shares, columns=names).assign(period=periods)
    means = frame.groupby("period", sort=True).mean()
    counts = frame.groupby("period", sort=True).size()
    long = means.reset_index().melt(id_vars="period", var_name="topic", value_name="share")
    return long.assign(documents=long["period"].map(counts).astype(int))


def save_shares_over_time_png(path: Path, table: pd.DataFrame, top: int = 8) -> None:
    plt = _pyplot()
    wide = table.pivot(index="period", columns="topic", values="share")
    shown = wide.mean().sort_values(ascending=False).index[:top]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for topic in shown:
        ax.plot(wide.index, wide[topic], marker="o", label=str(topic))
    ax.set_ylabel("mean share of the period's documents")
    ax.set_title(f"Topic shares over time (the {len(shown)} largest topics)")
    ax.legend(fontsize=7, ncol=2)
    ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
