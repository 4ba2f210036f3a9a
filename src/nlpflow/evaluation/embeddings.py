"""evaluate's intrinsic evaluation of static word vectors (a model with StaticVectors, such as
embeddings_logreg): how good the vectors are in themselves, beside how well the classifier
built on them scores.

Writes under reports/evaluation/embeddings/ (logged to the MLflow run with the rest of
reports/evaluation):
- neighbours.json: the nearest words (cosine) of each probe word (evaluate.probe_words);
- word_similarity.csv: each pair of nlpflow's word-pair list (nlpflow.evaluation.word_pairs)
  with its score and the vectors' cosine, blank where a word has no vector;
- projection.png: the 200 most frequent content words of the train split, on the first two
  principal components of their vectors, labelled;
- projector/vectors.tsv and projector/metadata.tsv: the 10,000 most frequent words (train
  counts; then the table's own order) for the TensorBoard Embedding Projector
  (projector.tensorflow.org: Load, then the two files).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from nlpflow.evaluation.word_pairs import load_word_pairs
from nlpflow.training.families import StaticVectors

EMBEDDINGS_DIR = "embeddings"
NEIGHBOURS = 10  # per probe word
PROJECTION_WORDS = 200
PROJECTOR_WORDS = 10_000


class Table:
    """Words and unit-length vectors, looked up as the model looks words up (then lower-case)."""

    def __init__(self, words: list[str], matrix: np.ndarray) -> None:
        self.words = words
        self.index = {word: i for i, word in enumerate(words)}
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        self.unit = np.asarray(matrix, dtype=np.float32) / np.where(norms == 0, 1, norms)

    def row(self, word: str) -> int | None:
        found = self.index.get(word)
        return found if found is not None else self.index.get(word.lower())


def compute_neighbours(table: Table, probes: list[str], *, k: int = NEIGHBOURS) -> dict[str, Any]:
    """{probe: [[word, cosine], ...]} nearest first; [] for a probe without a vector."""
    out: dict[str, Any] = {}
    for probe in probes:
        row = table.row(probe)
        if row is None:
            out[probe] = []
            continue
        cosines = table.unit @ table.unit[row]
        cosines[row] = -np.inf  # not its own neighbour
        best = np.argsort(-cosines, kind="stable")[:k]
        out[probe] = [[table.words[i], round(float(cosines[i]), 4)] for i in best]
    return out


def compute_word_similarity(
    table: Table, pairs: list[tuple[str, str, float]]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The Spearman correlation between the pairs' scores and the vectors' cosines, over the
    pairs whose two words have vectors (None under 3 such pairs), and one row per pair."""
    from scipy.stats import spearmanr

    rows, scores, cosines = [], [], []
    for first, second, score in pairs:
        a, b = table.row(first), table.row(second)
        cosine = None if a is None or b is None else float(table.unit[a] @ table.unit[b])
        rows.append({"word1": first, "word2": second, "score": score, "cosine": cosine})
        if cosine is not None:
            scores.append(score)
            cosines.append(cosine)
    spearman = None
    if len(scores) >= 3:
        rho = spearmanr(scores, cosines).statistic
        spearman = None if np.isnan(rho) else round(float(rho), 4)
    summary = {"word_sim_spearman": spearman, "word_sim_pairs": len(scores),
               "word_sim_total": len(pairs)}  # fmt: skip
    return summary, rows


def frequent_words(words: list[str], counts: dict[str, int], limit: int) -> list[int]:
    """Rows of the `limit` most frequent words in the train split (ties, and words it never
    used, in the table's order)."""
    order = sorted(range(len(words)), key=lambda i: -counts.get(words[i], 0))
    return order[:limit]


def write_embedding_report(
    model: StaticVectors, out_dir: Path, *, probes: list[str]
) -> dict[str, Any]:
    """Every file above under `out_dir`; returns the summary evaluate reports (vocabulary
    size, dimensions, word-similarity correlation, neighbours)."""
    words, matrix, counts = model.vector_table()
    table = Table(words, matrix)
    out_dir.mkdir(parents=True, exist_ok=True)
    neighbours = compute_neighbours(table, probes)
    (out_dir / "neighbours.json").write_text(
        json.dumps(neighbours, indent=2, ensure_ascii=False), encoding="utf-8"
    )
    similarity, rows = compute_word_similarity(table, load_word_pairs())
    _write_csv(out_dir / "word_similarity.csv", rows)
    save_projection_png(out_dir / "projection.png", words, matrix, counts)
    write_projector(out_dir / "projector", words, matrix, counts)
    return {
        "vocab_size": len(words), "vector_size": int(matrix.shape[1]), **similarity,
        "neighbours": {probe: [w for w, _ in found] for probe, found in neighbours.items()},
    }  # fmt: skip


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    import csv

    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["word1", "word2", "score", "cosine"])
        writer.writeheader()
        writer.writerows(rows)


def write_projector(
    folder: Path, words: list[str], matrix: np.ndarray, counts: dict[str, int]
) -> None:
    """vectors.tsv (one row of numbers a word) and metadata.tsv (a header, then word and
    train count, in the same order): what the Embedding Projector loads."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = frequent_words(words, counts, PROJECTOR_WORDS)
    np.savetxt(folder / "vectors.tsv", matrix[rows], fmt="%.6g", delimiter="\t")
    # a word holding a tab or newline would shift the projector's rows: shown with spaces
    lines = ["word\tcount"] + [
        f"{' '.join(words[i].split())}\t{counts.get(words[i], 0)}" for i in rows
    ]
    (folder / "metadata.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def save_projection_png(
    path: Path, words: list[str], matrix: np.ndarray, counts: dict[str, int]
) -> None:
    """The most frequent content words (alphabetic, not spaCy's English stop words) on the
    first two principal components of their vectors, each point labelled."""
    from spacy.lang.en.stop_words import STOP_WORDS

    from nlpflow.evaluation.plots import _pyplot

    content = [i for i in frequent_words(words, counts, len(words))
               if words[i].isalpha() and words[i].lower() not in STOP_WORDS]  # fmt: skip
    rows = content[:PROJECTION_WORDS]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(11, 11))
    if len(rows) >= 2:
        points = np.asarray(matrix[rows], dtype=np.float64)
        points -= points.mean(axis=0)
        _, _, vt = np.linalg.svd(points, full_matrices=False)
        xy = points @ vt[:2].T if len(vt) >= 2 else np.c_[points @ vt[0], np.zeros(len(rows))]
        ax.scatter(xy[:, 0], xy[:, 1], s=6, color="tab:blue")
        for (x, y), i in zip(xy, rows, strict=True):
            ax.annotate(words[i], (x, y), fontsize=7, xytext=(2, 2), textcoords="offset points")
    ax.set_title(f"The {len(rows)} most frequent content words, first two principal components")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
