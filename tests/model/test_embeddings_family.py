"""embeddings_logreg: vectors that learn from shared contexts, the same vectors on every run
(whatever Python's hash seed), each source (Word2Vec, FastText, a GloVe file, a spaCy vectors
table) saved and reloaded to the same probabilities, and evaluate's report of the vectors.
The family's shared checks (overfit, batched, pyfunc) are in tests/model/test_families.py.

    .venv/bin/python -m pytest tests/model/test_embeddings_family.py -q
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nlpflow.config.params import EmbeddingsParams, TrainParams
from nlpflow.errors import ModelError
from nlpflow.evaluation.embeddings import write_embedding_report
from nlpflow.training.families import StaticVectors, load_model, predict_labels
from nlpflow.training.families.embeddings import read_text_vectors, tokenize, train_vectors
from nlpflow.training.train import fit

REPO = Path(__file__).resolve().parents[2]
# Pets and vehicles never share a sentence frame, nor a word of one: cat and dog fill the same
# slots, bus does not (and shares no character n-gram with either, so fasttext cannot cheat).
PETS, VEHICLES = ["cat", "dog"], ["bus", "truck"]
PET_FRAMES = ["my {} ate its food", "her {} sleeps on sofas", "that {} chased balls",
              "i fed his {} at night", "our {} purrs and barks"]  # fmt: skip
VEHICLE_FRAMES = ["this {} needs fuel", "we parked their {} outside", "each {} drove down roads",
                  "an old {} engine would not start", "they washed your {} on sunday"]  # fmt: skip
SMALL = EmbeddingsParams(min_count=1, vector_size=16, window=2, epochs=60, negative=3)


def corpus(seed: int = 0) -> list[list[str]]:
    rng = random.Random(seed)
    texts = [frame.format(word) for _ in range(15) for frame in PET_FRAMES for word in PETS]
    texts += [frame.format(word) for _ in range(15) for frame in VEHICLE_FRAMES
              for word in VEHICLES]  # fmt: skip
    rng.shuffle(texts)
    return tokenize(texts)


def cosine(vectors, a: str, b: str) -> float:
    x, y = vectors.vector(a), vectors.vector(b)
    return float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))


@pytest.mark.parametrize("source", ["word2vec", "fasttext"])
@pytest.mark.parametrize("algorithm", ["skipgram", "cbow"])
def test_words_of_shared_contexts_end_up_closer(source: str, algorithm: str) -> None:
    # many epochs: CBOW on 300 sentences leaves every vector alike after 60
    update = {"source": source, "algorithm": algorithm, "buckets": 2000, "epochs": 150}
    params = SMALL.model_copy(update=update)
    vectors = train_vectors(corpus(), params, seed=7)
    assert cosine(vectors, "cat", "dog") > cosine(vectors, "cat", "bus") + 0.2
    assert cosine(vectors, "bus", "truck") > cosine(vectors, "dog", "truck") + 0.2
    again = train_vectors(corpus(), params, seed=7)
    np.testing.assert_array_equal(again.matrix, vectors.matrix)  # one worker: deterministic


_TRAIN_IN_A_PROCESS = """
import hashlib, json, sys
from nlpflow.config.params import EmbeddingsParams
from nlpflow.training.families.embeddings import train_vectors
texts = json.loads(sys.stdin.read())
vectors = train_vectors(texts, EmbeddingsParams(min_count=1, vector_size=16, epochs=5), seed=3)
print(hashlib.sha256(vectors.matrix.tobytes()).hexdigest(), " ".join(vectors.words[:5]))
"""


@pytest.mark.subprocess
def test_python_hash_seed_does_not_change_the_vectors() -> None:
    # gensim 3 seeded each word's initial vector from Python's salted str hash; gensim 4 draws
    # them from numpy's generator. Were that to change back, reproduce would break: this fails.
    texts = json.dumps(corpus())
    outputs = set()
    for hash_seed in ("1", "2"):
        env = os.environ | {"PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(REPO / "src")}
        done = subprocess.run([sys.executable, "-c", _TRAIN_IN_A_PROCESS], input=texts,
                              capture_output=True, text=True, env=env, check=True)  # fmt: skip
        outputs.add(done.stdout.strip())
    assert len(outputs) == 1, outputs


def _sentiment(n: int, seed: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    words = {"pos": ["great", "wonderful", "moving", "funny"],
             "neg": ["dull", "awful", "tedious", "boring"]}  # fmt: skip
    filler = ["the", "film", "was", "a", "story", "and", "its", "cast"]
    texts, labels = [], []
    for _ in range(n):
        for label, cues in words.items():
            tokens = rng.sample(cues, 2) + rng.sample(filler, 4)
            rng.shuffle(tokens)
            texts.append(" ".join(tokens))
            labels.append(label)
    return texts, labels


def _fit(embeddings: EmbeddingsParams) -> tuple[object, tuple[list[str], list[str]]]:
    train = _sentiment(30, seed=0)
    params = TrainParams(family="embeddings_logreg", embeddings=embeddings)
    return fit(train, _sentiment(5, seed=1), labels=["neg", "pos"], params=params), train


def _reloads_identically(model, folder: Path, texts: list[str]) -> None:
    model.save(folder)
    reloaded = load_model(folder)
    np.testing.assert_array_equal(reloaded.predict_proba(texts), model.predict_proba(texts))


@pytest.mark.parametrize(
    "update", [{"pooling": "mean"}, {"pooling": "sif"}, {"source": "fasttext", "buckets": 2000}]
)
def test_overfits_then_reloads_to_the_same_probabilities(update: dict, tmp_path: Path) -> None:
    model, (texts, gold) = _fit(SMALL.model_copy(update=update))
    predicted, _ = predict_labels(model, texts)
    assert np.mean([p == g for p, g in zip(predicted, gold, strict=True)]) >= 0.95
    _reloads_identically(model, tmp_path / "model", [*texts, "unheard-of words only"])
    files = sorted(p.name for p in (tmp_path / "model").iterdir())
    assert not [f for f in files if f.endswith((".pkl", ".pickle", ".joblib"))], files
    assert ("sif_pc.npy" in files) == (model.pooling == "sif")  # type: ignore[attr-defined]


def test_fasttext_gives_unseen_words_gensims_own_vector(tmp_path: Path) -> None:
    from gensim.models import FastText

    params = SMALL.model_copy(update={"source": "fasttext", "buckets": 2000, "epochs": 5})
    ours = train_vectors(corpus(), params, seed=7)
    theirs = FastText(corpus(), vector_size=16, window=2, min_count=1, sg=1, negative=3,
                      epochs=5, seed=7, workers=1, bucket=2000).wv  # fmt: skip
    assert "kitten" not in ours.index
    np.testing.assert_allclose(ours.vector("kitten"), theirs.get_vector("kitten"), atol=1e-6)
    np.testing.assert_array_equal(ours.vector("cat"), theirs.get_vector("cat"))
    model, _ = _fit(params)
    model.save(tmp_path / "model")
    manifest = json.loads((tmp_path / "model" / "nlpflow.json").read_text())
    assert manifest["requirements"] == ["gensim"]  # serving hashes n-grams with it


GLOVE = """3 2
great 1.0 0.0
wonderful 0.9 0.1
awful -1.0 0.0
great 5 5
"""


def test_glove_file_is_read_header_and_repeats_skipped(tmp_path: Path) -> None:
    file = tmp_path / "glove.txt"
    file.write_text(GLOVE)
    vectors = read_text_vectors(file)
    assert vectors.words == ["great", "wonderful", "awful"]  # the repeated word: first wins
    np.testing.assert_array_equal(vectors.matrix[0], [1.0, 0.0])
    assert read_text_vectors(file, limit=2).words == ["great", "wonderful"]
    file.write_text("great 1.0 0.0\nawful -1.0\n")
    with pytest.raises(ModelError, match=r"glove.txt:2: 1 numbers where the lines before had 2"):
        read_text_vectors(file)


def test_glove_file_model_trains_and_reloads(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # train.embeddings.vectors is relative to the project
    Path("glove.txt").write_text(
        "\n".join(f"{w} {1 + i * 0.1} {0.5 - i * 0.1} 0.2" for i, w in enumerate(
            ["great", "wonderful", "moving", "funny"]))
        + "\n" + "\n".join(f"{w} {-1 - i * 0.1} {0.1 * i} -0.3" for i, w in enumerate(
            ["dull", "awful", "tedious", "boring"])) + "\n"
    )  # fmt: skip
    # mean pooling: these texts' vectors lie along one axis, the class's, which is the very
    # first principal component that SIF would remove
    glove = EmbeddingsParams(source="glove_file", vectors="glove.txt", C=10, pooling="mean")
    model, (texts, gold) = _fit(glove)
    predicted, _ = predict_labels(model, texts)
    assert predicted == gold  # the file's two directions are the classes
    _reloads_identically(model, tmp_path / "model", texts)
    assert json.loads((tmp_path / "model" / "nlpflow.json").read_text())["source"] == "glove_file"


def test_spacy_vectors_are_read_from_a_pipeline_folder(tmp_path: Path) -> None:
    import spacy

    nlp = spacy.blank("en")
    for i, word in enumerate(["great", "dull", "film"]):
        nlp.vocab.set_vector(word, np.array([i, 1.0, -i], dtype=np.float32))
    nlp.to_disk(tmp_path / "pipeline")
    model, _ = _fit(EmbeddingsParams(source="spacy_vectors", vectors=str(tmp_path / "pipeline")))
    words, matrix, _ = model.vector_table()  # type: ignore[attr-defined]
    assert sorted(words) == ["dull", "film", "great"]
    np.testing.assert_array_equal(matrix[words.index("dull")], [1, 1, -1])


def test_missing_pretrained_vectors_say_what_to_set() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"set train\.embeddings\.vectors"):
        EmbeddingsParams(source="glove_file")
    with pytest.raises(ValidationError, match="would be ignored"):
        EmbeddingsParams(source="word2vec", vectors="glove.txt")


def test_evaluate_reports_neighbours_similarity_and_projector_files(tmp_path: Path) -> None:
    model, _ = _fit(SMALL)
    assert isinstance(model, StaticVectors)
    out = tmp_path / "embeddings"
    summary = write_embedding_report(model, out, probes=["great", "unheard"])
    words, _, counts = model.vector_table()
    assert summary["vocab_size"] == len(words) == 16 and summary["vector_size"] == 16
    assert summary["neighbours"]["unheard"] == []
    great = summary["neighbours"]["great"]
    assert len(great) == 10 and "great" not in great
    # of the 58 shipped pairs only dull/boring and boring/tedious have both words here: too
    # few for a correlation
    assert (summary["word_sim_pairs"], summary["word_sim_total"]) == (2, 58)
    assert summary["word_sim_spearman"] is None
    metadata = (out / "projector" / "metadata.tsv").read_text().splitlines()
    vectors = np.loadtxt(out / "projector" / "vectors.tsv", delimiter="\t")
    assert metadata[0] == "word\tcount" and vectors.shape == (len(metadata) - 1, 16)
    first = metadata[1].split("\t")[0]
    assert int(metadata[1].split("\t")[1]) == max(counts.values()) == counts[first]
    np.testing.assert_allclose(vectors[0], model.vector_table()[1][words.index(first)], rtol=1e-5)
    assert (out / "projection.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = (out / "word_similarity.csv").read_text().splitlines()
    assert rows[0] == "word1,word2,score,cosine" and len(rows) == 59


def test_the_evaluate_stage_reports_the_vectors_and_forgets_them_for_another_family(
    tmp_path: Path,
) -> None:
    """evaluate() on the bundled sample: metrics.json and the report carry the vectors' figures,
    reports/evaluation/embeddings their files; a tf-idf model evaluated next leaves none."""
    import pandas as pd

    from nlpflow.config.params import EvaluateParams, PreprocessParams
    from nlpflow.evaluation.evaluate import evaluate
    from nlpflow.training.train import train
    from tests.conftest import SAMPLE

    frame = pd.read_csv(SAMPLE).assign(raw_text=lambda f: f["text"], text=lambda f: f["text"])
    processed = tmp_path / "processed"
    processed.mkdir()
    for split, rows in {"train": frame[:400], "validation": frame[400:450],
                        "test": frame[450:]}.items():  # fmt: skip
        rows.to_parquet(processed / f"{split}.parquet", index=False)
    out = tmp_path / "reports"

    def run(family: str) -> dict:
        params = TrainParams(family=family, embeddings=EmbeddingsParams(epochs=5))
        train(src=processed, dst=tmp_path / family, history_path=tmp_path / "history.csv",
              params=params, preprocess=PreprocessParams())  # fmt: skip
        report = evaluate(
            model_dir=tmp_path / family, src=processed, metrics_path=out / "metrics.json",
            plots_dir=out / "plots", out_dir=out / "evaluation",
            params=EvaluateParams(bootstrap_samples=100, probe_words=["refund", "zebra"]),
        )  # fmt: skip
        return {"report": report, "metrics": json.loads((out / "metrics.json").read_text())}

    first = run("embeddings_logreg")
    figures = first["metrics"]["embeddings"]
    assert figures["vocab_size"] == first["report"].embeddings["vocab_size"] > 100
    assert "neighbours" not in figures  # words, not numbers: the report and the folder hold them
    assert len(first["report"].embeddings["neighbours"]["refund"]) == 10
    assert first["report"].embeddings["neighbours"]["zebra"] == []
    tracked = first["report"].tracked_metrics()
    assert tracked["embeddings/vocab_size"] == figures["vocab_size"]
    folder = out / "evaluation" / "embeddings"
    assert {p.name for p in folder.iterdir()} == {
        "neighbours.json", "word_similarity.csv", "projection.png", "projector"
    }  # fmt: skip
    second = run("tfidf_logreg")
    assert "embeddings" not in second["metrics"] and second["report"].embeddings == {}
    assert not folder.exists()  # the earlier model's vectors must not pass for this one's
