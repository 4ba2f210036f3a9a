"""A GPT-2 style decoder as `train.pretrained`: the `transformer` family fine-tunes it, and padding
never changes a text's prediction (batched, alone, reloaded, served, with the end-of-text string
in the text), no token_type_ids reach it, train.dropout reaches its dropouts; `transformer_frozen`
pools its last token (and refuses cls); int8 serving quantizes its Conv1D layers.

The decoder is tiny and random (2 layers, width 32), built in a fixture with a byte-level BPE
tokenizer that has no pad token, as GPT-2's has none.

    .venv/bin/python -m pytest tests/model/test_decoder_classifier.py -q
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from nlpflow.config.params import FrozenParams, TrainParams
from nlpflow.errors import ModelError
from nlpflow.training.families import load_model, predict_labels
from nlpflow.training.train import fit
from tests.conftest import SAMPLE

EOS = "<|endoftext|>"
N_POSITIONS = 64


@pytest.fixture(scope="module")
def tiny_decoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder as the hub's gpt2 is laid out: GPT2LMHeadModel weights and a GPT2Tokenizer with
    end-of-text as bos, eos and unk, and no pad token."""
    import torch
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2Tokenizer

    folder = tmp_path_factory.mktemp("tiny-gpt2")
    texts = pd.read_csv(SAMPLE)["text"].tolist()
    # Byte-level BPE built by hand (every byte, then a merge chain spelling each of the 300
    # commonest pre-tokens), not by the tokenizers trainer, whose ties follow Rust hash order.
    split = ByteLevel(add_prefix_space=False).pre_tokenize_str
    words = Counter(word for text in texts for word, _ in split(text))
    common = [w for w, _ in sorted(words.items(), key=lambda kv: (-kv[1], kv[0]))[:300]]
    vocab = {EOS: 0} | {byte: i + 1 for i, byte in enumerate(sorted(ByteLevel.alphabet()))}
    merges: list[tuple[str, str]] = []
    for word in common:
        for end in range(2, len(word) + 1):
            if word[:end] not in vocab:
                vocab[word[:end]] = len(vocab)
                merges.append((word[: end - 1], word[end - 1]))
    tokenizer = GPT2Tokenizer(vocab=vocab, merges=merges)
    assert tokenizer.pad_token is None  # what the code under test has to deal with
    tokenizer.save_pretrained(folder)
    config = GPT2Config(
        vocab_size=len(vocab), n_positions=N_POSITIONS, n_embd=32, n_layer=2, n_head=2,
        bos_token_id=0, eos_token_id=0,
    )  # fmt: skip
    torch.manual_seed(0)  # the same random weights in every session
    GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


# Four texts of each of the four labels: overfitting them is the test that the decoder learns.
ROWS = pd.read_csv(SAMPLE).groupby("label").head(4).sort_values("text", key=lambda s: s.str.len())
TEXTS, LABELS = ROWS["text"].tolist(), ROWS["label"].tolist()
CLASSES = sorted(set(LABELS))


def _decoder_params(folder: Path, **overrides: Any) -> TrainParams:
    values: dict[str, Any] = {
        "family": "transformer", "pretrained": str(folder), "epochs": 30, "batch_size": 4,
        "lr": 3e-3, "max_length": 48, "early_stopping_patience": 30, "warmup_ratio": 0.0,
        "group_by_length": False,
    }  # fmt: skip
    return TrainParams(**(values | overrides))


