"""Crash and resume: a training killed with SIGKILL mid-epoch and started again on the same
checkpoint folder ends with the same weights and metrics as a training never interrupted."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from nlpflow.config.params import CheckpointParams, TrainParams
from tests.conftest import REPO

# Runs one training in a fresh process; with KILL_AT > 0 the process SIGKILLs itself when that
# optimizer step ends (after the checkpoint before it), as an OOM kill or a lost node would.
SCRIPT = """
import json, os, signal, sys
from pathlib import Path
import pandas as pd
from transformers import TrainerCallback
from nlpflow.training.families.transformer import fit_transformer
from nlpflow.config.params import TrainParams

params = TrainParams.model_validate_json(sys.argv[1])
kill_at, workdir, out = int(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
frame = pd.read_csv(sys.argv[5])
train = (frame["text"].tolist()[:64], frame["label"].tolist()[:64])
val = (frame["text"].tolist()[64:96], frame["label"].tolist()[64:96])

class KillAt(TrainerCallback):
    def on_step_end(self, args, state, control, **kw):
        if state.global_step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

model = fit_transformer(train, val, labels=sorted(set(frame["label"])), params=params,
                        workdir=workdir, callbacks=[KillAt()])
model.save(out)
print(json.dumps({"history": model.history, "resumed_from": model.resumed_from}))
"""


def _train(
    params: TrainParams, kill_at: int, workdir: Path, out: Path, env: dict
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, params.model_dump_json(), str(kill_at), str(workdir),
         str(out), str(REPO / "data/sample/support_tickets.csv")],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=600,
    )  # fmt: skip


def _weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "hf" / "model.safetensors"))


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(
    tiny_encoder: Path, tmp_path: Path, venv_env: dict
) -> None:
    # 64 texts in batches of 8: 8 steps an epoch; checkpoints every 3 steps and at epoch ends
    params = TrainParams(
        family="transformer", pretrained=str(tiny_encoder), epochs=3, batch_size=8, lr=2e-3,
        max_length=32, cpu_threads=1, early_stopping_patience=3,
        # every step logged: a log after a resume averages only the steps since the resume
        log_every_steps=1,
        checkpoints=CheckpointParams(every_steps=3, keep=2),
    )  # fmt: skip
    whole = _train(params, 0, tmp_path / "ckpt-a", tmp_path / "a", venv_env)
    assert whole.returncode == 0, whole.stderr[-3000:]

    killed = _train(params, 11, tmp_path / "ckpt-b", tmp_path / "b", venv_env)
    assert killed.returncode == -signal.SIGKILL  # died in epoch 2, 2 steps after checkpoint 9
    assert not (tmp_path / "b").exists()
    left = sorted(p.name for p in (tmp_path / "ckpt-b").glob("checkpoint-*"))
    assert "checkpoint-9" in left and len(left) <= 3  # keep 2, plus the best epoch's

    resumed = _train(params, 0, tmp_path / "ckpt-b", tmp_path / "b", venv_env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = json.loads(whole.stdout.strip().splitlines()[-1])
    b = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert (a["resumed_from"], b["resumed_from"]) == (None, "checkpoint-9")
    assert [row["epoch"] for row in b["history"]] == [1.0, 2.0, 3.0]  # epochs before the crash too
    for row_a, row_b in zip(a["history"], b["history"], strict=True):
        assert row_a.keys() == row_b.keys()
        for key in row_a:
            assert row_b[key] == pytest.approx(row_a[key], abs=1e-6), key
    wa, wb = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert wa.keys() == wb.keys()
    worst = max(float((wa[k] - wb[k]).abs().max()) for k in wa)
    assert worst <= 1e-6, worst


def test_resume_never_starts_afresh(tiny_encoder: Path, tmp_path: Path) -> None:
    import pandas as pd

    from nlpflow.training.families.transformer import fit_transformer

    frame = pd.read_csv(REPO / "data/sample/support_tickets.csv")
    xy = (frame["text"].tolist()[:32], frame["label"].tolist()[:32])
    params = TrainParams(
        family="transformer", pretrained=str(tiny_encoder), epochs=1, batch_size=8,
        max_length=32, checkpoints=CheckpointParams(every_steps=2, resume="never"),
    )  # fmt: skip
    labels = sorted(set(frame["label"]))
    first = fit_transformer(xy, xy, labels=labels, params=params, workdir=tmp_path)
    assert first.resumed_from is None and list(tmp_path.glob("checkpoint-*"))
    again = fit_transformer(xy, xy, labels=labels, params=params, workdir=tmp_path)
    assert again.resumed_from is None
    auto = params.model_copy(update={"checkpoints": CheckpointParams(every_steps=2)})
    # a finished training's checkpoints resume at its end: nothing left to train
    assert fit_transformer(xy, xy, labels=labels, params=auto, workdir=tmp_path).resumed_from
