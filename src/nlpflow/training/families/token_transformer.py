"""token_transformer: fine-tune a pretrained encoder for named entities
(AutoModelForTokenClassification), one BIO tag per word of a pre-tokenised sentence.

The encoder's fast tokenizer splits the words into subwords (`is_split_into_words`); its
`word_ids` say which word each subword belongs to:
- training: a word's tag is learnt on its first subword; later subwords and special tokens get
  -100, which the loss ignores. `train.token_transformer.label_all_subwords` makes every subword
  learn it instead, a B-X word's later subwords as I-X (they continue the entity).
- prediction: a word's tag is the argmax of its first subword's logits, its probability that
  tag's softmax. Invalid BIO is then repaired: an I-X after O or after another type's tag
  becomes B-X (the probability stays the model's: the repair changes how the entity's start is
  written, not the type the model chose), so every predicted I- continues an entity.
- case: all-MiniLM-L6-v2's tokenizer lowercases, and case marks names. With
  `train.token_transformer.case_types` (auto: on for such an encoder) the token_type_ids of a
  capitalised word's subwords are 1: BERT's second segment embedding, learnt in fine-tuning
  as a "has a capital" feature; the saved model's manifest says so, and prediction does it too.
- truncation, not stride windows: a sentence longer than `train.max_length` subwords keeps its
  head; its words past the cut are tagged O with probability 1.0 (the model never saw them),
  and one warning per call counts the sentences and words cut. Entity sentences are short: at
  the default 128 subwords, none of WNUT-17's is cut.

Training is the transformer family's Trainer run (transformer.run_trainer): dynamic padding
(DataCollatorForTokenClassification), length-grouped batches, bf16/fp16 on CUDA only,
checkpoints and exact resume in `workdir`, early stopping and the best epoch on validation
entity F1 (seqeval strict, nlpflow.evaluation.ner.scores), balanced class weights per tag.

    nlpflow stage train      (with task: token-classification, train.family: token_transformer)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nlpflow.config.params import TrainParams
from nlpflow.errors import ModelError
from nlpflow.training.families import EpochCallback
from nlpflow.training.families.hf_trainer import StepCallback, speaker
from nlpflow.training.families.transformer import (
    HfModel,
    _load_pretrained,
    freeze_encoder,
    quiet_transformers,
    run_trainer,
    set_cpu_threads,
)

FAMILY = "token_transformer"
IGNORED = -100  # the label the loss (and DataCollatorForTokenClassification's padding) skips
log = logging.getLogger(__name__)


def first_subwords(word_ids: Sequence[int | None]) -> dict[int, int]:
    """Each word's first subword position; words without a subword (cut off, or emptied by
    the tokenizer's normalisation) are absent."""
    first: dict[int, int] = {}
    for position, word in enumerate(word_ids):
        if word is not None and word not in first:
            first[word] = position
    return first


def align_labels(
    word_ids: Sequence[int | None], tags: Sequence[str], index: dict[str, int], *,
    all_subwords: bool,
) -> list[int]:  # fmt: skip
    """The label id of every subword: its word's tag on the first subword; on later ones
    -100, or with `all_subwords` the tag again (B-X as I-X); -100 on special tokens."""
    out, previous = [], None
    for word in word_ids:
        if word is None:
            out.append(IGNORED)
        elif word != previous:
            out.append(index[tags[word]])
        elif all_subwords:
            inside = "I-" + tags[word][2:]
            out.append(index.get(inside, index[tags[word]]) if tags[word][:2] == "B-" else
                       index[tags[word]])  # fmt: skip
        else:
            out.append(IGNORED)
        previous = word
    return out


def repair_bio(tags: Sequence[str]) -> list[str]:
    """An I-X that continues no X (after O, at the start, after another type) becomes B-X."""
    out: list[str] = []
    for tag in tags:
        previous = out[-1] if out else "O"
        if tag.startswith("I-") and (previous == "O" or previous[2:] != tag[2:]):
            tag = "B-" + tag[2:]
        out.append(tag)
    return out


def case_type_ids(word_ids: Sequence[int | None], words: Sequence[str]) -> list[int]:
    """token_type_ids that carry case into an uncased encoder: 1 on every subword of a word
    with a capital letter, 0 on the others and on special tokens and padding."""
    capital = [any(ch.isupper() for ch in word) for word in words]
    return [int(word is not None and capital[word]) for word in word_ids]


