"""train.spacy_textcat.vectors and train.spacy_ner.vectors: the spaCy families start from static
word vectors (an embeddings_logreg model folder, or a word2vec text file), read them through
their tok2vec, and carry them in the saved pipeline.

    .venv/bin/python -m pytest tests/model/test_spacy_static_vectors.py -q
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from nlpflow.config.params import EmbeddingsParams, TrainParams
from nlpflow.config.sections.families import SpacyNerParams, SpacyTextcatParams
from nlpflow.training.families import load_model
from nlpflow.training.families.embeddings import WordVectors, set_spacy_vectors
from nlpflow.training.train import fit

CUES = {"pos": ["great", "wonderful", "moving", "funny"],
        "neg": ["dull", "awful", "tedious", "boring"]}  # fmt: skip
FILLER = ["the", "film", "was", "a", "story", "and", "its", "cast"]


def reviews(n: int, seed: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    texts, labels = [], []
    for _ in range(n):
        for label, cues in CUES.items():
            tokens = rng.sample(cues, 2) + rng.sample(FILLER, 4)
            rng.shuffle(tokens)
            texts.append(" ".join(tokens))
            labels.append(label)
    return texts, labels


@pytest.fixture(scope="module")
def vectors_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An embeddings_logreg model folder: 16-dimensional Word2Vec vectors of the 16 words."""
    params = TrainParams(
        family="embeddings_logreg",
        embeddings=EmbeddingsParams(min_count=1, vector_size=16, epochs=20),
    )
    model = fit(reviews(20, 0), reviews(4, 1), labels=["neg", "pos"], params=params)
    folder = tmp_path_factory.mktemp("embeddings") / "model"
    model.save(folder)
    return folder


def test_textcat_reads_the_vectors_and_saves_them(vectors_folder: Path, tmp_path: Path) -> None:
    settings = SpacyTextcatParams(architecture="cnn", vectors=str(vectors_folder), epochs=3,
                                  patience=3, batch_size=8, width=32, embed_size=500)  # fmt: skip
    texts = reviews(20, 0)[0]
    model = fit(reviews(20, 0), reviews(4, 1), labels=["neg", "pos"],
                params=TrainParams(family="spacy_textcat", spacy_textcat=settings))  # fmt: skip
    nlp = model.nlp  # type: ignore[attr-defined]
    assert nlp.vocab.vectors.shape == (16, 16)
    tok2vec = nlp.config["components"]["textcat"]["model"]["tok2vec"]
    assert tok2vec["pretrained_vectors"] is True
    model.save(tmp_path / "model")
    reloaded = load_model(tmp_path / "model")
    assert reloaded.nlp.vocab.vectors.shape == (16, 16)  # type: ignore[attr-defined]
    np.testing.assert_allclose(reloaded.predict_proba(texts), model.predict_proba(texts), atol=1e-6)
    # the tok2vec really reads them: other vectors, other probabilities
    before = model.predict_proba(texts)
    words = [nlp.vocab.strings[key] for key in nlp.vocab.vectors]
    set_spacy_vectors(nlp, WordVectors(words, np.zeros((16, 16), np.float32)))
    assert np.abs(model.predict_proba(texts) - before).max() > 1e-3


def test_ner_reads_a_word2vec_text_file(vectors_folder: Path, tmp_path: Path) -> None:
    vocab = (vectors_folder / "vocab.json").read_text()
    import json

    words = json.loads(vocab)["words"]
    matrix = np.load(vectors_folder / "vectors.npy")
    file = tmp_path / "vectors.txt"
    lines = [f"{len(words)} 16"] + [
        w + " " + " ".join(f"{v:.6f}" for v in row) for w, row in zip(words, matrix, strict=True)
    ]
    file.write_text("\n".join(lines) + "\n")
    rng = random.Random(0)
    sentences, tags = [], []
    for _ in range(20):
        cue = rng.choice(CUES["pos"])
        sentences.append(["the", "film", cue, "story"])
        tags.append(["O", "B-WORK", "O", "O"])
    settings = SpacyNerParams(vectors=str(file), epochs=2, patience=2, batch_size=8)
    params = TrainParams(family="spacy_ner", spacy_ner=settings)
    labels = ["O", "B-WORK", "I-WORK"]
    model = fit((sentences, tags), (sentences[:4], tags[:4]), labels=labels, params=params)
    assert model.nlp.vocab.vectors.shape == (16, 16)  # type: ignore[attr-defined]
    assert model.nlp.vocab["great"].has_vector  # type: ignore[attr-defined]
    model.save(tmp_path / "model")
    reloaded = load_model(tmp_path / "model")
    assert reloaded.nlp.vocab.vectors.shape == (16, 16)  # type: ignore[attr-defined]
    assert reloaded.predict_tags(sentences[:3]) == model.predict_tags(sentences[:3])  # type: ignore[attr-defined]


def test_vectors_where_no_tok2vec_reads_them_are_refused() -> None:
    with pytest.raises(ValidationError, match=r"set train\.spacy_textcat\.architecture to cnn"):
        SpacyTextcatParams(vectors="vectors.txt")  # bow
    with pytest.raises(ValidationError, match="not both"):
        SpacyNerParams(vectors="vectors.txt", base="en_core_web_sm")
