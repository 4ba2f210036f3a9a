"""transformer_frozen: a frozen pretrained encoder as a feature extractor, a logistic regression
on top.

The encoder runs once over each text, without gradients, so training costs one forward pass of
the data plus a convex fit: minutes on a CPU where fine-tuning takes hours. The encoder's weights
are saved beside the head, so a reloaded model needs neither the hub nor the installed package.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nlpflow.config.params import TrainParams
from nlpflow.errors import ModelError
from nlpflow.training.families import EpochCallback, load_manifest, save_manifest
from nlpflow.training.families.decoder import is_decoder_only, last_token_states, prepare_decoder
from nlpflow.training.progress import TrainingProgress, log

FAMILY = "transformer_frozen"
ENCODER_DIR = "encoder"
HEAD_FILE = "head.skops"  # skops: loading runs no code (nlpflow.training.families.sklearn_io)


class FrozenEncoderClassifier:
    family = FAMILY

    def __init__(
        self, encoder: Any, tokenizer: Any, head: Any, labels: list[str], *, pooling: str,
        max_length: int, batch_size: int,
    ) -> None:  # fmt: skip
        self.encoder = encoder.eval()
        self.tokenizer = tokenizer
        self.head = head
        self.labels = labels
        self.pooling = pooling
        self.max_length = max_length
        self.batch_size = batch_size
        # sklearn orders classes itself; map its columns onto our label order.
        self._order = [list(head.classes_).index(label) for label in labels] if head else []

    def embed(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """One pooled vector per text, in the order given."""
        import torch

        size = batch_size or self.batch_size
        out = np.zeros((len(texts), self.encoder.config.hidden_size), dtype=np.float32)
        if not len(texts):
            return out
        enc = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)
        # Sorted by token count, each batch pads to nearly one length: MR's train split in
        # batches of 64 pads to 477k tokens in file order, to 236k sorted (234k are real).
        order = np.argsort([len(ids) for ids in enc["input_ids"]], kind="stable")
        device = next(self.encoder.parameters()).device
        with torch.inference_mode():
            for start in range(0, len(order), size):
                idx = order[start : start + size]
                rows = [{key: enc[key][i] for key in enc} for i in idx]
                batch = self.tokenizer.pad(rows, return_tensors="pt").to(device)
                hidden = self.encoder(**batch).last_hidden_state.float()
                out[idx] = _pool(hidden, batch["attention_mask"], self.pooling).cpu().numpy()
        return out

    def predict_proba(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        if not len(texts):  # scikit-learn rejects an empty batch; a server may send one
            return np.zeros((0, len(self.labels)))
        # float64 features: sklearn keeps float32 inputs' dtype, and float32 rows of
        # probabilities sum to 1 only within 1e-7.
        features = self.embed(texts, batch_size).astype(np.float64)
        return np.asarray(self.head.predict_proba(features))[:, self._order]

    def save(self, path: Path) -> None:
        from nlpflow.training.families.sklearn_io import save_sklearn

        extra = {
            "pooling": self.pooling, "max_length": self.max_length, "batch_size": self.batch_size
        }  # fmt: skip
        save_manifest(path, family=FAMILY, labels=self.labels, extra=extra)
        self.encoder.save_pretrained(path / ENCODER_DIR)
        self.tokenizer.save_pretrained(path / ENCODER_DIR)
        save_sklearn(self.head, path / HEAD_FILE)

    @classmethod
    def load(cls, path: Path) -> FrozenEncoderClassifier:
        from transformers import AutoModel, AutoTokenizer

        from nlpflow.training.families.sklearn_io import load_sklearn

        manifest = load_manifest(path)
        head = load_sklearn(path / HEAD_FILE)  # before the encoder: a refused file fails fast
        encoder = AutoModel.from_pretrained(path / ENCODER_DIR)
        tokenizer = AutoTokenizer.from_pretrained(path / ENCODER_DIR)
        if is_decoder_only(encoder.config):  # tokenizer state that save_pretrained leaves out
            prepare_decoder(encoder, tokenizer)
        return cls(
            encoder,
            tokenizer,
            head,
            manifest["labels"],
            pooling=manifest["pooling"],
            max_length=manifest["max_length"],
            batch_size=manifest["batch_size"],
        )


def _pool(hidden: Any, mask: Any, pooling: str) -> Any:
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "last":  # a decoder's summary: the one real token that has read the text
        return last_token_states(hidden, mask)
    # Padding positions must not dilute the mean, so a text pools the same in any batch.
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def fit_frozen(
    train: tuple[list[str], list[str]],
    validation: tuple[list[str], list[str]],
    *,
    labels: list[str],
    params: TrainParams,
    on_epoch: EpochCallback | None = None,
    on_step: EpochCallback | None = None,  # one closed-form fit of the head: no steps,
    workdir: Path | None = None,  # no checkpoints (the registry's common signature)
) -> FrozenEncoderClassifier:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from nlpflow.training.families.tfidf import finish_fit, score_fit
    from nlpflow.training.families.transformer import (
        _load_pretrained,
        pick_device,
        quiet_transformers,
    )

    frozen = params.frozen
    progress = TrainingProgress(FAMILY)
    # The sequence-classification wrapper's new head is discarded: only its encoder is used.
    with quiet_transformers():  # the classification head it reports as new is never used
        wrapper, tokenizer = _load_pretrained(params.pretrained, labels, params.seed)
    if frozen.pooling == "cls" and is_decoder_only(wrapper.config):
        raise ModelError(
            f"train.frozen.pooling=cls takes the first token's hidden state, but "
            f"{params.pretrained!r} is a decoder ({wrapper.config.model_type}): its first token "
            "has seen only itself. Set train.frozen.pooling to last (the last real token, which "
            "has read the whole text) or mean."
        )
    device = pick_device(params.device)
    encoder = wrapper.base_model.to(device)
    progress.begin(examples=len(train[0]), device=device)
    model = FrozenEncoderClassifier(
        encoder, tokenizer, None, labels, pooling=frozen.pooling, max_length=params.max_length,
        batch_size=frozen.batch_size,
    )  # fmt: skip
    started = time.perf_counter()
    x_train = model.embed(train[0]).astype(np.float64)
    x_val = model.embed(validation[0]).astype(np.float64)
    # the encoder pass is the long part (minutes on a CPU): say how fast it went
    texts, seconds = len(train[0]) + len(validation[0]), time.perf_counter() - started
    rate = texts / max(seconds, 1e-9)
    log.info(f"encoded {texts} texts in {seconds:.1f} s ({rate:.0f} texts/s)",
             extra={"nlpflow_progress": "encoded"})  # fmt: skip
    # Standardised features let one C suit every encoder, whose hidden-state scales differ
    # by orders of magnitude; unscaled MiniLM features also need many more solver iterations.
    head = make_pipeline(
        StandardScaler(),
        LogisticRegression(C=frozen.C, max_iter=frozen.max_iter, random_state=params.seed),
    )
    head.fit(x_train, train[1])
    model = FrozenEncoderClassifier(
        encoder.cpu(), tokenizer, head, labels, pooling=frozen.pooling,
        max_length=params.max_length, batch_size=frozen.batch_size,
    )  # fmt: skip
    # one "epoch": the closed-form fit of the head
    splits = {"train": (x_train, train[1]), "val": (x_val, validation[1])}
    finish_fit(progress, score_fit(head.predict, splits, labels), on_epoch)
    return model