def wants_case_types(setting: str, model: Any, tokenizer: Any) -> bool:
    """train.token_transformer.case_types resolved for this encoder (see its description)."""
    if setting == "off":
        return False
    able = getattr(model.config, "type_vocab_size", 0) >= 2 and (
        "token_type_ids" in tokenizer.model_input_names
    )
    if setting == "on" and not able:
        raise ModelError(
            "train.token_transformer.case_types: on needs an encoder with two token types "
            f"(token_type_ids); {type(model).__name__} has "
            f"{getattr(model.config, 'type_vocab_size', 0)}: set case_types: auto or off."
        )
    return able and (setting == "on" or bool(getattr(tokenizer, "do_lower_case", False)))


class TokenTransformer(HfModel):
    family = FAMILY
    auto_class = "AutoModelForTokenClassification"
    case_types = False  # token_type_ids mark capitalised words (case_type_ids)

    def save(self, path: Path) -> None:
        from nlpflow.training.families import update_manifest

        super().save(path)
        update_manifest(path, case_types=self.case_types)

    @classmethod
    def load(cls, path: Path) -> TokenTransformer:
        from nlpflow.training.families import load_manifest

        tagger = super().load(path)
        tagger.case_types = bool(load_manifest(path).get("case_types", False))
        return tagger

    def predict_tags(
        self, sentences: Sequence[Sequence[str]], batch_size: int = 64
    ) -> tuple[list[list[str]], list[list[float]]]:
        import torch

        words = [list(s) for s in sentences]
        tags: list[list[str]] = [[] for _ in words]
        proba: list[list[float]] = [[] for _ in words]
        device = next(self.model.parameters()).device
        # by length, so each batch pads to similar lengths; empty sentences have nothing to tag
        order = sorted((i for i, w in enumerate(words) if w), key=lambda i: len(words[i]))
        cut = [0, 0]  # sentences, words past max_length
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                enc = self.tokenizer(
                    [words[i] for i in idx], is_split_into_words=True, truncation=True,
                    max_length=self.max_length, padding=True, return_tensors="pt",
                )  # fmt: skip
                if self.case_types:
                    enc["token_type_ids"] = torch.tensor([
                        case_type_ids(enc.word_ids(row), words[i]) for row, i in enumerate(idx)
                    ])  # fmt: skip
                logits = self.model(**enc.to(device)).logits.float()
                best, chosen = torch.softmax(logits, dim=-1).max(dim=-1)
                best_np, chosen_np = best.cpu().numpy(), chosen.cpu().numpy()
                full = (enc["attention_mask"].sum(dim=1) >= self.max_length).tolist()
                for row, i in enumerate(idx):
                    first = first_subwords(enc.word_ids(row))
                    tags[i], proba[i] = self._words(
                        first, chosen_np[row], best_np[row], len(words[i])
                    )
                    # words missing after a full row were cut off (not emptied by the tokenizer)
                    lost = len(words[i]) - 1 - max(first, default=-1)
                    if lost > 0 and full[row]:
                        cut[0], cut[1] = cut[0] + 1, cut[1] + lost
        if cut[0]:
            log.warning(
                "%d of %d sentences are longer than max_length=%d subwords: their last %d "
                "words in all were tagged O unseen", cut[0], len(words), self.max_length, cut[1],
            )  # fmt: skip
        return tags, proba

    def _words(
        self, first: dict[int, int], chosen: np.ndarray, best: np.ndarray, n_words: int
    ) -> tuple[list[str], list[float]]:
        tags = [self.labels[chosen[first[w]]] if w in first else "O" for w in range(n_words)]
        proba = [float(best[first[w]]) if w in first else 1.0 for w in range(n_words)]
        return repair_bio(tags), proba


class _Tagged:
    """A torch-style dataset of tokenised sentences with subword labels; padding happens per
    batch in the collator."""

    def __init__(
        self, tokenizer: Any, xy: tuple[list[Any], list[Any]], *, labels: list[str],
        max_length: int, all_subwords: bool, case_types: bool = False,
    ) -> None:  # fmt: skip
        sentences = [list(s) for s in xy[0]]
        self.enc: Any = {"input_ids": []}
        word_ids: list[list[int | None]] = []
        # an empty split (data.split.validation: 0) has nothing to encode; tokenizers fail on []
        if sentences:
            self.enc = tokenizer(
                sentences, is_split_into_words=True, truncation=True, max_length=max_length
            )
            word_ids = [self.enc.word_ids(i) for i in range(len(sentences))]
            if case_types:
                self.enc["token_type_ids"] = [
                    case_type_ids(ids, words) for ids, words in zip(word_ids, sentences, strict=True)
                ]  # fmt: skip
        index = {tag: i for i, tag in enumerate(labels)}
        self.labels = [
            align_labels(ids, list(tags), index, all_subwords=all_subwords)
            for ids, tags in zip(word_ids, xy[1], strict=True)
        ]
        self.first = [first_subwords(ids) for ids in word_ids]
        self.words = [len(s) for s in sentences]
        # every learnt label, for balanced class weights (transformer._build_trainer)
        self.label_ids = [y for row in self.labels for y in row if y != IGNORED]
        self.seen: list[int] | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        if self.seen is not None:
            self.seen.append(i)
        return {k: v[i] for k, v in self.enc.items()} | {"labels": self.labels[i]}


