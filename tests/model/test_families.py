"""The model families added beside tfidf_logreg and transformer: each must learn an easy task,
reload to the same probabilities, report epochs, and serve raw text through the MLflow pyfunc."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nlpflow.config import params as config
from nlpflow.config.params import (
    FAMILY_SECTIONS,
    EmbeddingsParams,
    FrozenParams,
    PreprocessParams,
    SpacyTextcatParams,
    SvmParams,
    TrainParams,
)
from nlpflow.errors import ModelError
from nlpflow.training.families import family_code, load_model, predict_labels, update_manifest
from nlpflow.training.train import fit

FAMILIES = ("tfidf_linear_svm", "transformer_frozen", "spacy_textcat", "embeddings_logreg")
# Words that are whole tokens of the tiny encoder's vocabulary (built from the ticket sample), so
# its random embeddings still tell the classes apart.
KEYWORDS = {
    "billing": ["charged", "refund", "invoice", "payment", "card", "twice"],
    "shipping": ["package", "delivery", "tracking", "arrived", "order", "parcel"],
    "technical": ["crashes", "error", "upload", "app", "code", "photo"],
}
FILLER = ["the", "my", "is", "and", "please", "help", "today", "again", "still", "we"]
LABELS = sorted(KEYWORDS)


def make_texts(n_per_label: int, seed: int) -> tuple[list[str], list[str]]:
    """Two keywords of the label among three filler words, shuffled: separable by keywords."""
    rng = random.Random(seed)
    texts, gold = [], []
    for _ in range(n_per_label):
        for label, words in KEYWORDS.items():
            tokens = rng.sample(words, 2) + rng.sample(FILLER, 3)
            rng.shuffle(tokens)
            texts.append(" ".join(tokens))
            gold.append(label)
    return texts, gold


def family_params(family: str, encoder: Path) -> TrainParams:
    """Weakly regularised, few epochs: enough to fit the synthetic task in seconds."""
    return TrainParams(
        family=family,  # type: ignore[arg-type]
        pretrained=str(encoder), max_length=32, epochs=1, batch_size=16, lr=1e-3,
        svm=SvmParams(C=10.0, calibration_folds=3),
        frozen=FrozenParams(C=10.0, batch_size=8),
        spacy_textcat=SpacyTextcatParams(epochs=8, patience=8, batch_size=8),
        # every word of the tiny corpus gets a vector; short vectors train in milliseconds
        embeddings=EmbeddingsParams(min_count=1, vector_size=16, epochs=20, C=10.0),
    )  # fmt: skip


@pytest.fixture(scope="module", params=FAMILIES)
def trained(request: pytest.FixtureRequest, tiny_encoder: Path, tmp_path_factory):
    family = request.param
    train, validation = make_texts(20, seed=0), make_texts(8, seed=1)
    history: list[tuple[int, dict[str, float]]] = []
    model = fit(
        train, validation, labels=LABELS, params=family_params(family, tiny_encoder),
        on_epoch=lambda epoch, scores: history.append((epoch, scores)),
    )  # fmt: skip
    folder = tmp_path_factory.mktemp(family) / "model"
    model.save(folder)
    return family, model, folder, train, history


def test_overfits_then_reloads_identically(trained) -> None:
    family, model, folder, train, _ = trained
    predicted, proba = predict_labels(model, train[0])
    accuracy = np.mean([p == g for p, g in zip(predicted, train[1], strict=True)])
    assert accuracy >= 0.9, (family, accuracy)
    reloaded = load_model(folder)
    assert (reloaded.family, reloaded.labels) == (family, LABELS)
    np.testing.assert_allclose(reloaded.predict_proba(train[0]), proba, rtol=0, atol=1e-6)


def test_generalises_to_unseen_combinations(trained) -> None:
    family, model, _, _, _ = trained
    unseen = make_texts(10, seed=2)
    predicted, _ = predict_labels(model, unseen[0])
    accuracy = np.mean([p == g for p, g in zip(predicted, unseen[1], strict=True)])
    assert accuracy >= 0.8, (family, accuracy)


def test_probabilities_sum_to_one_in_label_order(trained) -> None:
    _, model, _, _, _ = trained
    # unseen sentences, though of the training words: the tiny encoder knows no others
    texts = ["my card is charged twice", "please the parcel arrived", "the app crashes again"]
    proba = model.predict_proba(texts)
    assert proba.shape == (3, len(LABELS))
    assert (proba >= 0).all() and (proba <= 1).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    assert [LABELS[i] for i in proba.argmax(axis=1)] == ["billing", "shipping", "technical"]
    assert model.predict_proba([]).shape == (0, len(LABELS))


def test_batched_equals_unbatched(trained) -> None:
    family, model, _, train, _ = trained
    # Texts of different lengths, so batches of the frozen encoder (8 texts) carry padding.
    texts = [*train[0][:10], "help", "my package is still not here and the tracking shows nothing"]
    together = model.predict_proba(texts)
    one_by_one = np.vstack([model.predict_proba([t]) for t in texts])
    np.testing.assert_allclose(together, one_by_one, rtol=0, atol=1e-5, err_msg=family)


def test_on_epoch_reports_validation_metrics(trained) -> None:
    family, _, _, _, history = trained
    epochs = [epoch for epoch, _ in history]
    assert epochs == list(range(1, len(epochs) + 1))
    assert all({"val_accuracy", "val_macro_f1"} <= set(scores) for _, scores in history)
    assert history[-1][1]["val_accuracy"] >= 0.8, history[-1]
    if family == "spacy_textcat":  # a real epoch loop: several epochs, loss going down
        assert len(history) == 8
        assert history[-1][1]["train_loss"] < history[0][1]["train_loss"]
    else:  # a closed-form fit reports once, with its training scores
        assert len(history) == 1 and history[0][1]["train_accuracy"] >= 0.9


def test_pyfunc_serves_raw_text(trained, tmp_path: Path) -> None:
    """Raw text goes through the recorded preprocess params, then the family's model."""
    import shutil

    import mlflow.pyfunc

    from nlpflow.data.preprocess import TextPreprocessor
    from nlpflow.serving.pyfunc import MODEL_ARTIFACT, TextClassifierModel, predict_frame

    family, model, folder, _, _ = trained
    served_dir = tmp_path / "model"
    shutil.copytree(folder, served_dir)
    preprocess = PreprocessParams(lowercase=True, remove_punctuation=True)
    update_manifest(served_dir, preprocess=preprocess.model_dump())
    mlflow.pyfunc.save_model(
        tmp_path / "pyfunc", python_model=TextClassifierModel(), pip_requirements=[],
        artifacts={MODEL_ARTIFACT: str(served_dir)},
    )  # fmt: skip
    raw = [
        "My CARD is Charged TWICE!! https://example.com/invoice/9",
        "Please: the PARCEL arrived again... jane@example.com",
        "The App CRASHES, upload ERROR again",
    ]
    served = mlflow.pyfunc.load_model(str(tmp_path / "pyfunc")).predict(pd.DataFrame({"text": raw}))
    assert served["label"].tolist() == ["billing", "shipping", "technical"], family
    assert list(served.columns) == ["label", "score", *(f"proba_{label}" for label in LABELS)]
    local = predict_frame(model, TextPreprocessor(preprocess), raw)
    pd.testing.assert_frame_equal(served.reset_index(drop=True), local, atol=1e-6)


