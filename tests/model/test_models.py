"""Model behaviour: overfit-then-reload, batched equals unbatched, seeded determinism."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nlpflow.config.params import TfidfParams, TrainParams
from nlpflow.training.families import load_model, predict_labels
from nlpflow.training.train import fit
from tests.conftest import SAMPLE


@pytest.fixture(scope="module")
def sample() -> tuple[list[str], list[str]]:
    frame = pd.read_csv(SAMPLE)
    return frame["text"].tolist(), frame["label"].tolist()


def _subset(xy: tuple[list[str], list[str]], n: int) -> tuple[list[str], list[str]]:
    return xy[0][:n], xy[1][:n]


def test_tfidf_overfits_then_reloads_identically(sample, tmp_path: Path) -> None:
    labels = sorted(set(sample[1]))
    params = TrainParams(family="tfidf_logreg", tfidf=TfidfParams(C=100.0))
    model = fit(sample, _subset(sample, 50), labels=labels, params=params)
    predicted, proba = predict_labels(model, sample[0])
    train_acc = np.mean([p == g for p, g in zip(predicted, sample[1], strict=True)])
    assert train_acc > 0.98  # a weakly regularised model must memorise its training data
    model.save(tmp_path / "m")
    reloaded = load_model(tmp_path / "m")
    assert reloaded.labels == labels
    np.testing.assert_allclose(reloaded.predict_proba(sample[0]), proba, rtol=0, atol=1e-12)


def test_tfidf_probability_columns_follow_label_order(sample) -> None:
    # labels deliberately not in sklearn's sorted order
    labels = ["technical", "account", "shipping", "billing"]
    model = fit(
        sample, _subset(sample, 20), labels=labels, params=TrainParams(family="tfidf_logreg")
    )
    texts = [
        "the package never arrived and tracking shows nothing",
        "I was charged twice on my card",
    ]
    predicted, proba = predict_labels(model, texts)
    assert predicted == ["shipping", "billing"]
    assert proba.shape == (2, 4)
    assert [labels[i] for i in proba.argmax(axis=1)] == predicted


@pytest.fixture(scope="module")
def tiny_trained(sample, tiny_encoder: Path, tmp_path_factory: pytest.TempPathFactory):
    labels = sorted(set(sample[1]))
    train = _subset(sample, 200)
    params = TrainParams(
        family="transformer", pretrained=str(tiny_encoder), epochs=8, batch_size=16, lr=3e-3,
        max_length=48, early_stopping_patience=8,
        # length-grouped batches of 200 texts hold few classes each and learn more slowly
        group_by_length=False,
    )  # fmt: skip
    history: list[tuple[int, dict[str, float]]] = []
    model = fit(
        train, train, labels=labels, params=params, on_epoch=lambda e, s: history.append((e, s))
    )
    folder = tmp_path_factory.mktemp("tiny-model")
    model.save(folder)
    return model, folder, train, history, params


def test_transformer_overfits_small_data(tiny_trained) -> None:
    model, _, train, history, _ = tiny_trained
    predicted, _ = predict_labels(model, train[0])
    accuracy = np.mean([p == g for p, g in zip(predicted, train[1], strict=True)])
    assert accuracy > 0.9, accuracy  # validated on its own train data: it must fit it
    # one report per epoch, with train loss and validation metrics, loss going down
    assert [e for e, _ in history] == list(range(1, len(history) + 1))
    assert {"train_loss", "val_loss", "val_accuracy", "val_macro_f1"} <= set(history[0][1])
    assert history[-1][1]["train_loss"] < history[0][1]["train_loss"]


def test_transformer_reload_gives_same_probabilities(tiny_trained) -> None:
    model, folder, train, _, _ = tiny_trained
    reloaded = load_model(folder)
    assert reloaded.labels == model.labels
    np.testing.assert_allclose(
        reloaded.predict_proba(train[0][:40]), model.predict_proba(train[0][:40]), atol=1e-5
    )


def test_transformer_batched_equals_unbatched(tiny_trained) -> None:
    model, _, train, _, _ = tiny_trained
    texts = train[0][:12]
    batched = model.predict_proba(texts, batch_size=12)
    one_by_one = np.vstack([model.predict_proba([t], batch_size=1) for t in texts])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)


def test_transformer_training_is_seeded(sample, tiny_encoder: Path) -> None:
    labels = sorted(set(sample[1]))
    train = _subset(sample, 64)
    params = TrainParams(
        family="transformer", pretrained=str(tiny_encoder), epochs=1, lr=1e-3, max_length=32
    )
    first = fit(train, train, labels=labels, params=params).predict_proba(train[0])
    again = fit(train, train, labels=labels, params=params).predict_proba(train[0])
    other = fit(
        train, train, labels=labels, params=params.model_copy(update={"seed": 99})
    ).predict_proba(train[0])
    np.testing.assert_allclose(first, again, atol=1e-6)
    assert np.abs(first - other).max() > 1e-4


def test_early_stopping_stops_before_max_epochs(sample, tiny_encoder: Path) -> None:
    labels = sorted(set(sample[1]))
    # lr 0 -> validation macro-F1 never improves after epoch 1, so patience 1 stops at epoch 2
    params = TrainParams(
        family="transformer", pretrained=str(tiny_encoder), epochs=6, lr=1e-12, max_length=32,
        early_stopping_patience=1, warmup_ratio=0.0,
    )  # fmt: skip
    epochs: list[int] = []
    fit(_subset(sample, 64), _subset(sample, 32), labels=labels, params=params,
        on_epoch=lambda e, s: epochs.append(e))  # fmt: skip
    assert epochs == [1, 2]


def test_unknown_pretrained_encoder_is_a_clear_error(sample, tmp_path: Path) -> None:
    from nlpflow.errors import ModelError

    params = TrainParams(family="transformer", pretrained=str(tmp_path / "no-such-model"))
    with pytest.raises(ModelError, match="cannot load pretrained encoder"):
        fit(_subset(sample, 8), _subset(sample, 4), labels=sorted(set(sample[1])), params=params)
    with pytest.raises(ModelError, match="not installed"):
        fit(_subset(sample, 8), _subset(sample, 4), labels=sorted(set(sample[1])),
            params=TrainParams(pretrained="pkg:no_such_package_xyz"))  # fmt: skip


def test_transformer_reports_throughput_and_mfu(tiny_trained) -> None:
    import torch

    from nlpflow.training.perf import training_flops_per_token

    model = tiny_trained[0]
    perf = model.perf
    assert perf["tokens_per_second"] > 0 and perf["examples_per_second"] > 0
    seq = perf["tokens_per_second"] / perf["examples_per_second"]  # mean real length
    hidden, layers = model.model.config.hidden_size, model.model.config.num_hidden_layers
    attention = 12 * layers * hidden * seq  # every layer trained: PaLM's attention term
    assert perf["train_flops_per_second"] == pytest.approx(
        perf["tokens_per_second"] * (training_flops_per_token(model.model) + attention)
    )
    assert perf["mfu"] == pytest.approx(
        perf["train_flops_per_second"] / perf["matmul_flops_per_second"]
    )
    assert 0 < perf["mfu"] < 1.0  # a tiny model cannot beat a dense matmul
    assert perf["peak_memory_mb"] > 50
    assert model.device["torch"] == torch.__version__ and model.device["device"] == "cpu"


def test_freezing_trains_only_the_head_and_last_layers(tiny_encoder: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    from nlpflow.errors import ModelError
    from nlpflow.training.families.transformer import freeze_encoder
    from nlpflow.training.perf import training_flops_per_token

    def trainable(k: int | None) -> set[str]:
        model = AutoModelForSequenceClassification.from_pretrained(tiny_encoder)
        freeze_encoder(model, k)
        return {n for n, p in model.named_parameters() if p.requires_grad}

    head = {"classifier.weight", "classifier.bias"}
    pooler = {"bert.pooler.dense.weight", "bert.pooler.dense.bias"}
    assert trainable(0) == head | pooler
    last = trainable(1) - head - pooler
    assert last and all(n.startswith("bert.encoder.layer.1.") for n in last)
    everything = trainable(None)
    assert any(n.startswith("bert.embeddings.") for n in everything)
    with pytest.raises(ModelError, match="has 2 layers"):
        trainable(3)
    # FLOPs: 2 per weight forward (embeddings excluded), 4 more for the weights that train
    model = AutoModelForSequenceClassification.from_pretrained(tiny_encoder)
    n_all = sum(
        p.numel() for n, p in model.named_parameters() if not n.endswith("_embeddings.weight")
    )
    n_head = sum(p.numel() for n, p in model.named_parameters() if n in head | pooler)
    freeze_encoder(model, 0)
    assert training_flops_per_token(model) == 2 * n_all + 4 * n_head


def test_without_validation_each_epoch_still_reports_its_train_loss(
    sample, tiny_encoder: Path
) -> None:
    labels = sorted(set(sample[1]))
    params = TrainParams(
        family="transformer", pretrained=str(tiny_encoder), epochs=3, batch_size=8,
        max_length=32, log_every_steps=3,  # 8 steps an epoch: no log falls on an epoch's end
    )  # fmt: skip
    reports: list[tuple[int, dict[str, float]]] = []
    model = fit(_subset(sample, 64), ([], []), labels=labels, params=params,
                on_epoch=lambda e, s: reports.append((e, s)))  # fmt: skip
    assert [e for e, _ in reports] == [1, 2, 3]
    assert all(set(s) == {"train_loss"} and s["train_loss"] > 0 for _, s in reports)
    assert [row["train_loss"] for row in model.history] == [s["train_loss"] for _, s in reports]


# --- persistence that runs no code on load (skops, nlpflow's allow-list)


class _Payload:
    """What an attacker pickles: unpickling it calls os.system, which writes the marker."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return os.system, (f"touch {self.marker}",)