def _entity_f1(val: _Tagged, gold: list[list[str]], labels: list[str]) -> Callable[[Any], Any]:
    """The Trainer's compute_metrics: validation entity F1 of the words, read as predict_tags
    reads them (first subwords, words cut off as O, BIO repaired)."""

    def score(prediction: Any) -> dict[str, float]:
        from nlpflow.evaluation.ner.scores import entity_scores

        # (sentences, subwords, tags), padded with -100 past each batch's length: never read
        chosen = np.asarray(prediction.predictions).argmax(axis=-1)
        predicted = [
            repair_bio([labels[chosen[i, first[w]]] if w in first else "O" for w in range(n)])
            for i, (first, n) in enumerate(zip(val.first, val.words, strict=True))
        ]
        return {"entity_f1": float(entity_scores(gold, predicted)["entity_f1"])}

    return score


def _check(xys: Sequence[tuple[list[Any], list[Any]]], labels: list[str]) -> None:
    known = set(labels)
    for words, tags in xys:
        for i, (w, t) in enumerate(zip(words, tags, strict=True)):
            if len(w) != len(t):
                raise ModelError(f"sentence {i}: {len(w)} tokens but {len(t)} tags")
            unknown = set(t) - known
            if unknown:
                raise ModelError(
                    f"sentence {i}: tags {sorted(unknown)} are not among the labels "
                    f"{labels}; list every B-/I- tag of the data (data.labels names the types)."
                )


def fit_token_transformer(
    train: tuple[list[Any], list[Any]],
    validation: tuple[list[Any], list[Any]],
    *,
    labels: list[str],
    params: TrainParams,
    on_epoch: EpochCallback | None = None,
    on_step: StepCallback | None = None,
    workdir: Path | None = None,
    callbacks: Sequence[Any] = (),
    record_seen: list[int] | None = None,
) -> TokenTransformer:
    """Fine-tune on (token lists, BIO tag lists) through the HF Trainer; `workdir`, `callbacks`
    and `record_seen` as in transformer.fit_transformer (checkpoints, extra TrainerCallbacks,
    the train sentences this process trains on under DDP)."""
    from transformers import AutoModelForTokenClassification, DataCollatorForTokenClassification

    _check((train, validation), labels)
    set_cpu_threads(params.cpu_threads)
    progress = speaker(FAMILY, metric="entity_f1")
    with quiet_transformers():  # a new head's "MISSING classifier weights" is expected here
        model, tokenizer = _load_pretrained(
            params.pretrained, labels, params.seed, params.dropout,
            head=AutoModelForTokenClassification,
        )  # fmt: skip
    if not tokenizer.is_fast:  # only fast tokenizers say which word a subword belongs to
        raise ModelError(
            f"train.pretrained={params.pretrained!r} has no fast tokenizer (tokenizer.json), "
            "which token-classification needs to map subwords to words; choose another encoder."
        )
    freeze_encoder(model, params.trainable_layers)
    own = params.token_transformer
    case_types = wants_case_types(own.case_types, model, tokenizer)

    def tagged(xy: tuple[list[Any], list[Any]]) -> _Tagged:
        return _Tagged(tokenizer, xy, labels=labels, max_length=params.max_length,
                       all_subwords=own.label_all_subwords, case_types=case_types)  # fmt: skip

    train_ds, val_ds = tagged(train), tagged(validation)
    train_ds.seen = record_seen
    run = run_trainer(
        model, params, progress=progress, train_ds=train_ds, val_ds=val_ds,
        collator=DataCollatorForTokenClassification(tokenizer), labels=labels, workdir=workdir,
        on_epoch=on_epoch, on_step=on_step, callbacks=callbacks,
        score=_entity_f1(val_ds, [list(t) for t in validation[1]], labels), metric="entity_f1",
    )  # fmt: skip
    tagger = TokenTransformer(run.model, tokenizer, labels, params.max_length)
    tagger.case_types = case_types
    tagger.history, tagger.resumed_from = run.history, run.resumed_from
    tagger.perf, tagger.device = run.perf, run.device
    return tagger