def test_every_family_in_params_trains_saves_and_loads(tiny_encoder: Path, tmp_path: Path) -> None:
    """A family registered with a fit or a class its module lacks, or a section TrainParams
    lacks, fails here."""
    families = [f.name for f in config.FAMILIES.values() if f.serves("text-classification")]
    assert families == [
        "tfidf_logreg", "tfidf_linear_svm", "transformer", "transformer_frozen", "spacy_textcat",
        "embeddings_logreg",
        "rules",
    ]  # fmt: skip
    assert set(FAMILY_SECTIONS) <= set(TrainParams.model_fields)
    # every family, of any task (token-classification's train in tests/model/test_ner_families)
    for name in config.FAMILIES:
        fit_family, model_class = family_code(name)
        assert callable(fit_family) and callable(model_class.load), name
    train = make_texts(4, seed=0)
    for family in families[:-1]:  # rules reads a file, not the data: tests/model/test_rules_family
        model = fit(train, train, labels=LABELS, params=family_params(family, tiny_encoder))
        assert model.family == family
        model.save(tmp_path / family)
        reloaded = load_model(tmp_path / family)
        assert (reloaded.family, reloaded.labels) == (family, LABELS)
        np.testing.assert_allclose(
            reloaded.predict_proba(train[0]), model.predict_proba(train[0]), atol=1e-5
        )


def test_spacy_textcat_stops_early_and_keeps_the_best_epoch(tmp_path: Path) -> None:
    # Validation labels no model can learn: macro-F1 stops improving, so patience 2 ends
    # training two epochs after the best one, and the saved weights are that epoch's.
    train = make_texts(10, seed=0)
    noise = make_texts(4, seed=3)
    validation = (noise[0], random.Random(0).sample(noise[1], len(noise[1])))
    history: list[dict[str, float]] = []
    params = TrainParams(
        family="spacy_textcat", spacy_textcat=SpacyTextcatParams(epochs=30, patience=2)
    )
    model = fit(train, validation, labels=LABELS, params=params,
                on_epoch=lambda epoch, scores: history.append(scores))  # fmt: skip
    f1 = [scores["val_macro_f1"] for scores in history]
    best = int(np.argmax(f1))
    assert len(history) == best + 3 < 30
    predicted, _ = predict_labels(model, validation[0])
    kept = np.mean([p == g for p, g in zip(predicted, validation[1], strict=True)])
    assert kept == pytest.approx(history[best]["val_accuracy"])


def test_linear_svm_needs_two_training_rows_per_label() -> None:
    train = (["my card was charged", "the parcel arrived", "the app crashes"], LABELS)
    with pytest.raises(ModelError, match="at least 2 training rows"):
        fit(train, train, labels=LABELS, params=TrainParams(family="tfidf_linear_svm"))
