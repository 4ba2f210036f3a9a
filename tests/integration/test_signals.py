"""SIGTERM (Kubernetes, Prefect cancellation) and SIGINT (Ctrl-C) stop nlpflow cleanly: within
10 s, exit 128 + signal, one line and no traceback, the MLflow run KILLED with the signal as its
reason, no process left behind, and a rerun that resumes. The signals go to the whole process
group, as a terminal's Ctrl-C does: the group also held Prefect's temporary server, whose death
cost minutes of EventsWorker tracebacks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import fast_params, make_project, mlflow_client

pytestmark = pytest.mark.slow
MODEL = "signals-test"


def _project(root: Path, encoder: Path, *, epochs: int) -> Path:
    tree = yaml.safe_load(fast_params(pretrained=encoder, epochs=epochs))
    tree["train"]["early_stopping_patience"] = epochs  # trains every epoch it is given
    tree["evaluate"]["bootstrap_samples"] = 100
    return make_project(root, yaml.safe_dump(tree, sort_keys=False))


def _env(venv_env: dict[str, str], root: Path) -> dict[str, str]:
    # no PREFECT_API_URL: Prefect's temporary server, as a user without a server has it
    env = {k: v for k, v in venv_env.items() if k not in {"PREFECT_API_URL", "MLFLOW_TRACKING_URI"}}
    env.pop("NLPFLOW_TRACKING_URI", None)
    return env | {"NLPFLOW_PROJECT_DIR": str(root), "NLPFLOW_REGISTERED_MODEL": MODEL}


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _stop_when(
    argv: list[str], *, root: Path, env: dict[str, str], seen: str, signum: int
) -> tuple[int, float, str, list[int]]:
    """Start `argv` in its own process group, wait until its output shows `seen`, send `signum`
    to the whole group; return (exit code, seconds it took to exit, stderr, its children)."""
    log = root.parent / f"{Path(argv[0]).name}-{signum}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(argv, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 600
        while seen not in log.read_text():
            assert proc.poll() is None, f"exited before {seen!r}:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no {seen!r} within 600 s"
            time.sleep(0.2)
        children = [pid for pid in _children(proc.pid) if _alive(pid)]
        os.killpg(proc.pid, signum)
        sent = time.monotonic()
        code = proc.wait(timeout=60)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return code, took, log.read_text(), children


def _runs(root: Path) -> list[Any]:
    client = mlflow_client(root)
    experiments = [e.experiment_id for e in client.search_experiments()]
    return list(client.search_runs(experiments, filter_string="tags.`nlpflow.runner` != ''"))


def _assert_stopped(root: Path, output: str, *, name: str, code: int, took: float) -> str:
    assert code == 128 + signal.Signals[name].value, output[-3000:]
    assert took < 10, f"took {took:.1f} s to exit"
    assert "Traceback" not in output and "EventsWorker" not in output, output[-3000:]
    last = output.strip().splitlines()[-1]
    runs = _runs(root)
    assert [r.info.status for r in runs] == ["KILLED"]
    run = runs[0]
    assert run.data.tags["nlpflow.stopped_by"] == name
    assert name in run.data.tags["mlflow.note.content"]
    assert f"stopped by {name}: MLflow run {run.info.run_id} marked KILLED" in output
    return last


def test_sigterm_stops_nlpflow_run_in_train_and_a_rerun_resumes(
    tmp_path: Path, tiny_encoder: Path, venv_env: dict[str, str]
) -> None:
    root = _project(tmp_path / "project", tiny_encoder, epochs=12)
    env = _env(venv_env, root)
    code, took, output, children = _stop_when(
        ["nlpflow", "run"], root=root, env=env, seen="epoch 2/12", signum=signal.SIGTERM
    )
    _assert_stopped(root, output, name="SIGTERM", code=code, took=took)
    assert children, "Prefect's temporary server should have been a child"
    time.sleep(2)
    assert not [pid for pid in children if _alive(pid)], "a child outlived nlpflow run"
    assert not (root / "models" / "model").exists()  # train never finished: no model folder
    assert not (root / ".nlpflow" / "active_run.json").exists()

    rerun = subprocess.run(["nlpflow", "run"], cwd=root, env=env, capture_output=True,
                           text=True, timeout=900)  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "resumed from checkpoint checkpoint-" in rerun.stderr
    statuses = sorted(r.info.status for r in _runs(root))
    assert statuses == ["FINISHED", "KILLED"]


def test_sigint_stops_nlpflow_run_in_train(
    tmp_path: Path, tiny_encoder: Path, venv_env: dict[str, str]
) -> None:
    root = _project(tmp_path / "project", tiny_encoder, epochs=200)
    code, took, output, _ = _stop_when(
        ["nlpflow", "run"], root=root, env=_env(venv_env, root), seen="epoch 1/200",
        signum=signal.SIGINT,
    )  # fmt: skip
    _assert_stopped(root, output, name="SIGINT", code=code, took=took)


def test_sigterm_to_dvc_repro_closes_the_stage_run(
    tmp_path: Path, tiny_encoder: Path, venv_env: dict[str, str]
) -> None:
    root = _project(tmp_path / "project", tiny_encoder, epochs=200)
    code, took, output, _ = _stop_when(
        ["dvc", "repro", "train"], root=root, env=_env(venv_env, root), seen="epoch 1/200",
        signum=signal.SIGTERM,
    )  # fmt: skip
    assert code != 0 and took < 10
    assert "Traceback" not in output, output[-3000:]
    runs = _runs(root)
    assert [(r.info.status, r.data.tags.get("nlpflow.stopped_by")) for r in runs] == [
        ("KILLED", "SIGTERM")
    ]
    assert not (root / ".nlpflow" / "active_run.json").exists()
    stages = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    assert "train" not in stages and "preprocess" in stages  # whole entries only


def _fake_dvc(tmp_path: Path, body: str) -> str:
    """A stand-in for `python -m dvc` (run_dvc runs sys.executable): a script doing `body`."""
    script = tmp_path / "fake-python"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return str(script)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("kill -TERM $$", "dvc was stopped by SIGTERM"),
        ("echo 'ERROR: lock is taken' >&2; kill -KILL $$", "dvc was stopped by SIGKILL (ERROR"),
        ("exit 3", "dvc exited with code 3 and printed nothing"),
    ],
)
def test_run_dvc_names_a_reason_when_dvc_says_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str, reason: str
) -> None:
    from nlpflow.pipeline.runs import DvcCommandError, run_dvc

    monkeypatch.setattr(sys, "executable", _fake_dvc(tmp_path, body))
    with pytest.raises(DvcCommandError) as caught:
        run_dvc(tmp_path, ["commit", "--force"], doing="dvc commit of stage(s) train")
    assert f"dvc commit of stage(s) train failed in {tmp_path}: {reason}" in str(caught.value)


def test_a_stop_signal_waits_for_dvc_then_stops(tmp_path: Path, venv_env: dict[str, str]) -> None:
    """SIGTERM while dvc writes: dvc finishes (it would die half-way), then the process stops."""
    done_file = tmp_path / "dvc-finished"
    code = f"""
