"""spacy_textcat: spaCy's own text classifier (`textcat`, exclusive classes) on a blank English
pipeline, built from a spaCy training config that `build_config` writes from params.

The config travels with the model (spaCy saves it as config.cfg), so `spacy.load` rebuilds the
same pipeline, and `spacy train` could replay it on DocBin files.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nlpflow.config.params import SpacyTextcatParams, TrainParams
from nlpflow.training.families import XY, EpochCallback, load_manifest, save_manifest
from nlpflow.training.progress import TrainingProgress, log

FAMILY = "spacy_textcat"
PIPELINE_DIR = "spacy"


class SpacyTextcatClassifier:
    family = FAMILY

    def __init__(self, nlp: Any, labels: list[str]) -> None:
        self.nlp = nlp
        self.labels = labels

    def predict_proba(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        docs = self.nlp.pipe(list(texts), batch_size=batch_size)
        rows = [[doc.cats[label] for label in self.labels] for doc in docs]
        return np.asarray(rows, dtype=np.float64).reshape(len(texts), len(self.labels))

    def save(self, path: Path) -> None:
        save_manifest(path, family=FAMILY, labels=self.labels, extra={})
        self.nlp.to_disk(path / PIPELINE_DIR)

    @classmethod
    def load(cls, path: Path) -> SpacyTextcatClassifier:
        import spacy

        return cls(spacy.load(path / PIPELINE_DIR), load_manifest(path)["labels"])


def _model_config(params: SpacyTextcatParams) -> dict[str, Any]:
    if params.architecture == "bow":
        return {
            "@architectures": "spacy.TextCatBOW.v3", "exclusive_classes": True,
            "ngram_size": params.ngram_size, "no_output_layer": False, "length": 2**18,
            "nO": None,
        }  # fmt: skip
    return {
        "@architectures": "spacy.TextCatReduce.v1", "exclusive_classes": True,
        "use_reduce_first": False, "use_reduce_last": False, "use_reduce_max": False,
        "use_reduce_mean": True, "nO": None,
        "tok2vec": {
            "@architectures": "spacy.HashEmbedCNN.v2",
            "pretrained_vectors": True if params.vectors is not None else None,
            "width": params.width, "depth": params.depth, "embed_size": params.embed_size,
            "window_size": 1, "maxout_pieces": 3, "subword_features": True,
        },
    }  # fmt: skip


def build_config(params: SpacyTextcatParams, *, seed: int, steps_per_epoch: int) -> Any:
    """The spaCy config of the pipeline and its training; spaCy fills in every other default."""
    from thinc.api import Config

    return Config(
        {
            "nlp": {"lang": "en", "pipeline": ["textcat"]},
            "components": {"textcat": {"factory": "textcat", "model": _model_config(params)}},
            **training_sections(params, seed=seed, steps_per_epoch=steps_per_epoch),
        }
    )


def training_sections(params: Any, *, seed: int, steps_per_epoch: int) -> dict[str, Any]:
    """A spaCy config's system and training sections from a family's epochs, patience,
    dropout, batch size and learning rate (spacy_textcat's and spacy_ner's sections)."""
    return {
        "system": {"seed": seed},
        "training": {
            "seed": seed,
            "dropout": params.dropout,
            "max_epochs": params.epochs,
            # spaCy counts these in steps; one epoch's worth each, so `spacy train` on the
            # saved config evaluates about once per epoch with our patience.
            "eval_frequency": steps_per_epoch,
            "patience": params.patience * steps_per_epoch,
            "batcher": {
                "@batchers": "spacy.batch_by_sequence.v1",
                "size": params.batch_size,
                "get_length": None,
            },
            "optimizer": {"@optimizers": "Adam.v1", "learn_rate": params.learn_rate},
        },
    }


def add_static_vectors(nlp: Any, spec: str, *, field: str) -> None:
    """The vectors `spec` names (nlpflow.training.families.embeddings.load_static_vectors) as
    the pipeline's static vectors table (spacy_textcat's and spacy_ner's)."""
    from nlpflow.training.families.embeddings import load_static_vectors, set_spacy_vectors

    vectors = load_static_vectors(spec, field=field)
    set_spacy_vectors(nlp, vectors)
    log.info(f"{field}: {len(vectors.words)} static vectors of {vectors.dims} dimensions")


def _examples(nlp: Any, xy: tuple[list[str], list[str]], labels: list[str]) -> list[Any]:
    from spacy.training import Example

    return [
        Example.from_dict(nlp.make_doc(text), {"cats": {la: float(la == y) for la in labels}})
        for text, y in zip(*xy, strict=True)
    ]


