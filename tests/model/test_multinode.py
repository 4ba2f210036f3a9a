"""Training across machines, rehearsed on one: two torchrun launches as two nodes (one gloo
process each) meeting at a c10d rendezvous on 127.0.0.1, started as two machines start them:
the lead runs `train` as the train stage does, the other machine runs `nlpflow train-node`.
Then a node is lost (SIGKILL of its whole process group) after the first checkpoint, both
commands run again, and training resumes from the checkpoint in the shared folder.

    .venv/bin/python -m pytest tests/model/test_multinode.py -q
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from nlpflow.config.params import CheckpointParams, DistributedParams, TrainParams
from tests.conftest import SAMPLE
from tests.serve_client import free_port

EPOCHS, TRAIN_ROWS, BATCH = 5, 64, 8
STEPS_PER_EPOCH = TRAIN_ROWS // (BATCH * 2)  # two processes, each its half of every batch

# The lead machine: the train stage as `nlpflow stage train` runs it (untracked here), its
# checkpoint folder and rendezvous from the settings (environment). A spy on `launch` keeps
# what the processes recorded, which the stage deletes with the checkpoints once the model is
# saved; the model is kept per attempt too.
LEAD = """
import json, shutil, sys
from pathlib import Path
from nlpflow.config.params import Params
from nlpflow.config.settings import load_settings
from nlpflow.pipeline.context import StageContext
from nlpflow.pipeline.paths import MODEL
from nlpflow.pipeline.steps import train as stage
from nlpflow.training import distributed

