"""embeddings_logreg: static word vectors, pooled per text, under a logistic regression.

The vectors come from train.embeddings.source:
- word2vec / fasttext: trained by gensim on the train split's processed texts, never on
  validation or test (their words still get a vector when the train split had them);
- glove_file: a GloVe (or word2vec) text file;
- spacy_vectors: the static vectors table of an installed spaCy package or pipeline folder.

A text is the whitespace tokens preprocess left; its feature vector is the mean of its known
words' vectors, or the SIF embedding (Arora, Liang and Ma 2017: each word weighed
a / (a + p(word)) by its train-split frequency, then the first principal component of the train
texts' embeddings projected out). A standardised logistic regression classifies it.

Saved without pickles, so the folder loads without running code and without gensim:

    models/model/
      nlpflow.json   family, labels, pooling, SIF's a, fasttext's n-gram sizes
      vectors.npy    float32 [words x dims]; row i is vocab.json's words[i]
      vocab.json     the words, and each word's count in the train split (SIF, reports)
      ngrams.npy     fasttext: the hashed character n-gram table (vectors of unseen words)
      sif_pc.npy     sif: the principal component removed
      head.skops     the scaler and logistic regression (nlpflow.training.families.sklearn_io)

Training is single-threaded (gensim workers=1) on purpose: gensim's threads race on shared
weights, so only one worker gives the same vectors on every run, and `nlpflow reproduce` and
`dvc repro` promise the same metrics. Word2Vec on MR's 8,530 train texts still takes seconds
(bench/embeddings.py). The initial weights come from numpy's generator seeded with train.seed,
not from Python's salted hash, so PYTHONHASHSEED does not matter (a test trains in two
processes with different hash seeds).
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nlpflow.config.params import EmbeddingsParams, TrainParams
from nlpflow.errors import ModelError, ParamsError
from nlpflow.training.families import XY, EpochCallback, load_manifest, save_manifest
from nlpflow.training.progress import TrainingProgress, log

FAMILY = "embeddings_logreg"
VECTORS_FILE = "vectors.npy"
VOCAB_FILE = "vocab.json"
NGRAMS_FILE = "ngrams.npy"
PC_FILE = "sif_pc.npy"
HEAD_FILE = "head.skops"


@dataclass
class WordVectors:
    """A word -> vector table, with fasttext's n-gram table for words outside it."""

    words: list[str]
    matrix: np.ndarray  # float32 [len(words) x dims]
    ngrams: np.ndarray | None = None  # fasttext: [buckets x dims]
    min_n: int = 3
    max_n: int = 6

    def __post_init__(self) -> None:
        self.index = {word: i for i, word in enumerate(self.words)}

    @property
    def dims(self) -> int:
        return int(self.matrix.shape[1])

    def vector(self, token: str) -> np.ndarray | None:
        """The token's vector: its own row, its lower-cased form's (GloVe and most spaCy
        tables are lower-case), fasttext's n-grams for an unseen word, else None."""
        row = self.index.get(token)
        if row is None:
            row = self.index.get(token.lower())
        if row is not None:
            return self.matrix[row]
        if self.ngrams is not None:
            return self._from_ngrams(token)
        return None

    def _from_ngrams(self, token: str) -> np.ndarray | None:
        # gensim's own hashing of <word>'s character n-grams, so the table trained by gensim
        # is read as gensim reads it (FastTextKeyedVectors.get_vector: their mean)
        from gensim.models.fasttext import ft_ngram_hashes

        assert self.ngrams is not None
        hashes = ft_ngram_hashes(token, self.min_n, self.max_n, len(self.ngrams))
        if not len(hashes):
            return None
        return np.asarray(self.ngrams[hashes].mean(axis=0), dtype=np.float32)


def compute_sif_weights(counts: dict[str, int], *, a: float) -> dict[str, float]:
    """a / (a + p(w)) for each counted word, p(w) its share of all counted tokens. Words never
    counted (not in the train split) weigh 1, as if p(w) were 0."""
    total = sum(counts.values())
    if total == 0:
        return {}
    return {word: a / (a + count / total) for word, count in counts.items()}


