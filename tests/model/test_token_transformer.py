"""token_transformer (issue 15): subword label alignment, BIO repair, and a tiny random BERT
(tests/conftest.py's tiny_encoder) that overfits a synthetic NER task, reloads to the same
tags and probabilities, predicts the same in batches as alone, and resumes a crashed training
to the same history."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import pytest

from nlpflow.config.params import FAMILIES, CheckpointParams, Family, TrainParams
from nlpflow.config.sections.families import TokenTransformerParams
from nlpflow.errors import ModelError
from nlpflow.evaluation.ner.scores import entity_scores
from nlpflow.training.families import load_manifest, load_model
from nlpflow.training.families.token_transformer import (
    IGNORED,
    TokenTransformer,
    align_labels,
    fit_token_transformer,
    repair_bio,
)

LABELS = ["O", "B-PER", "I-PER", "B-PRODUCT", "I-PRODUCT"]
# Whole words of the tiny encoder's vocabulary (built from the ticket sample), except zorblax,
# which it splits into one subword per letter
FILLER = ["the", "my", "is", "order", "team", "account", "thanks", "please", "support",
          "delivery", "help", "code", "package", "refund", "error"]  # fmt: skip
ENTITIES = {
    "PER": [["liam"], ["anna"], ["kenji"], ["anna", "kenji"], ["liam", "zorblax"]],
    "PRODUCT": [["iphone"], ["android"], ["safari"], ["apple", "iphone"]],
}


def make_sentences(n: int, seed: int) -> tuple[list[list[str]], list[list[str]]]:
    """3-6 filler words with one or two entities (of one or two words) put in among them."""
    rng = random.Random(seed)
    sentences, tags = [], []
    for _ in range(n):
        words = rng.sample(FILLER, rng.randint(3, 6))
        row = ["O"] * len(words)
        for kind in rng.sample(sorted(ENTITIES), rng.randint(1, 2)):
            entity, at = rng.choice(ENTITIES[kind]), rng.randint(0, len(words))
            words[at:at] = entity
            row[at:at] = [f"B-{kind}"] + [f"I-{kind}"] * (len(entity) - 1)
        sentences.append(words)
        tags.append(row)
    return sentences, tags


def tagger_params(encoder: Path, **changes: object) -> TrainParams:
    values: dict[str, object] = dict(
        family="transformer", pretrained=str(encoder), max_length=32, epochs=20, batch_size=8,
        lr=3e-3, warmup_ratio=0.0, early_stopping_patience=20, cpu_threads=1,
    )  # fmt: skip
    return TrainParams.model_validate(values | changes)


@pytest.fixture(scope="module")
def trained(tiny_encoder: Path, tmp_path_factory: pytest.TempPathFactory):
    train = make_sentences(30, seed=0)
    history: list[tuple[int, dict[str, float]]] = []
    model = fit_token_transformer(
        train, train, labels=LABELS, params=tagger_params(tiny_encoder),
        on_epoch=lambda epoch, scores: history.append((epoch, scores)),
    )  # fmt: skip
    folder = tmp_path_factory.mktemp("token-transformer") / "model"
    model.save(folder)
    return model, folder, train, history


def test_first_subword_alignment_on_a_fast_tokenizer(tiny_encoder: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder)
    words, tags = ["refund", "zorblax", "kenji"], ["O", "B-PER", "I-PER"]
    enc = tokenizer([words], is_split_into_words=True)
    assert enc.word_ids(0) == [None, 0, 1, 1, 1, 1, 1, 1, 1, 2, None]  # z ##o ##r ##b ##l ##a ##x
    index = {tag: i for i, tag in enumerate(LABELS)}
    first = align_labels(enc.word_ids(0), tags, index, all_subwords=False)
    assert first == [IGNORED, 0, 1, *[IGNORED] * 6, 2, IGNORED]
    every = align_labels(enc.word_ids(0), tags, index, all_subwords=True)
    assert every == [IGNORED, 0, 1, *[2] * 6, 2, IGNORED]  # B-PER's later subwords are I-PER


def test_all_subwords_alignment_keeps_b_without_its_i_and_repeats_other_tags() -> None:
    index = {"O": 0, "B-LOC": 1, "I-PER": 2, "B-PER": 3}
    word_ids = [None, 0, 0, 1, 1, 2, 2, None]
    tags = ["B-LOC", "B-PER", "I-PER"]
    assert align_labels(word_ids, tags, index, all_subwords=True) == [
        IGNORED, 1, 1, 3, 2, 2, 2, IGNORED,
    ]  # fmt: skip


def test_bio_repair_starts_every_i_that_continues_nothing() -> None:
    tags = ["I-PER", "I-PER", "O", "I-LOC", "B-PER", "I-LOC", "I-LOC", "B-LOC", "I-LOC"]
    assert repair_bio(tags) == [
        "B-PER", "I-PER", "O", "B-LOC", "B-PER", "B-LOC", "I-LOC", "B-LOC", "I-LOC",
    ]  # fmt: skip


def test_overfits_then_reloads_identically(trained, monkeypatch: pytest.MonkeyPatch) -> None:
    model, folder, (sentences, gold), _ = trained
    tags, proba = model.predict_tags(sentences)
    assert entity_scores(gold, tags)["entity_f1"] >= 0.9
    assert load_manifest(folder)["labels"] == LABELS
    entry = Family(
        "token_transformer", "fine-tuning for entities", code="token_transformer",
        fit="fit_token_transformer", model="TokenTransformer", main_knob=("lr", "lr"),
        tasks=("token-classification",), sections=("token_transformer",), shared=None,
    )  # fmt: skip
    monkeypatch.setitem(FAMILIES, "token_transformer", entry)
    loaded = load_model(folder)  # as evaluate and serving load it, through the registry
    assert isinstance(loaded, TokenTransformer)
    # the tiny encoder's tokenizer lowercases: case_types auto marked capitals, and reloads so
    assert model.case_types is loaded.case_types is True
    assert load_manifest(folder)["case_types"] is True
    again, again_proba = loaded.predict_tags(sentences)
    assert again == tags
    for row, row_again in zip(proba, again_proba, strict=True):
        assert row_again == pytest.approx(row, abs=1e-6)
        assert all(0.0 < p <= 1.0 for p in row)


def test_every_epoch_reports_validation_entity_f1_and_loss(trained) -> None:
    model, _, _, history = trained
    assert [epoch for epoch, _ in history] == list(range(1, 21))
    assert all({"val_entity_f1", "val_loss"} <= scores.keys() for _, scores in history)
    assert history[0][1]["val_entity_f1"] < history[-1][1]["val_entity_f1"]
    best = max(row["val_entity_f1"] for row in model.history)
    assert best == max(scores["val_entity_f1"] for _, scores in history) >= 0.9


def test_batched_equals_unbatched(trained) -> None:
    model, _, (sentences, _), _ = trained
    tags, proba = model.predict_tags(sentences, batch_size=7)
    for i, sentence in enumerate(sentences[:12]):
        alone, alone_proba = model.predict_tags([sentence])
        assert alone[0] == tags[i]
        assert alone_proba[0] == pytest.approx(proba[i], abs=1e-5)


def test_words_past_max_length_are_o_with_one_warning(
    trained, caplog: pytest.LogCaptureFixture
) -> None:
    model, _, _, _ = trained
    short = TokenTransformer(model.model, model.tokenizer, LABELS, max_length=8)
    long = ["anna", "kenji", "the", "iphone", "team", "liam", "order", "android", "safari", "is"]
    with caplog.at_level(logging.WARNING):
        tags, proba = short.predict_tags([long, ["hi", "anna"], []])
    # [CLS] + 6 words + [SEP] = 8 subwords: the last 4 words were never seen
    assert tags[0][6:] == ["O"] * 4 and proba[0][6:] == [1.0] * 4
    assert len(tags[1]) == 2 and (tags[2], proba[2]) == ([], [])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "1 of 3 sentences are longer than max_length=8 subwords: their last 4 words in all "
        "were tagged O unseen"
    ]


def test_tags_outside_the_labels_are_refused_before_training(tiny_encoder: Path) -> None:
    with pytest.raises(ModelError, match=r"\['B-LOC'\] are not among the labels"):
        fit_token_transformer(
            ([["paris"]], [["B-LOC"]]), ([], []), labels=LABELS, params=tagger_params(tiny_encoder)
        )


class _Crashed(RuntimeError):
    pass


def test_a_crashed_training_resumes_to_the_same_history(tiny_encoder: Path, tmp_path: Path) -> None:
    from transformers import TrainerCallback

    class CrashAt(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):  # type: ignore[no-untyped-def]
            if state.global_step == 7:
                raise _Crashed

    # 30 sentences in batches of 8: 4 steps an epoch; checkpoint-6 lies inside epoch 2. Every
    # step logged: a log after a resume averages only the steps since the resume. Every subword
    # labelled and balanced tag weights, so that both train here too.
    params = tagger_params(
        tiny_encoder, epochs=3, log_every_steps=1, class_weights="balanced",
        token_transformer=TokenTransformerParams(label_all_subwords=True),
        checkpoints=CheckpointParams(every_steps=3, keep=2),
    )  # fmt: skip
    train, validation = make_sentences(30, seed=0), make_sentences(8, seed=1)

    def run(folder: str, *callbacks: TrainerCallback) -> TokenTransformer:
        return fit_token_transformer(
            train, validation, labels=LABELS, params=params, workdir=tmp_path / folder,
            callbacks=callbacks,
        )  # fmt: skip

    whole = run("a")
    with pytest.raises(_Crashed):
        run("b", CrashAt())
    resumed = run("b")  # the same checkpoint folder: resumes from checkpoint-6
    assert (whole.resumed_from, resumed.resumed_from) == (None, "checkpoint-6")
    assert whole.history and [row["epoch"] for row in whole.history] == [1.0, 2.0, 3.0]
    assert resumed.history is not None and len(resumed.history) == 3
    for row_a, row_b in zip(whole.history, resumed.history, strict=True):
        assert row_a.keys() == row_b.keys() >= {"train_loss", "val_loss", "val_entity_f1"}
        assert row_b == pytest.approx(row_a, abs=1e-6)
    tags_a, proba_a = whole.predict_tags(validation[0])
    tags_b, proba_b = resumed.predict_tags(validation[0])
    assert tags_b == tags_a
    flat_a, flat_b = [p for row in proba_a for p in row], [p for row in proba_b for p in row]
    assert flat_b == pytest.approx(flat_a, abs=1e-6)


def test_weighted_loss_reads_one_label_per_token_and_skips_ignored_ones() -> None:
    import torch
    import torch.nn.functional as F

    from nlpflow.training.families.transformer import _weighted_loss

    logits = torch.randn(2, 4, 3, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([[IGNORED, 0, 2, IGNORED], [IGNORED, 1, IGNORED, IGNORED]])
    weights = torch.tensor([1.0, 2.0, 0.5])

    class Out:
        pass

    out = Out()
    out.logits = logits  # type: ignore[attr-defined]
    kept = labels != IGNORED
    each = F.cross_entropy(logits[kept], labels[kept], reduction="none") * weights[labels[kept]]
    # the Trainer divides by the tokens that count (3), not the 8 positions
    assert float(_weighted_loss(weights)(out, labels)) == pytest.approx(float(each.sum() / 3))


@pytest.mark.slow
def test_two_torchrun_processes_train_a_tagger_on_disjoint_shards(
    tiny_encoder: Path, tmp_path: Path
) -> None:
    """DDP for the tagger as for the classifier: torchrun, 2 CPU processes (gloo), each its own
    half of the train sentences; rank 0 writes the model, which tags as a tagger does."""
    import json

    from nlpflow.config.params import DistributedParams
    from nlpflow.training.distributed import RESULT, SHARDS, launch

    train, val = make_sentences(32, seed=3), make_sentences(8, seed=4)
    params = tagger_params(
        tiny_encoder, family="token_transformer", epochs=1, distributed=DistributedParams(
            nproc_per_node=2, backend="gloo"),
    )  # fmt: skip
    model = launch(train, val, labels=LABELS, params=params, workdir=tmp_path)
    shards = [json.loads((tmp_path / SHARDS / f"rank-{r}.json").read_text()) for r in (0, 1)]
    seen = [set(s["examples"]) for s in shards]
    assert len(seen[0]) == len(seen[1]) == 16 and not seen[0] & seen[1]
    assert seen[0] | seen[1] == set(range(32))
    assert [s["wrote_model"] for s in shards] == [True, False]
    result = json.loads((tmp_path / RESULT).read_text())
    assert result["world_size"] == 2 and [row["epoch"] for row in result["history"]] == [1.0]
    assert "val_entity_f1" in result["history"][0]
    assert model.family == "token_transformer" and model.labels == LABELS
    tags, proba = model.predict_tags(val[0])
    assert [len(t) for t in tags] == [len(s) for s in val[0]]
    assert all(0.0 < p <= 1.0 for row in proba for p in row)


def test_case_types_mark_the_subwords_of_capitalised_words(tiny_encoder: Path) -> None:
    from transformers import AutoConfig, AutoTokenizer

    from nlpflow.training.families.token_transformer import case_type_ids, wants_case_types

    words = ["Anna", "ordered", "an", "iPhone", "from", "zorblax", "USA"]
    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder)
    enc = tokenizer(words, is_split_into_words=True)
    ids = case_type_ids(enc.word_ids(), words)
    assert ids[0] == ids[-1] == 0  # [CLS], [SEP]
    for position, word in enumerate(enc.word_ids()):
        if word is not None:
            assert ids[position] == (1 if words[word] in {"Anna", "iPhone", "USA"} else 0)

    class Model:  # the switch reads the config and tokenizer only
        config = AutoConfig.from_pretrained(tiny_encoder)

    assert wants_case_types("auto", Model, tokenizer) and not wants_case_types("off", Model,
                                                                                tokenizer)  # fmt: skip
    tokenizer.do_lower_case = False  # a cased encoder: auto leaves token types alone
    assert not wants_case_types("auto", Model, tokenizer)
    assert wants_case_types("on", Model, tokenizer)
    Model.config.type_vocab_size = 1  # RoBERTa-like: one token type
    with pytest.raises(ModelError, match="case_types: on needs an encoder with two token types"):
        wants_case_types("on", Model, tokenizer)
    assert not wants_case_types("auto", Model, tokenizer)
