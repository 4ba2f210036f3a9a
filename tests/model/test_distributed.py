"""Distributed training: torchrun starts 2 CPU processes (gloo) on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from nlpflow.config.params import DistributedParams, TrainParams
from nlpflow.errors import ModelError
from nlpflow.training.distributed import MODEL, RESULT, SHARDS, launch
from tests.conftest import SAMPLE


@pytest.mark.slow
def test_two_processes_train_disjoint_shards_and_only_rank_0_writes(
    tiny_encoder: Path, tmp_path: Path
) -> None:
    frame = pd.read_csv(SAMPLE)
    texts, labels = frame["text"].tolist(), frame["label"].tolist()
    train, val = (texts[:64], labels[:64]), (texts[64:96], labels[64:96])
    test = (texts[96:160], labels[96:160])
    params = TrainParams(
        family="transformer", pretrained=str(tiny_encoder), epochs=1, batch_size=8, lr=3e-3,
        max_length=32, cpu_threads=1,
        distributed=DistributedParams(nproc_per_node=2, backend="gloo"),
    )  # fmt: skip
    names = sorted(set(labels))
    model = launch(train, val, labels=names, params=params, workdir=tmp_path)

    shards = [json.loads((tmp_path / SHARDS / f"rank-{r}.json").read_text()) for r in (0, 1)]
    seen = [set(s["examples"]) for s in shards]
    assert len(shards[0]["examples"]) == len(shards[1]["examples"]) == 32  # 64 rows, 2 ranks
    assert not seen[0] & seen[1]  # disjoint shards...
    assert seen[0] | seen[1] == set(range(64))  # ...that cover the train split once
    assert [s["wrote_model"] for s in shards] == [True, False]
    result = json.loads((tmp_path / RESULT).read_text())
    assert result["world_size"] == 2
    assert [row["epoch"] for row in result["history"]] == [1.0]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["checkpoints", MODEL, RESULT, SHARDS, "spec.json"]
    )  # rank 1 wrote nothing but its shard record

    proba = model.predict_proba(test[0])
    assert proba.shape == (64, len(names))
    assert abs(proba.sum(axis=1) - 1).max() < 1e-5
    assert model.labels == names and model.history == result["history"]


def test_distributed_other_families_is_a_clear_error(tmp_path: Path) -> None:
    params = TrainParams(family="tfidf_logreg", distributed=DistributedParams(nproc_per_node=2))
    with pytest.raises(
        ModelError,
        match=r"Hugging Face Trainer families only \(transformer, token_transformer\), not .tfidf_logreg.",
    ):
        launch((["a"], ["x"]), (["b"], ["x"]), labels=["x"], params=params, workdir=tmp_path)