train_params, root, kept = json.loads(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
real = distributed.launch

def launch(*args, **kwargs):
    model = real(*args, **kwargs)
    shutil.copytree(kwargs["workdir"] / distributed.SHARDS, kept / distributed.SHARDS)
    shutil.copy(kwargs["workdir"] / distributed.RESULT, kept / distributed.RESULT)
    return model

distributed.launch = launch
ctx = StageContext(root=root, params=Params.model_validate({"train": train_params}),
                   settings=load_settings())
report = stage.run(ctx)
shutil.copytree(root / MODEL, kept / "model")
print(report.model_dump_json())
"""


@dataclass
class Machines:
    """Two "machines": one shared checkpoint folder, one rendezvous, each its own project."""

    root: Path
    params: TrainParams
    env: dict[str, str]
    results: list[tuple[int, str, str]] = field(default_factory=list)  # (exit code, out, err)

    @property
    def shared(self) -> Path:
        return self.root / "shared"

    def start_other(self) -> subprocess.Popen[str]:
        # its own folder and session: it shares nothing with the lead but the shared folder
        # and the rendezvous, and a SIGKILL of its process group takes torchrun's processes too
        project = self.root / "other-machine"
        project.mkdir(exist_ok=True)
        return subprocess.Popen(
            ["nlpflow", "train-node"], cwd=project,
            env=self.env | {"NLPFLOW_PROJECT_DIR": str(project)},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )  # fmt: skip

    def start_lead(self, attempt: str) -> subprocess.Popen[str]:
        kept, project = self.root / attempt, self.root / "lead"
        kept.mkdir()
        return subprocess.Popen(
            [sys.executable, "-c", LEAD, self.params.model_dump_json(), str(project), str(kept)],
            cwd=project, env=self.env | {"NLPFLOW_PROJECT_DIR": str(project)},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )  # fmt: skip


def _machines(root: Path, tiny_encoder: Path) -> Machines:
    frame = pd.read_csv(SAMPLE)
    processed = root / "lead" / "data" / "processed"  # what preprocess left on the lead
    processed.mkdir(parents=True)
    frame.iloc[:TRAIN_ROWS].to_parquet(processed / "train.parquet")
    frame.iloc[TRAIN_ROWS : TRAIN_ROWS + 32].to_parquet(processed / "validation.parquet")
    params = TrainParams(
        family="transformer", pretrained=str(tiny_encoder), epochs=EPOCHS, batch_size=BATCH,
        lr=3e-3, max_length=32, cpu_threads=1, early_stopping_patience=EPOCHS, log_every_steps=1,
        checkpoints=CheckpointParams(keep=2),  # at every epoch's end
        distributed=DistributedParams(nnodes=2, nproc_per_node=1, backend="gloo"),
    )  # fmt: skip
    env = dict(os.environ) | {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "NLPFLOW_RDZV_ENDPOINT": f"127.0.0.1:{free_port()}",
        "NLPFLOW_RDZV_ID": f"test-{uuid.uuid4().hex[:8]}",
        "NLPFLOW_RDZV_TIMEOUT": "180",
        "NLPFLOW_CHECKPOINT_DIR": str(root / "shared"),
    }
    return Machines(root, params, env)


def _finish(process: subprocess.Popen[str], timeout: float = 600) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_all(process)
        out, err = process.communicate()
    return process.returncode, out, err


def _kill_all(process: subprocess.Popen[str]) -> int:
    """SIGKILL `process` and every process under it, torchrun's too (it starts each in a
    session of its own, so a process group is not enough); how many there were."""
    import psutil

    try:
        found = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    for each in found:
        with contextlib.suppress(psutil.NoSuchProcess):  # it ended by itself meanwhile
            each.kill()
    process.wait()
    return len(found)


def _stop(*processes: subprocess.Popen[str]) -> None:
    """Whatever a failed test left running: these processes and theirs, nothing else."""
    for process in processes:
        if process.poll() is None:
            _kill_all(process)


def _shards(kept: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((kept / "shards").glob("rank-*.json"))]


def _weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "hf" / "model.safetensors"))


@pytest.fixture(scope="module")
def uninterrupted(
    tmp_path_factory: pytest.TempPathFactory, tiny_encoder: Path
) -> Iterator[Machines]:
    """A whole two-node training; the other machine is started first and waits for the lead."""
    machines = _machines(tmp_path_factory.mktemp("two-nodes"), tiny_encoder)
    other = machines.start_other()
    lead = machines.start_lead("run")
    try:
        machines.results = [_finish(lead), _finish(other)]
        yield machines
    finally:
        _stop(lead, other)


@pytest.mark.slow
def test_two_nodes_meet_train_disjoint_shards_and_only_global_rank_0_writes(
    uninterrupted: Machines,
) -> None:
    (lead_code, lead_out, lead_err), (other_code, other_out, other_err) = uninterrupted.results
    assert lead_code == 0, lead_err[-3000:]
    assert other_code == 0, other_err[-3000:]
    assert "waiting for the lead node's training" in other_out  # it was started first
    assert "train-node: trained 1 of 2 processes" in other_out

    kept = uninterrupted.root / "run"
    shards = _shards(kept)
    assert sorted(s["node"] for s in shards) == ["0", "1"]  # one process on each node
    half = TRAIN_ROWS // 2
    assert [len(s["examples"]) for s in shards] == [EPOCHS * half] * 2
    for epoch in range(EPOCHS):  # each epoch: disjoint halves that cover the train split
        seen = [set(s["examples"][epoch * half : (epoch + 1) * half]) for s in shards]
        assert not seen[0] & seen[1] and seen[0] | seen[1] == set(range(TRAIN_ROWS)), epoch
    assert [s["wrote_model"] for s in shards] == [True, False]  # rank 0, on whichever node
    assert json.loads((kept / "result.json").read_text())["world_size"] == 2

    report = json.loads(lead_out.strip().splitlines()[-1])
    assert [row["epoch"] for row in report["history"]] == [float(e) for e in range(1, EPOCHS + 1)]
    assert report["resumed_from"] is None
    # one model, the lead's: nothing left in the shared folder (checkpoints, job file), and
    # nothing on the other machine
    assert (kept / "model" / "hf" / "model.safetensors").is_file()
    assert [p.relative_to(uninterrupted.shared) for p in uninterrupted.shared.rglob("*")
            if p.is_file()] == []  # fmt: skip
    assert not list((uninterrupted.root / "other-machine").rglob("*.safetensors"))

    from nlpflow.training.families.transformer import TransformerClassifier

    model = TransformerClassifier.load(kept / "model")
    texts = pd.read_csv(SAMPLE)["text"].tolist()[100:140]
    proba = model.predict_proba(texts)
    assert proba.shape == (40, len(model.labels)) and abs(proba.sum(axis=1) - 1).max() < 1e-5
    losses = [row["train_loss"] for row in report["history"]]
    assert losses[-1] < losses[0], losses  # it learned


@pytest.mark.slow
def test_two_nodes_train_the_model_one_machine_with_two_processes_trains(
    uninterrupted: Machines, tmp_path: Path
) -> None:
    """2 nodes x 1 process is the same training as 1 node x 2 processes: same world size,
    same shards, same weights, whatever machine each rank ran on."""
    from nlpflow.training.distributed import launch
    from nlpflow.training.train import examples, target_labels

    src = uninterrupted.root / "lead" / "data" / "processed"
    train_xy = examples(pd.read_parquet(src / "train.parquet"))
    val_xy = examples(pd.read_parquet(src / "validation.parquet"))
    one = uninterrupted.params.model_copy(
        update={"distributed": DistributedParams(nnodes=1, nproc_per_node=2, backend="gloo")}
    )
    launch(train_xy, val_xy, labels=target_labels(train_xy[1]), params=one, workdir=tmp_path)
    local, nodes = _weights(tmp_path / "model"), _weights(uninterrupted.root / "run" / "model")
    assert local.keys() == nodes.keys()
    worst = max(float((local[k] - nodes[k]).abs().max()) for k in nodes)
    assert worst <= 1e-5, worst


@pytest.mark.slow
def test_a_lost_node_then_a_rerun_resumes_from_the_shared_checkpoint(
    uninterrupted: Machines, tmp_path: Path, tiny_encoder: Path
) -> None:
    machines = _machines(tmp_path, tiny_encoder)
    other, lead = machines.start_other(), machines.start_lead("killed")
    try:
        deadline = time.monotonic() + 300
        while not list(machines.shared.glob("*/*/checkpoints/checkpoint-*/trainer_state.json")):
            assert lead.poll() is None and other.poll() is None, _finish(lead)[2][-3000:]
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            time.sleep(0.05)
        # the machine is gone: train-node, torchrun and its process at once (killing
        # train-node's group alone leaves torchrun's process training on, and the lead then
        # finished with that orphan)
        assert _kill_all(other) >= 3
        lead_code, _, lead_err = _finish(lead)
    finally:
        _stop(lead, other)
    assert other.returncode == -signal.SIGKILL
    assert lead_code != 0 and "distributed training failed" in lead_err, lead_err[-3000:]

    def complete(checkpoint: Path) -> bool:
        try:
            return bool(json.loads((checkpoint / "trainer_state.json").read_text()))
        except (OSError, ValueError):
            return False  # killed while it was written: the rerun drops it

    left = [c for c in machines.shared.glob("*/*/checkpoints/checkpoint-*") if complete(c)]
    last = max(int(c.name.removeprefix("checkpoint-")) for c in left)
    assert last % STEPS_PER_EPOCH == 0 and 0 < last < EPOCHS * STEPS_PER_EPOCH, last
    assert not (machines.shared / "jobs").exists() or not list((machines.shared / "jobs").iterdir())

    other, lead = machines.start_other(), machines.start_lead("rerun")
    try:
        (lead_code, lead_out, lead_err), (other_code, _, other_err) = _finish(lead), _finish(other)
    finally:
        _stop(lead, other)
    assert lead_code == 0, lead_err[-3000:]
    assert other_code == 0, other_err[-3000:]
    report = json.loads(lead_out.strip().splitlines()[-1])
    assert report["resumed_from"] == f"checkpoint-{last}"
    # every epoch in the history, those before the loss too
    assert [row["epoch"] for row in report["history"]] == [float(e) for e in range(1, EPOCHS + 1)]
    # not from scratch: each process trained only the epochs after the checkpoint
    done = last // STEPS_PER_EPOCH
    shards = _shards(tmp_path / "rerun")
    assert [s["resumed_from"] for s in shards] == [f"checkpoint-{last}"] * 2
    assert [len(s["examples"]) for s in shards] == [(EPOCHS - done) * TRAIN_ROWS // 2] * 2
    # and it ends where the uninterrupted training ended
    resumed, whole = (
        _weights(tmp_path / "rerun" / "model"),
        _weights(uninterrupted.root / "run" / "model"),
    )
    assert resumed.keys() == whole.keys()
    worst = max(float((resumed[k] - whole[k]).abs().max()) for k in whole)
    assert worst <= 1e-5, worst


def test_a_lead_alone_says_the_others_did_not_join_and_how_to_start_them(tmp_path: Path) -> None:
    from nlpflow.errors import ModelError
    from nlpflow.training.distributed import JOBS, Rendezvous, launch

    params = TrainParams(family="transformer", distributed=DistributedParams(nnodes=2))
    rendezvous = Rendezvous(f"127.0.0.1:{free_port()}", "alone", tmp_path, timeout=3)
    with pytest.raises(ModelError) as raised:
        launch((["a"], ["x"]), (["b"], ["x"]), labels=["x"], params=params,
               workdir=tmp_path / "code" / "key", rendezvous=rendezvous)  # fmt: skip
    message = str(raised.value)
    assert "Not all 2 nodes joined within NLPFLOW_RDZV_TIMEOUT (3 s)" in message
    assert "run `nlpflow train-node` on the other machines" in message
    assert list((tmp_path / JOBS).iterdir()) == []  # a node started later joins nothing


def test_train_node_without_a_lead_or_an_endpoint_says_what_to_set(tmp_path: Path) -> None:
    env = dict(os.environ) | {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "NLPFLOW_PROJECT_DIR": str(tmp_path), "NLPFLOW_CHECKPOINT_DIR": str(tmp_path / "shared"),
        "NLPFLOW_RDZV_TIMEOUT": "2",
    }  # fmt: skip
    for name in ("NLPFLOW_RDZV_ENDPOINT", "MASTER_ADDR", "MASTER_PORT", "NLPFLOW_RDZV_ID"):
        env.pop(name, None)
    no_endpoint = subprocess.run(["nlpflow", "train-node"], env=env, capture_output=True,
                                 text=True, timeout=120)  # fmt: skip
    assert no_endpoint.returncode == 2
    said = " ".join(no_endpoint.stderr.split())  # rich wraps long lines
    assert (
        "error: [NLP006]" in said and "set NLPFLOW_RDZV_ENDPOINT to host:port of the lead" in said
    )
    assert "waiting" not in no_endpoint.stdout  # said at once, not after the wait

    env["NLPFLOW_RDZV_ENDPOINT"] = "127.0.0.1:29400"
    no_lead = subprocess.run(["nlpflow", "train-node"], env=env, capture_output=True, text=True,
                             timeout=120)  # fmt: skip
    assert no_lead.returncode == 2
    assert "waiting for the lead node's training" in no_lead.stdout
    said = " ".join(no_lead.stderr.split())
    assert "no lead node announced training job 'nlpflow'" in said
    assert "the same NLPFLOW_CHECKPOINT_DIR" in said
    assert "Traceback" not in no_lead.stdout + no_lead.stderr
