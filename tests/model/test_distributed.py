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


# A training the CLI runs (nlpflow.shutdown's handler), stopped by SIGTERM once training is
# under way, as Kubernetes or a Prefect cancellation stops it.
STOPPED = """
import sys
from pathlib import Path
import pandas as pd
from nlpflow.config.params import CheckpointParams, DistributedParams, TrainParams
from nlpflow.shutdown import handle_stop_signals
from nlpflow.training.distributed import launch

handle_stop_signals()
frame = pd.read_csv(sys.argv[2])
xy = (frame["text"].tolist()[:64], frame["label"].tolist()[:64])
params = TrainParams(family="transformer", pretrained=sys.argv[1], epochs=200, batch_size=8,
                     max_length=32, cpu_threads=1, early_stopping_patience=200,
                     checkpoints=CheckpointParams(every_steps=2, keep=1),
                     distributed=DistributedParams(nproc_per_node=2, backend="gloo"))
launch(xy, xy, labels=sorted(set(frame["label"])), params=params, workdir=Path(sys.argv[3]))
"""


@pytest.mark.slow
def test_sigterm_stops_torchruns_processes_too(tiny_encoder: Path, tmp_path: Path) -> None:
    """torchrun starts each process in a session of its own: when the launcher killed torchrun
    (subprocess.run does, on any exception), its processes trained on as orphans."""
    import signal
    import subprocess
    import sys
    import time

    import psutil

    workdir = tmp_path / "work"
    launcher = subprocess.Popen(
        [sys.executable, "-c", STOPPED, str(tiny_encoder), str(SAMPLE), str(workdir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip

    def training() -> list[psutil.Process]:  # torchrun and its processes: the spec names them
        named = (p for p in psutil.process_iter(["cmdline"]) if p.pid != launcher.pid)
        return [p for p in named if str(workdir) in " ".join(p.info["cmdline"] or [])]

    try:
        deadline = time.monotonic() + 300
        while not list(workdir.glob("checkpoints/checkpoint-*")):
            assert launcher.poll() is None, launcher.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            time.sleep(0.1)
        assert len(training()) == 3  # torchrun and its 2 processes
        launcher.send_signal(signal.SIGTERM)
        launcher.communicate(timeout=60)
        deadline = time.monotonic() + 60
        while training() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert training() == []
    finally:  # what a failure left: these processes, nothing else
        for process in training():
            process.kill()
        if launcher.poll() is None:
            launcher.kill()
