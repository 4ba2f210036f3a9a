"""spacy_ner: spaCy's transition-based `ner` (token-classification), built from a spaCy
training config that `build_config` writes from train.spacy_ner, on a blank English pipeline
or started from an installed pipeline's NER (train.spacy_ner.base).

With a base (e.g. en_core_web_sm, trained on OntoNotes' 18 types), the model gets exactly the
data's entity types, never the base's others:
- spaCy 3.8 cannot remove a label from a trained `ner` (`add_label` only grows its output
  layer), so sourcing the base's ner as it is would keep all its old types as actions it goes on
  predicting (wrong types, spurious entities) while fine-tuning slowly unlearns them;
- so a fresh `ner` of the base's own architecture is built with the data's types, and the
  base's weights copied in: its tok2vec (embeddings and CNN) and its hidden layer, which know
  nothing of labels, and the output rows of every action the two share by name (O, and B-/I-/
  L-/U- of a type the data names exactly as the base does, e.g. PERSON). An old type the
  data's labels list thus keeps what it learned; the others are gone.
The base's vocabulary (lexeme norms the embeddings were trained on) is kept; its other
components (tagger, parser, ...) are dropped.

Predictions decode with a beam (train.spacy_ner.beam_width): the tags of the best parse, and for
each tag the share of the beam's probability whose parses give that token the same tag.

    model = fit_ner(train, validation, labels=labels, params=train_params)
    tags, probs = model.predict_tags([["Going", "to", "see", "Dune", "2"]])
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nlpflow.config.params import TrainParams
from nlpflow.config.sections.families import SpacyNerParams
from nlpflow.errors import ModelError
from nlpflow.training.families import XY, EpochCallback, load_manifest, save_manifest
from nlpflow.training.families.rules_ner import score_tagger
from nlpflow.training.families.spacy_textcat import (
    add_static_vectors,
    train_epochs,
    training_sections,
)
from nlpflow.training.progress import TrainingProgress

FAMILY = "spacy_ner"
PIPELINE_DIR = "spacy"


class SpacyNerTagger:
    family = FAMILY

    def __init__(self, nlp: Any, labels: list[str], beam_width: int) -> None:
        self.nlp = nlp
        self.labels = labels
        self.beam_width = beam_width

    def predict_tags(
        self, sentences: Sequence[Sequence[str]], batch_size: int = 256
    ) -> tuple[list[list[str]], list[list[float]]]:
        from spacy.tokens import Doc

        ner: Any = self.nlp.get_pipe("ner")
        tags: list[list[str]] = [[] for _ in sentences]
        probs: list[list[float]] = [[] for _ in sentences]
        todo = [i for i, tokens in enumerate(sentences) if len(tokens)]  # a beam needs a token
        for first in range(0, len(todo), batch_size):
            batch = todo[first : first + batch_size]
            docs = [Doc(self.nlp.vocab, words=list(sentences[i])) for i in batch]
            for i, doc, beam in zip(
                batch, docs, ner.beam_parse(docs, self.beam_width), strict=True
            ):
                tags[i], probs[i] = _decode(ner.moves.get_beam_parses(beam), len(doc))
        return tags, probs

    def save(self, path: Path) -> None:
        save_manifest(
            path, family=FAMILY, labels=self.labels, extra={"beam_width": self.beam_width}
        )
        self.nlp.to_disk(path / PIPELINE_DIR)

    @classmethod
    def load(cls, path: Path) -> SpacyNerTagger:
        import spacy

        manifest = load_manifest(path)
        return cls(spacy.load(path / PIPELINE_DIR), manifest["labels"], manifest["beam_width"])


def _decode(parses: list[tuple[float, list[Any]]], n_tokens: int) -> tuple[list[str], list[float]]:
    """The best parse's BIO tags, and each tag's share of the beam's probability."""
    from nlpflow.data.ner.schemes import bio_of

    tagged = [(p, bio_of([e for e in ents if e[2]], n_tokens)) for p, ents in parses]
    total = sum(p for p, _ in tagged) or 1.0
    best = max(tagged, key=lambda parse: parse[0])[1]
    share = [sum(p for p, tags in tagged if tags[i] == tag) / total for i, tag in enumerate(best)]
    return best, share


def build_config(params: SpacyNerParams, *, seed: int, steps_per_epoch: int) -> Any:
    """The spaCy config of the pipeline and its training; spaCy fills in every other default
    (the ner model: TransitionBasedParser.v2 on a HashEmbedCNN tok2vec of its own, which also
    reads static vectors when train.spacy_ner.vectors names some)."""
    from thinc.api import Config

    ner: dict[str, Any] = {"factory": "ner"}
    if params.vectors is not None:  # spaCy's default ner model, its tok2vec reading vectors
        import copy

        from spacy.pipeline.ner import DEFAULT_NER_MODEL

        model = copy.deepcopy(dict(DEFAULT_NER_MODEL))
        model["tok2vec"] = dict(model["tok2vec"]) | {"pretrained_vectors": True}
        ner["model"] = model
    return Config(
        {
            "nlp": {"lang": "en", "pipeline": ["ner"]},
            "components": {"ner": ner},
            **training_sections(params, seed=seed, steps_per_epoch=steps_per_epoch),
        }
    )