def compute_text_vectors(
    texts: Sequence[Sequence[str]],
    vectors: WordVectors,
    weights: dict[str, float] | None = None,
) -> np.ndarray:
    """One row per text: the (weighted) mean of its tokens' vectors over the tokens that have
    one; zeros for a text with none. float64, as scikit-learn keeps its input's precision."""
    out = np.zeros((len(texts), vectors.dims), dtype=np.float64)
    cache: dict[str, np.ndarray | None] = {}
    for i, tokens in enumerate(texts):
        total, known = np.zeros(vectors.dims, dtype=np.float64), 0
        for token in tokens:
            if token not in cache:
                cache[token] = vectors.vector(token)
            vector = cache[token]
            if vector is None:
                continue
            weight = 1.0 if weights is None else weights.get(token, 1.0)
            total += weight * vector
            known += 1  # SIF divides by the number of words, not by the weights' sum
        if known:
            out[i] = total / known
    return out


def compute_first_component(features: np.ndarray) -> np.ndarray:
    """The first right singular vector of the (uncentred) rows, as SIF removes it; its sign
    is irrelevant to the projection."""
    if not len(features) or not np.any(features):
        return np.zeros(features.shape[1])
    _, _, vt = np.linalg.svd(features, full_matrices=False)
    return np.asarray(vt[0])


def remove_component(features: np.ndarray, component: np.ndarray) -> np.ndarray:
    return features - np.outer(features @ component, component)


def tokenize(texts: Iterable[str]) -> list[list[str]]:
    """The words of processed texts: preprocess leaves tokens separated by single spaces."""
    return [text.split() for text in texts]


class EmbeddingsClassifier:
    family = FAMILY

    def __init__(
        self, vectors: WordVectors, head: Any, labels: list[str], *, counts: dict[str, int],
        pooling: str, sif_a: float, component: np.ndarray | None, source: str,
    ) -> None:  # fmt: skip
        self.vectors = vectors
        self.head = head
        self.labels = labels
        self.counts = counts
        self.pooling = pooling
        self.sif_a = sif_a
        self.component = component
        self.source = source
        self._weights = compute_sif_weights(counts, a=sif_a) if pooling == "sif" else None
        # sklearn orders classes itself; map its columns onto our label order.
        self._order = [list(head.classes_).index(label) for label in labels] if head else []

    def features(self, texts: Sequence[str]) -> np.ndarray:
        x = compute_text_vectors(tokenize(texts), self.vectors, self._weights)
        return remove_component(x, self.component) if self.component is not None else x

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        if not len(texts):  # scikit-learn rejects an empty batch; a server may send one
            return np.zeros((0, len(self.labels)))
        return np.asarray(self.head.predict_proba(self.features(texts)))[:, self._order]

    def vector_table(self) -> tuple[list[str], np.ndarray, dict[str, int]]:
        """The words, their vectors and their train-split counts (nlpflow.training.families.
        StaticVectors: evaluate reports the vectors' own quality from these)."""
        return self.vectors.words, self.vectors.matrix, self.counts

    def save(self, path: Path) -> None:
        from nlpflow.training.families.sklearn_io import save_sklearn

        extra: dict[str, Any] = {"source": self.source, "pooling": self.pooling,
                                 "sif_a": self.sif_a}  # fmt: skip
        if self.vectors.ngrams is not None:
            extra |= {"min_n": self.vectors.min_n, "max_n": self.vectors.max_n,
                      "requirements": ["gensim"]}  # fmt: skip  # its n-gram hashing
        save_manifest(path, family=FAMILY, labels=self.labels, extra=extra)
        np.save(path / VECTORS_FILE, self.vectors.matrix, allow_pickle=False)
        vocab = {"words": self.vectors.words, "counts": self.counts}
        (path / VOCAB_FILE).write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
        if self.vectors.ngrams is not None:
            np.save(path / NGRAMS_FILE, self.vectors.ngrams, allow_pickle=False)
        if self.component is not None:
            np.save(path / PC_FILE, self.component, allow_pickle=False)
        save_sklearn(self.head, path / HEAD_FILE)

    @classmethod
    def load(cls, path: Path) -> EmbeddingsClassifier:
        from nlpflow.training.families.sklearn_io import load_sklearn

        manifest = load_manifest(path)
        head = load_sklearn(path / HEAD_FILE)  # first: a refused file fails fast
        vocab = json.loads((path / VOCAB_FILE).read_text(encoding="utf-8"))
        ngrams = np.load(path / NGRAMS_FILE) if (path / NGRAMS_FILE).exists() else None
        vectors = WordVectors(
            vocab["words"], np.load(path / VECTORS_FILE), ngrams,
            min_n=manifest.get("min_n", 3), max_n=manifest.get("max_n", 6),
        )  # fmt: skip
        component = np.load(path / PC_FILE) if manifest["pooling"] == "sif" else None
        return cls(
            vectors, head, manifest["labels"], counts=vocab["counts"],
            pooling=manifest["pooling"], sif_a=manifest["sif_a"], component=component,
            source=manifest["source"],
        )  # fmt: skip