@pytest.fixture(scope="module")
def trained(tiny_decoder: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    data = (TEXTS, LABELS)
    model = fit(data, data, labels=CLASSES, params=_decoder_params(tiny_decoder))
    folder = tmp_path_factory.mktemp("decoder-model")
    model.save(folder)
    return model, folder


def test_the_transformer_family_fine_tunes_a_decoder_to_fit_its_data(trained) -> None:
    model, _ = trained
    assert type(model.model).__name__ == "GPT2ForSequenceClassification"
    predicted, _ = predict_labels(model, TEXTS)
    assert predicted == LABELS  # train accuracy 1.0
    # its pad token is the end-of-text token, and the head knows it
    assert model.tokenizer.pad_token == EOS and model.model.config.pad_token_id == 0


def test_a_reloaded_decoder_predicts_the_same(trained) -> None:
    model, folder = trained
    reloaded = load_model(folder)
    assert reloaded.model.config.pad_token_id == 0 and reloaded.tokenizer.pad_token == EOS
    np.testing.assert_allclose(reloaded.predict_proba(TEXTS), model.predict_proba(TEXTS), atol=1e-6)


def test_padding_never_changes_a_decoders_prediction(trained) -> None:
    # The texts differ in length by up to ~30 tokens, so in one batch most are padded. With left
    # padding (positions shift) or a pad id the head cannot tell from text, these would differ.
    model, folder = trained
    alone = np.vstack([model.predict_proba([text], batch_size=1) for text in TEXTS])
    for candidate in (model, load_model(folder)):
        np.testing.assert_allclose(candidate.predict_proba(TEXTS, batch_size=16), alone, atol=1e-5)
    assert np.abs(alone - alone.mean(axis=0)).max() > 0.1  # the texts do get different answers


def test_the_end_of_text_string_in_a_text_is_text_not_padding(trained) -> None:
    # pad == eos: were "<|endoftext|>" in a text read as the eos token, the head would pool the
    # token before it, and the same text would score differently padded and alone.
    model, folder = trained
    text = f"{TEXTS[0]} {EOS}"
    ids = model.tokenizer(text)["input_ids"]
    assert model.tokenizer.pad_token_id not in ids and len(ids) > len(
        model.tokenizer(TEXTS[0])["input_ids"]
    )
    texts = [text, f"{EOS} {TEXTS[1]}", *TEXTS[2:]]
    alone = np.vstack([model.predict_proba([t], batch_size=1) for t in texts])
    np.testing.assert_allclose(model.predict_proba(texts, batch_size=16), alone, atol=1e-5)
    np.testing.assert_allclose(load_model(folder).predict_proba(texts), alone, atol=1e-5)


def test_no_token_type_ids_reach_the_decoder(
    tiny_decoder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GPT-2 adds token_type_ids through its word embeddings (a zero id adds token 0's embedding
    # at every position). A decoder folder whose tokenizer declares them must not pass them on.
    import functools
    import shutil

    from transformers import AutoTokenizer, GPT2ForSequenceClassification

    folder = tmp_path / "declares-token-types"
    shutil.copytree(tiny_decoder, folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["model_input_names"] = ["input_ids", "token_type_ids", "attention_mask"]
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    assert "token_type_ids" in AutoTokenizer.from_pretrained(folder)(TEXTS[0])  # the hazard
    passed: list[set[str]] = []
    forward = GPT2ForSequenceClassification.forward

    @functools.wraps(forward)  # the Trainer reads the signature (which arguments are labels)
    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        passed.append({name for name, value in kwargs.items() if value is not None})
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(GPT2ForSequenceClassification, "forward", spy)
    data = (TEXTS[:8], LABELS[:8])
    model = fit(data, data, labels=CLASSES, params=_decoder_params(folder, epochs=1))
    model.save(tmp_path / "model")
    load_model(tmp_path / "model").predict_proba(TEXTS[:4])
    assert len(passed) >= 4 and all("input_ids" in names for names in passed)  # train, predict
    assert not [names for names in passed if "token_type_ids" in names]


def test_the_served_pyfunc_predicts_what_the_decoder_predicts(trained, tmp_path: Path) -> None:
    import shutil

    from mlflow.pyfunc import PythonModelContext

    from nlpflow.config.params import PreprocessParams
    from nlpflow.data.preprocess import TextPreprocessor
    from nlpflow.serving.pyfunc import MODEL_ARTIFACT, TextClassifierModel
    from nlpflow.training.families import update_manifest

    model, folder = trained
    served_dir = tmp_path / "model"
    shutil.copytree(folder, served_dir)
    preprocess = PreprocessParams()
    update_manifest(served_dir, preprocess=preprocess.model_dump())
    served = TextClassifierModel()
    served.load_context(PythonModelContext(artifacts={MODEL_ARTIFACT: str(served_dir)},
                                           model_config=None))  # fmt: skip
    answer = served.predict(None, pd.DataFrame({"text": TEXTS}))
    expected = model.predict_proba(TextPreprocessor(preprocess).transform(TEXTS))
    got = answer[[f"proba_{label}" for label in CLASSES]].to_numpy()
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_int8_serving_quantizes_the_decoders_conv1d_layers(trained) -> None:
    import torch
    from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear
    from transformers.pytorch_utils import Conv1D

    from nlpflow.serving.quantize import apply_quantization

    def kinds(module: Any) -> Counter[str]:
        return Counter(
            "int8" if isinstance(m, DynamicQuantizedLinear)
            else "fp32 Linear" if isinstance(m, torch.nn.Linear)
            else "fp32 Conv1D"
            for m in module.modules()
            if isinstance(m, (DynamicQuantizedLinear, torch.nn.Linear, Conv1D))
        )  # fmt: skip

    _, folder = trained
    fp32, int8 = load_model(folder), load_model(folder)
    assert kinds(fp32.model) == {"fp32 Conv1D": 8, "fp32 Linear": 1}  # 4 a block; the head
    assert apply_quantization(int8, "dynamic_int8") is True
    assert kinds(int8.model) == {"int8": 9}
    expected, got = fp32.predict_proba(TEXTS), int8.predict_proba(TEXTS)
    assert 0 < np.abs(expected - got).max() < 0.05  # int8 really ran, and stayed close


def test_frozen_decoder_features_pool_the_last_token(tiny_decoder: Path, tmp_path: Path) -> None:
    data = (TEXTS, LABELS)
    params = _decoder_params(tiny_decoder, family="transformer_frozen",
                             frozen=FrozenParams(pooling="last", C=100.0))  # fmt: skip
    model = fit(data, data, labels=CLASSES, params=params)
    predicted, proba = predict_labels(model, TEXTS)
    assert predicted == LABELS  # 32 random features separate 16 texts
    alone = np.vstack([model.predict_proba([text], batch_size=1) for text in TEXTS])
    np.testing.assert_allclose(proba, alone, atol=1e-6)
    model.save(tmp_path / "frozen")
    np.testing.assert_allclose(load_model(tmp_path / "frozen").predict_proba(TEXTS), proba,
                               atol=1e-6)  # fmt: skip


def test_cls_pooling_of_a_decoder_is_refused_with_the_fix(tiny_decoder: Path) -> None:
    params = _decoder_params(tiny_decoder, family="transformer_frozen",
                             frozen=FrozenParams(pooling="cls"))  # fmt: skip
    with pytest.raises(ModelError, match=r"decoder \(gpt2\).*frozen\.pooling to last"):
        fit((TEXTS, LABELS), ([], []), labels=CLASSES, params=params)


def test_train_dropout_reaches_every_dropout_of_the_decoder(tiny_decoder: Path) -> None:
    # GPT-2 names its rates resid_pdrop, embd_pdrop and attn_pdrop, not BERT's *_dropout_prob
    import torch

    from nlpflow.training.families.transformer import _load_pretrained

    model, _ = _load_pretrained(str(tiny_decoder), CLASSES, seed=0, dropout=0.25)
    rates = {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)}
    assert rates == {0.25}, rates
