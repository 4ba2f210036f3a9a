"""register.quantize=dynamic_int8: the served transformer's Linear layers run in int8.

The tiny random BERT of the fixture stands in for MiniLM; bench/serve.py measures accuracy and
latency of the real model."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.conftest import SAMPLE

TEXTS = pd.read_csv(SAMPLE)["text"].tolist()[:40]


@pytest.fixture(scope="module")
def tiny_model_dir(tiny_encoder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture's random 2-label BERT saved as an nlpflow transformer model folder."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from nlpflow.config.params import PreprocessParams
    from nlpflow.training.families import update_manifest
    from nlpflow.training.families.transformer import TransformerClassifier

    folder = tmp_path_factory.mktemp("tiny-transformer")
    model = TransformerClassifier(
        AutoModelForSequenceClassification.from_pretrained(tiny_encoder),
        AutoTokenizer.from_pretrained(tiny_encoder), labels=["neg", "pos"], max_length=64,
    )  # fmt: skip
    model.save(folder)
    update_manifest(folder, preprocess=PreprocessParams().model_dump())
    return folder


def _linear_kinds(module: Any) -> set[str]:
    import torch
    from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear

    kinds = set()
    for layer in module.modules():
        if isinstance(layer, DynamicQuantizedLinear):
            kinds.add("int8")
        elif isinstance(layer, torch.nn.Linear):
            kinds.add("fp32")
    return kinds


def test_int8_replaces_every_linear_and_stays_close(tiny_model_dir: Path) -> None:
    import torch

    from nlpflow.serving.quantize import apply_quantization
    from nlpflow.training.families import load_model

    fp32, int8 = load_model(tiny_model_dir), load_model(tiny_model_dir)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert apply_quantization(int8, "dynamic_int8") is True
    # torch's two deprecation warnings about torch.ao quantization are expected and silenced
    assert not [w for w in caught if "quantiz" in str(w.message)], [str(w.message) for w in caught]
    assert _linear_kinds(fp32.model) == {"fp32"}
    assert _linear_kinds(int8.model) == {"int8"}
    schemes = {layer.weight().qscheme() for layer in int8.model.modules() if hasattr(layer, "weight")
               and callable(layer.weight)}  # fmt: skip
    assert schemes == {torch.per_channel_affine}  # per channel: fewer labels changed on MR
    expected, got = fp32.predict_proba(TEXTS), int8.predict_proba(TEXTS)
    difference = np.abs(expected - got).max()
    assert 0 < difference < 0.02  # int8 really ran, and moved the probabilities only a little
    np.testing.assert_allclose(got.sum(axis=1), 1, atol=1e-5)


def test_none_and_other_families_are_left_alone(tiny_model_dir: Path, tmp_path: Path) -> None:
    from nlpflow.config.params import TrainParams
    from nlpflow.errors import ModelError
    from nlpflow.serving.quantize import apply_quantization
    from nlpflow.training.families import load_model
    from nlpflow.training.train import fit

    model = load_model(tiny_model_dir)
    assert apply_quantization(model, "none") is False
    assert _linear_kinds(model.model) == {"fp32"}
    tfidf = fit((TEXTS, ["a", "b"] * 20), ([], []), labels=["a", "b"],
                params=TrainParams(family="tfidf_logreg"))  # fmt: skip
    before = tfidf.predict_proba(TEXTS)
    assert apply_quantization(tfidf, "dynamic_int8") is False  # no-op, documented
    np.testing.assert_array_equal(tfidf.predict_proba(TEXTS), before)
    with pytest.raises(ModelError, match="quantize='int4' is not known; use one of none"):
        apply_quantization(model, "int4")


def test_model_config_reaches_load_context(tiny_model_dir: Path) -> None:
    """The config a version was registered with (and defaults for versions without one)."""
    from mlflow.pyfunc import PythonModelContext

    from nlpflow.serving.pyfunc import MODEL_ARTIFACT, TextClassifierModel, default_config

    artifacts = {MODEL_ARTIFACT: str(tiny_model_dir)}
    old = TextClassifierModel()
    old.load_context(PythonModelContext(artifacts=artifacts, model_config=None))
    assert old.config == default_config() and old.quantized is False
    assert default_config() == {"max_chars": 5000, "max_batch": 256, "quantize": "none"}
    new = TextClassifierModel()
    config = {"max_chars": 30, "max_batch": 2, "quantize": "dynamic_int8"}
    new.load_context(PythonModelContext(artifacts=artifacts, model_config=config))
    assert new.config == config and new.quantized is True
    assert _linear_kinds(new.model.model) == {"int8"}


def test_registered_int8_version_serves_int8(tiny_model_dir: Path, tmp_path: Path) -> None:
    """publish_model -> registry -> pyfunc load: the int8 choice travels with the version."""
    import mlflow

    from nlpflow.config.params import parse_params
    from nlpflow.config.settings import Settings
    from nlpflow.release.registry import publish_model
    from nlpflow.tracking.tracker import Tracker

    tracker = Tracker(Settings(project_dir=tmp_path, registered_model="q"))
    versions = {}
    for mode in ("none", "dynamic_int8"):  # one run each: a run holds one pyfunc at "model"
        run_id = tracker.start_run("nlpflow", run_name=f"quantize-{mode}", tags={})
        params = parse_params({"register": {"quantize": mode}})
        versions[mode] = publish_model(
            tracker, run_id=run_id, model_dir=tiny_model_dir, model_name="q", params=params
        )
    frame = pd.DataFrame({"text": TEXTS})
    loaded = {
        mode: mlflow.pyfunc.load_model(
            tracker.client.get_model_version_download_uri("q", str(version))
        )
        for mode, version in versions.items()
    }
    python_models = {mode: m.unwrap_python_model() for mode, m in loaded.items()}
    assert python_models["none"].quantized is False
    assert python_models["dynamic_int8"].quantized is True
    assert loaded["dynamic_int8"].model_config["quantize"] == "dynamic_int8"
    fp32, int8 = (loaded[m].predict(frame) for m in ("none", "dynamic_int8"))
    difference = np.abs(
        fp32.filter(like="proba_").to_numpy() - int8.filter(like="proba_").to_numpy()
    )
    assert 0 < difference.max() < 0.02


def test_a_second_publish_in_one_run_keeps_the_first_versions_files(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """A retried register publishes again into the same run: each version is its own logged
    model of the run, with its own files."""
    import mlflow.pyfunc

    from nlpflow.config.params import parse_params
    from nlpflow.config.settings import Settings
    from nlpflow.release.registry import publish_model
    from nlpflow.tracking.tracker import Tracker

    tracker = Tracker(Settings(project_dir=tmp_path, registered_model="twice"))
    run_id = tracker.start_run("nlpflow", run_name="twice", tags={})
    versions = [
        publish_model(
            tracker,
            run_id=run_id,
            model_dir=tiny_model_dir,
            model_name="twice",
            params=parse_params({"serve": {"max_chars": chars}}),
        )
        for chars in (30, 40)
    ]
    found = tracker.client.get_run(run_id).info.experiment_id
    logged = tracker.client.search_logged_models(
        [found], filter_string=f"source_run_id = '{run_id}'"
    )
    locations = {m.model_id: m.artifact_location for m in logged}
    sources = [tracker.client.get_model_version("twice", str(v)) for v in versions]
    assert len(locations) == 2 and {v.tags["model_id"] for v in sources} == set(locations)
    assert [v.source for v in sources] == [locations[v.tags["model_id"]] for v in sources]
    configs = [
        mlflow.pyfunc.load_model(
            tracker.client.get_model_version_download_uri("twice", str(v))
        ).model_config["max_chars"]
        for v in versions
    ]
    assert configs == [30, 40]