def _examples(nlp: Any, xy: XY) -> list[Any]:
    from spacy.tokens import Doc
    from spacy.training import Example

    return [
        Example(Doc(nlp.vocab, words=list(tokens)), Doc(nlp.vocab, words=list(tokens), ents=list(tags)))
        for tokens, tags in zip(*xy, strict=True)
    ]  # fmt: skip


def build_from_base(base: str, types: list[str], train: XY) -> tuple[Any, list[Any]]:
    """The base pipeline reduced to a fresh `ner` of its NER's architecture with exactly
    `types`, holding the base's label-free weights and the output rows of shared actions (see
    the module docstring); and the train examples, made with the base's vocabulary."""
    import spacy

    try:
        nlp = spacy.load(base)
    except OSError as exc:
        raise ModelError(
            f"train.spacy_ner.base {base!r} is not an installed spaCy pipeline: install its package "
            "(e.g. pip install en-core-web-sm) or set train.spacy_ner.base to null."
        ) from exc
    if "ner" not in nlp.pipe_names:
        raise ModelError(f"train.spacy_ner.base {base!r} has no ner component ({nlp.pipe_names}).")
    old: Any = nlp.get_pipe("ner")
    model = nlp.config["components"]["ner"]["model"]
    if "Listener" in str(model["tok2vec"].get("@architectures")):
        raise ModelError(
            f"the ner of train.spacy_ner.base {base!r} listens to a shared tok2vec or transformer; "
            "only pipelines whose ner has its own tok2vec (e.g. en_core_web_sm) can be a base."
        )
    for name in list(nlp.pipe_names):
        nlp.remove_pipe(name)
    new: Any = nlp.add_pipe("ner", config={"model": model})
    for kind in types:
        new.add_label(kind)
    examples = _examples(nlp, train)
    new.initialize(lambda: examples, nlp=nlp)
    _copy_weights(old, new)
    return nlp, examples


def _copy_weights(old: Any, new: Any) -> None:
    new.model.get_ref("tok2vec").from_bytes(old.model.get_ref("tok2vec").to_bytes())
    if not (old.model.attrs["has_upper"] and new.model.attrs["has_upper"]):
        return  # without a hidden layer the lower layer's outputs are the actions: nothing shared
    new.model.get_ref("lower").from_bytes(old.model.get_ref("lower").to_bytes())
    upper_old, upper_new = old.model.get_ref("upper"), new.model.get_ref("upper")
    rows = {old.moves.get_class_name(i): i for i in range(old.moves.n_moves)}
    weights, bias = upper_new.get_param("W").copy(), upper_new.get_param("b").copy()
    for i in range(new.moves.n_moves):
        j = rows.get(new.moves.get_class_name(i))
        if j is not None:
            weights[i], bias[i] = upper_old.get_param("W")[j], upper_old.get_param("b")[j]
    upper_new.set_param("W", weights)
    upper_new.set_param("b", bias)


def fit_ner(
    train: XY, validation: XY, *, labels: list[str], params: TrainParams,
    on_epoch: EpochCallback | None = None, on_step: EpochCallback | None = None,
    workdir: Path | None = None,
) -> SpacyNerTagger:  # fmt: skip
    """spacy_ner's registered fit: train.spacy_ner and train.seed (epochs, no checkpoints)."""
    return fit_spacy_ner(
        train, validation, labels=labels, params=params.spacy_ner, seed=params.seed,
        on_epoch=on_epoch,
    )  # fmt: skip


def fit_spacy_ner(
    train: XY, validation: XY, *, labels: list[str], params: SpacyNerParams, seed: int,
    on_epoch: EpochCallback | None = None,
) -> SpacyNerTagger:  # fmt: skip
    """Train epoch by epoch, keeping the weights of the epoch with the best validation entity
    F1; our loop for per-epoch reports, as spacy_textcat's (whose docstring says why)."""
    import spacy
    from spacy.util import registry

    spacy.util.fix_random_seed(seed)
    steps = math.ceil(len(train[0]) / params.batch_size)
    config = build_config(params, seed=seed, steps_per_epoch=steps)
    types = sorted({tag[2:] for tag in labels if tag != "O"})
    training = config.interpolate()["training"]
    optimizer = registry.resolve({"optimizer": training["optimizer"]})["optimizer"]
    if params.base is None:
        nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
        if params.vectors is not None:  # before initialize: the tok2vec sizes its input
            add_static_vectors(nlp, params.vectors, field="train.spacy_ner.vectors")
        ner: Any = nlp.get_pipe("ner")  # typed as a bare callable by spaCy
        for kind in types:
            ner.add_label(kind)
        examples = _examples(nlp, train)
        nlp.initialize(lambda: examples, sgd=optimizer)
    else:
        nlp, examples = build_from_base(params.base, types, train)
    batcher = registry.resolve({"batcher": training["batcher"]})["batcher"]
    model = SpacyNerTagger(nlp, labels, params.beam_width)
    progress = TrainingProgress(FAMILY, metric="entity_f1")
    with progress:
        progress.begin(examples=len(examples), epochs=params.epochs,
                       steps=params.epochs * steps, device="cpu")  # fmt: skip
        history = train_epochs(
            model.nlp, "ner", optimizer, batcher, examples, params=params,
            dropout=params.dropout, rng=random.Random(seed), progress=progress,
            on_epoch=on_epoch, metric="val_entity_f1",
            score=lambda: score_tagger(model.predict_tags, {"val": validation}),
        )  # fmt: skip
    progress.finish(history)
    return model