def load_vectors_folder(path: Path) -> WordVectors:
    """The vectors an embeddings_logreg model folder holds (train.spacy_*.vectors reads it)."""
    vocab = json.loads((path / VOCAB_FILE).read_text(encoding="utf-8"))
    return WordVectors(vocab["words"], np.load(path / VECTORS_FILE))


def load_static_vectors(spec: str, *, field: str) -> WordVectors:
    """The vectors `spec` names (params `field`): an embeddings_logreg model folder (the
    models/model of a run of that family), a GloVe or word2vec text file, or else an
    installed spaCy package or pipeline folder."""
    path = Path(spec)
    if (path / VECTORS_FILE).is_file() and (path / VOCAB_FILE).is_file():
        return load_vectors_folder(path)
    if path.is_file():
        return read_text_vectors(path, field=field)
    return read_spacy_vectors(spec, field=field)


def set_spacy_vectors(nlp: Any, vectors: WordVectors) -> None:
    """Make `vectors` the static vectors table of spaCy pipeline `nlp` (keyed by the token's
    text, as spaCy's own tables are): a tok2vec with pretrained_vectors reads them, and they are
    saved with the pipeline."""
    from spacy.vectors import Vectors

    nlp.vocab.vectors = Vectors(strings=nlp.vocab.strings, data=vectors.matrix, keys=vectors.words)


def read_text_vectors(
    file: Path, *, limit: int | None = None, field: str = "train.embeddings.vectors"
) -> WordVectors:
    """A GloVe text file (word and numbers, space-separated, a line), or a word2vec text file
    (the same after a `count size` header line); plain or .gz. The first `limit` lines only."""
    if not file.is_file():
        raise ParamsError(
            f"{file} is not a file (relative to {Path.cwd()}): give {field} as the path of a "
            "GloVe or word2vec text file."
        )
    words: list[str] = []
    rows: list[np.ndarray] = []
    seen: set[str] = set()
    gz = file.suffix == ".gz"
    with gzip.open(file, "rt", encoding="utf-8") if gz else file.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            parts = line.rstrip("\n").rstrip(" ").split(" ")
            if number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                continue  # word2vec's header
            if len(parts) < 2:
                continue  # a blank line
            try:
                row = np.asarray(parts[1:], dtype=np.float32)
            except ValueError:
                raise ModelError(
                    f"{file}:{number}: expected a word and numbers separated by spaces; found "
                    f"{line[:80]!r}"
                ) from None
            if rows and len(row) != len(rows[0]):
                raise ModelError(
                    f"{file}:{number}: {len(row)} numbers where the lines before had "
                    f"{len(rows[0])}; the file is damaged or mixes two tables."
                )
            if parts[0] in seen:  # GloVe's Common Crawl files repeat a few words: first wins
                continue
            seen.add(parts[0])
            words.append(parts[0])
            rows.append(row)
            if limit is not None and len(words) >= limit:
                break
    if not words:
        raise ModelError(f"{file} holds no vectors.")
    return WordVectors(words, np.vstack(rows))


def read_spacy_vectors(
    name: str, *, limit: int | None = None, field: str = "train.embeddings.vectors"
) -> WordVectors:
    """The static vectors of an installed spaCy package or a pipeline folder."""
    import spacy

    try:
        nlp = spacy.load(name, exclude=["tagger", "parser", "ner", "lemmatizer", "textcat"])
    except OSError as exc:
        raise ParamsError(
            f"{field}: {name!r} is neither a file nor a vectors folder, and spaCy cannot load "
            f"it ({exc}); give an existing path, or install the spaCy package (pip install "
            "en-core-web-md)."
        ) from None
    table = nlp.vocab.vectors
    if table.shape[0] == 0 or table.mode != "default":
        raise ParamsError(
            f"{field}: {name!r} has no static word vectors table (shape "
            f"{table.shape}, mode {table.mode}); en_core_web_sm has none: use en_core_web_md "
            "or en_core_web_lg."
        )
    words, rows = [], []
    for key, row in sorted(table.key2row.items(), key=lambda item: item[1]):
        if key in nlp.vocab.strings:
            words.append(nlp.vocab.strings[key])
            rows.append(row)
        if limit is not None and len(words) >= limit:
            break
    return WordVectors(words, np.asarray(table.data[rows], dtype=np.float32))