@pytest.fixture()
def saved_tfidf(sample, tmp_path: Path) -> tuple[Path, np.ndarray]:
    labels = sorted(set(sample[1]))
    model = fit(sample, ([], []), labels=labels, params=TrainParams(family="tfidf_logreg"))
    model.save(tmp_path / "m")
    return tmp_path / "m", model.predict_proba(sample[0])


def test_sklearn_models_are_saved_as_skops_and_round_trip(saved_tfidf, sample) -> None:
    folder, proba = saved_tfidf
    assert sorted(p.name for p in folder.iterdir()) == ["nlpflow.json", "pipeline.skops"]
    np.testing.assert_array_equal(load_model(folder).predict_proba(sample[0]), proba)


def test_a_pickle_in_place_of_the_model_is_never_unpickled(
    saved_tfidf, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import joblib

    from nlpflow.errors import ModelError

    folder, _ = saved_tfidf
    marker = tmp_path / "ran"
    (folder / "pipeline.skops").unlink()  # an old model folder, or a swapped file
    joblib.dump(_Payload(marker), folder / "pipeline.joblib")
    monkeypatch.delenv("NLPFLOW_TRUST_PICKLES", raising=False)
    with pytest.raises(ModelError, match=r"is a pickle .* set NLPFLOW_TRUST_PICKLES=1"):
        load_model(folder)
    assert not marker.exists()
    # the same pickle renamed .skops is not a skops file: refused, not run
    (folder / "pipeline.joblib").rename(folder / "pipeline.skops")
    with pytest.raises(ModelError, match="not a readable skops file"):
        load_model(folder)
    assert not marker.exists()
    # only the explicit opt-in loads a legacy pickle (and so runs it: that is what it means)
    (folder / "pipeline.skops").rename(folder / "pipeline.joblib")
    monkeypatch.setenv("NLPFLOW_TRUST_PICKLES", "1")
    with pytest.raises(Exception):  # noqa: B017 - os.system's return is not a pipeline
        load_model(folder)
    assert marker.exists()


def test_a_skops_file_naming_a_foreign_type_is_refused(saved_tfidf, tmp_path: Path) -> None:
    """A tampered file: its schema points at a function skops would call to rebuild an object."""
    import zipfile

    from nlpflow.errors import ModelError

    folder, _ = saved_tfidf
    path = folder / "pipeline.skops"
    with zipfile.ZipFile(path) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    schema = json.loads(files["schema.json"])
    schema["__module__"], schema["__class__"] = "os", "system"  # the top object: os.system
    files["schema.json"] = json.dumps(schema).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    with pytest.raises(ModelError, match=r"refusing to load .*pipeline.skops: .*os\.system"):
        load_model(folder)


def _double(x: np.ndarray) -> np.ndarray:
    return x * 2


def test_saving_an_object_outside_the_allow_list_fails_at_save(tmp_path: Path) -> None:
    from sklearn.preprocessing import FunctionTransformer

    from nlpflow.errors import ModelError
    from nlpflow.training.families.sklearn_io import save_sklearn

    with pytest.raises(ModelError, match="which nlpflow's loader does not trust"):
        save_sklearn(FunctionTransformer(func=_double), tmp_path / "f.skops")
    assert not (tmp_path / "f.skops").exists()


def test_the_same_model_saves_to_the_same_bytes(sample, tmp_path: Path) -> None:
    """skops names files by memory address and stamps times: nlpflow's files must not differ
    for an identical retrain (DVC, fingerprints and register's upload check compare bytes)."""
    import time

    labels = sorted(set(sample[1]))
    params = TrainParams(family="tfidf_linear_svm")
    first = fit(sample, ([], []), labels=labels, params=params)
    first.save(tmp_path / "a")
    time.sleep(2.1)  # zip times have a 2 s resolution
    again = fit(sample, ([], []), labels=labels, params=params)
    again.save(tmp_path / "b")
    assert (tmp_path / "a/pipeline.skops").read_bytes() == (
        tmp_path / "b/pipeline.skops"
    ).read_bytes()
    np.testing.assert_array_equal(
        load_model(tmp_path / "b").predict_proba(sample[0]), again.predict_proba(sample[0])
    )