import os, signal, sys
from pathlib import Path
from nlpflow.shutdown import Stopped, handle_stop_signals
from nlpflow.pipeline.runs import run_dvc
handle_stop_signals()
sys.executable = {_fake_dvc(tmp_path, f"sleep 1; touch {done_file}")!r}
signal.setitimer(signal.ITIMER_REAL, 0.3)
signal.signal(signal.SIGALRM, lambda *_: os.kill(os.getpid(), signal.SIGTERM))
try:
    run_dvc(Path({str(tmp_path)!r}), ["commit"], doing="dvc commit")
except Stopped as exc:
    print("stopped after dvc:", Path({str(done_file)!r}).exists(), exc.signum)
"""
    done = subprocess.run([sys.executable, "-c", code], env=venv_env, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.stdout.strip() == f"stopped after dvc: True {int(signal.SIGTERM)}", done.stderr


def test_partial_checkpoints_are_dropped_before_a_resume(tmp_path: Path) -> None:
    from nlpflow.training.train import drop_partial_checkpoints

    for name, state in [
        ("checkpoint-16", "{}"),
        ("checkpoint-32", '{"global'),
        ("checkpoint-48", None),
    ]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.safetensors").write_bytes(b"weights")
        if state is not None:
            (tmp_path / name / "trainer_state.json").write_text(state)
    assert drop_partial_checkpoints(tmp_path) == ["checkpoint-32", "checkpoint-48"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-16"]


def test_a_model_write_cut_short_leaves_the_previous_model_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pandas as pd

    from nlpflow.config.params import PreprocessParams, TrainParams
    from nlpflow.shutdown import Stopped
    from nlpflow.training.families.tfidf import TfidfClassifier
    from nlpflow.training.train import train

    frame = pd.read_csv(Path(__file__).parents[2] / "data" / "sample" / "support_tickets.csv")
    src = tmp_path / "data"
    src.mkdir()
    frame.iloc[:300].to_parquet(src / "train.parquet")
    frame.iloc[300:360].to_parquet(src / "validation.parquet")
    dst, params = tmp_path / "models" / "model", TrainParams(family="tfidf_logreg")

    def run() -> None:
        train(src=src, dst=dst, history_path=tmp_path / "history.csv", params=params,
              preprocess=PreprocessParams())  # fmt: skip

    run()
    before = {p.name: p.read_bytes() for p in dst.iterdir()}

    def cut_short(self: TfidfClassifier, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        (path / "manifest.json").write_text("{")
        raise Stopped(signal.SIGTERM)

    monkeypatch.setattr(TfidfClassifier, "save", cut_short)
    with pytest.raises(Stopped):
        run()
    assert {p.name: p.read_bytes() for p in dst.iterdir()} == before