def _validation_scores(
    model: SpacyTextcatClassifier, validation: tuple[list[str], list[str]]
) -> dict[str, float]:
    from nlpflow.evaluation.metrics import compute_metrics

    proba = model.predict_proba(validation[0])
    gold = np.array([model.labels.index(y) for y in validation[1]])
    m = compute_metrics(
        validation[1], [model.labels[i] for i in proba.argmax(axis=1)], model.labels
    )
    loss = float(-np.log(np.clip(proba[np.arange(len(gold)), gold], 1e-12, None)).mean())
    return {"val_loss": loss, "val_accuracy": m["accuracy"], "val_macro_f1": m["macro_f1"]}


def fit_textcat(
    train: XY, validation: XY, *, labels: list[str], params: TrainParams,
    on_epoch: EpochCallback | None = None, on_step: EpochCallback | None = None,
    workdir: Path | None = None,
) -> SpacyTextcatClassifier:  # fmt: skip
    """spacy_textcat's registered fit: train.spacy_textcat and train.seed (epochs, no
    checkpoints)."""
    return fit_spacy_textcat(
        train, validation, labels=labels, params=params.spacy_textcat, seed=params.seed,
        on_epoch=on_epoch,
    )  # fmt: skip


def fit_spacy_textcat(
    train: tuple[list[str], list[str]],
    validation: tuple[list[str], list[str]],
    *,
    labels: list[str],
    params: SpacyTextcatParams,
    seed: int,
    on_epoch: EpochCallback | None = None,
) -> SpacyTextcatClassifier:
    """Train epoch by epoch, keeping the weights of the epoch with the best validation macro-F1.

    The loop is ours, not spacy.training.loop.train: spaCy evaluates every `eval_frequency`
    steps counted from step 0 (after the first batch), so its evaluations never fall on epoch
    ends, and per-epoch reports are what every nlpflow family logs. The pieces are spaCy's:
    the pipeline, its optimizer and batcher all come from the config.
    """
    import spacy
    from spacy.util import registry
    from thinc.api import fix_random_seed

    progress = TrainingProgress(FAMILY)
    fix_random_seed(seed)
    steps = math.ceil(len(train[0]) / params.batch_size)
    config = build_config(params, seed=seed, steps_per_epoch=steps)
    nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
    if params.vectors is not None:  # before initialize: the tok2vec sizes its input from them
        add_static_vectors(nlp, params.vectors, field="train.spacy_textcat.vectors")
    train_examples = _examples(nlp, train, labels)
    optimizer = nlp.initialize(lambda: train_examples)  # the [training.optimizer] of the config
    training = nlp.config.interpolate()["training"]
    batcher = registry.resolve({"batcher": training["batcher"]})["batcher"]
    model = SpacyTextcatClassifier(nlp, labels)
    rng = random.Random(seed)
    with progress:
        progress.begin(examples=len(train_examples), epochs=params.epochs,
                       steps=params.epochs * steps, device="cpu")  # fmt: skip
        history = train_epochs(
            nlp, "textcat", optimizer, batcher, train_examples, params=params,
            dropout=training["dropout"], rng=rng, progress=progress, on_epoch=on_epoch,
            score=lambda: _validation_scores(model, validation) if validation[0] else {},
            metric="val_macro_f1",
        )  # fmt: skip
    progress.finish(history)
    return model


def train_epochs(
    nlp: Any, pipe: str, optimizer: Any, batcher: Any, examples: list[Any], *, params: Any,
    dropout: float, rng: random.Random, progress: TrainingProgress,
    on_epoch: EpochCallback | None, score: Callable[[], dict[str, float]], metric: str,
) -> list[dict[str, float]]:  # fmt: skip
    """spaCy's component `pipe` trained for `params.epochs` epochs or until `params.patience`
    epochs without a better `metric` (from `score`, run with the averaged weights, as spaCy's
    own loop evaluates); leaves the best epoch's weights in `nlp` and returns every epoch's
    scores (spacy_textcat's and spacy_ner's loop)."""
    component: Any = nlp.get_pipe(pipe)  # typed as a bare callable by spaCy
    steps = math.ceil(len(examples) / params.batch_size)
    best: tuple[float, bytes] | None = None
    stale, history = 0, list[dict[str, float]]()
    for epoch in range(1, params.epochs + 1):
        rng.shuffle(examples)
        losses: dict[str, float] = {}
        for i, batch in enumerate(batcher(examples), start=1):
            nlp.update(batch, drop=dropout, sgd=optimizer, losses=losses)
            progress.step((epoch - 1) * steps + i, loss=losses.get(pipe, 0.0) / i)
        scores = {"train_loss": float(losses.get(pipe, 0.0)) / steps}
        with nlp.use_params(optimizer.averages):
            scores |= score()
            value = scores.get(metric, float(epoch))  # no validation: the last epoch
            if best is None or value > best[0]:
                best, stale = (value, component.to_bytes()), 0
            else:
                stale += 1
        history.append({"epoch": float(epoch), **scores})
        progress.epoch_end(epoch, scores)
        if on_epoch is not None:
            on_epoch(epoch, scores)
        if stale >= params.patience:
            break
    assert best is not None  # epochs >= 1
    component.from_bytes(best[1])
    return history