def train_vectors(tokens: list[list[str]], params: EmbeddingsParams, *, seed: int) -> WordVectors:
    """Word2Vec or FastText on the tokenised train texts (negative sampling, one worker)."""
    from gensim.models import FastText, Word2Vec

    common = dict(
        sentences=tokens, vector_size=params.vector_size, window=params.window,
        min_count=params.min_count, sg=int(params.algorithm == "skipgram"), hs=0,
        negative=params.negative, epochs=params.epochs, seed=seed, workers=1,
    )  # fmt: skip
    if params.source == "fasttext":
        model = FastText(**common, min_n=params.min_n, max_n=params.max_n, bucket=params.buckets)
        wv = model.wv
        return WordVectors(list(wv.index_to_key), np.asarray(wv.vectors, dtype=np.float32),
                           np.asarray(wv.vectors_ngrams, dtype=np.float32),
                           min_n=params.min_n, max_n=params.max_n)  # fmt: skip
    wv = Word2Vec(**common).wv
    return WordVectors(list(wv.index_to_key), np.asarray(wv.vectors, dtype=np.float32))


def build_vectors(tokens: list[list[str]], params: EmbeddingsParams, *, seed: int) -> WordVectors:
    """The vectors train.embeddings.source names."""
    if params.source == "glove_file":
        assert params.vectors is not None  # EmbeddingsParams requires it
        return read_text_vectors(Path(params.vectors), limit=params.max_vectors)
    if params.source == "spacy_vectors":
        assert params.vectors is not None
        return read_spacy_vectors(params.vectors, limit=params.max_vectors)
    counts = Counter(token for text in tokens for token in text)
    if not counts or max(counts.values()) < params.min_count:
        raise ModelError(
            f"no word of the train split occurs train.embeddings.min_count={params.min_count} "
            "times, so there is nothing to train vectors for: lower min_count or add rows."
        )
    return train_vectors(tokens, params, seed=seed)


def fit_embeddings(
    train: XY, validation: XY, *, labels: list[str], params: TrainParams,
    on_epoch: EpochCallback | None = None, on_step: EpochCallback | None = None,
    workdir: Path | None = None,
) -> EmbeddingsClassifier:  # fmt: skip
    """embeddings_logreg's registered fit: train.embeddings and train.seed (vectors, then one
    closed-form fit of the head: no steps, no checkpoints)."""
    import time

    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from nlpflow.training.families.tfidf import finish_fit, score_fit

    settings = params.embeddings
    progress = TrainingProgress(FAMILY)
    progress.begin(examples=len(train[0]))
    tokens = tokenize(train[0])
    started = time.perf_counter()
    vectors = build_vectors(tokens, settings, seed=params.seed)
    log.info(f"{settings.source}: {len(vectors.words)} vectors of {vectors.dims} dimensions in "
             f"{time.perf_counter() - started:.1f} s", extra={"nlpflow_progress": "vectors"})  # fmt: skip
    counts = dict(Counter(token for text in tokens for token in text))
    model = EmbeddingsClassifier(
        vectors, None, labels, counts=counts, pooling=settings.pooling, sif_a=settings.sif_a,
        component=None, source=settings.source,
    )  # fmt: skip
    x_train = model.features(train[0])
    if settings.pooling == "sif":
        model.component = compute_first_component(x_train)
        x_train = remove_component(x_train, model.component)
    # Standardised: vectors' scales differ by source and training, and one C should suit all.
    head = make_pipeline(
        StandardScaler(),
        LogisticRegression(C=settings.C, max_iter=settings.max_iter, random_state=params.seed),
    )
    head.fit(x_train, train[1])
    model = EmbeddingsClassifier(
        vectors, head, labels, counts=counts, pooling=settings.pooling, sif_a=settings.sif_a,
        component=model.component, source=settings.source,
    )  # fmt: skip
    splits = {"val": (model.features(validation[0]), validation[1])}
    if on_epoch is not None:
        splits = {"train": (x_train, train[1])} | splits
    finish_fit(progress, score_fit(head.predict, splits, labels), on_epoch)
    return model
