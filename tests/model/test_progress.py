"""Training progress for people: the lines on the `nlpflow.training.train` logger say where a training
stands (epoch, step, loss, validation metric, examples/s, ETA), at epoch ends and at most every
interval, a resume names its checkpoint, and one-shot families say when they start and end."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from transformers import TrainerCallback

from nlpflow.config.params import CheckpointParams, TrainParams
from nlpflow.training.progress import TrainingProgress
from tests.conftest import SAMPLE

LINE = re.compile(
    r"epoch (?P<epoch>\d+)/(?P<epochs>\d+) · step (?P<step>\d+)/(?P<steps>\d+)"
    r"(?: · loss (?P<loss>[\d.]+))?(?: · val macro_f1 (?P<val>[\d.]+))?"
    r"(?: · (?P<rate>[\d.]+) examples/s)?(?: · ETA (?P<h>\d+):(?P<m>\d\d):(?P<s>\d\d))?$"
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _lines(caplog: pytest.LogCaptureFixture, kind: str | None = None) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "nlpflow.train" and kind in (None, getattr(r, "nlpflow_progress", None))
    ]


def _parse(line: str) -> dict[str, float]:
    match = LINE.match(line)
    assert match, line
    values = {k: float(v) for k, v in match.groupdict().items() if v is not None}
    if "h" in values:
        values["eta"] = values.pop("h") * 3600 + values.pop("m") * 60 + values.pop("s")
    return values


def test_lines_at_intervals_and_epoch_ends_with_measured_speed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="nlpflow.train")
    clock = Clock()
    progress = TrainingProgress("transformer", interval=5, bar=False, clock=clock)
    # 40 examples, 2 epochs of 5 steps: 8 examples a step; one step a second
    progress.begin(examples=40, epochs=2, steps=10, device="cpu")
    for step in range(1, 11):
        clock.now += 1
        progress.step(step, loss=1 / step)
        if step % 5 == 0:
            clock.now += 3  # evaluation: not training speed, but the ETA must allow for it
            epoch = step // 5
            progress.epoch_end(
                epoch, {"train_loss": 0.6 - 0.1 * epoch, "val_macro_f1": 0.5 + 0.1 * epoch}
            )
    clock.now += 2  # saving the model: 10 s of training, 6 of evaluation, 2 of saving
    progress.finish([{"epoch": 1.0, "val_macro_f1": 0.6}, {"epoch": 2.0, "val_macro_f1": 0.7}])
    assert _lines(caplog) == [
        "training transformer on 40 examples (2 epochs, 10 steps) on cpu",
        # 5 s since the start: the interval's first line, then the epoch's end
        "epoch 1/2 · step 5/10 · loss 0.200 · 8.0 examples/s · ETA 0:00:05",
        # 8 s for 5 steps so far: the 5 steps left take 8 s more
        "epoch 1/2 · step 5/10 · loss 0.500 · val macro_f1 0.600 · 8.0 examples/s · ETA 0:00:08",
        # steps 6 to 9 come less than 5 s after the epoch's line: none of them is logged
        "epoch 2/2 · step 10/10 · loss 0.100 · val macro_f1 0.600 · 8.0 examples/s · ETA 0:00:00",
        "epoch 2/2 · step 10/10 · loss 0.400 · val macro_f1 0.700 · 8.0 examples/s · ETA 0:00:00",
        "trained in 18.0 s (best epoch 2, val macro_f1 0.700)",
    ]
    assert [len(_lines(caplog, kind)) for kind in ("start", "step", "epoch", "done")] == [
        1,
        2,
        2,
        1,
    ]


def test_a_resume_names_its_checkpoint_and_speed_counts_only_steps_trained_here(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="nlpflow.train")
    clock = Clock()
    progress = TrainingProgress("transformer", interval=0, bar=False, clock=clock)
    progress.begin(examples=40, epochs=2, steps=10, resumed=("checkpoint-6", 6))
    clock.now += 2  # one step in 2 s: 4 examples/s, 3 steps left take 6 s
    progress.step(7, loss=0.25)
    assert _lines(caplog)[1:] == [
        "resumed from checkpoint checkpoint-6 (epoch 2/2, step 6/10)",
        # had the 6 steps before the crash counted, it would say 28 examples/s, ETA 0:00:01
        "epoch 2/2 · step 7/10 · loss 0.250 · 4.0 examples/s · ETA 0:00:06",
    ]


def test_one_bar_at_a_time_and_no_step_lines_under_a_bar(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="nlpflow.train")
    shown = TrainingProgress("transformer", interval=0, bar=True)
    beside = TrainingProgress("spacy_textcat", interval=0, bar=True)  # a parallel training
    with shown, beside:
        shown.begin(examples=8, epochs=1, steps=2)
        beside.begin(examples=8, epochs=1, steps=2)
        assert shown._bar is not None and beside._bar is None
        shown.step(1, loss=0.5)
        beside.step(1, loss=0.5)
        shown.epoch_end(1, {"train_loss": 0.5, "val_macro_f1": 0.8})
    assert [line.split(" · ")[:2] for line in _lines(caplog, "step")] == [["epoch 1/1", "step 1/2"]]
    assert len(_lines(caplog, "epoch")) == 1  # the bar's epoch end is logged all the same
    again = TrainingProgress("transformer", bar=True)  # the closed bar freed its place
    with again:
        again.begin(examples=8, epochs=1, steps=2)
        assert again._bar is not None


def _params(tiny_encoder: Path, **extra: object) -> TrainParams:
    base = TrainParams(
        family="transformer", pretrained=str(tiny_encoder), epochs=3, batch_size=8, lr=2e-3,
        max_length=32, cpu_threads=1, device="cpu", early_stopping_patience=3, log_every_steps=1,
    )  # fmt: skip
    return base.model_copy(update=extra)


def _data(rows: int) -> tuple[tuple[list[str], list[str]], tuple[list[str], list[str]], list[str]]:
    frame = pd.read_csv(SAMPLE)
    texts, labels = frame["text"].tolist(), frame["label"].tolist()
    train = (texts[:rows], labels[:rows])
    val = (texts[rows : rows + 16], labels[rows : rows + 16])
    return train, val, sorted(set(labels))


def test_transformer_logs_every_epoch_with_its_scores_speed_and_eta(
    tiny_encoder: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nlpflow.training.families.transformer import fit_transformer

    caplog.set_level(logging.INFO, logger="nlpflow.train")
    monkeypatch.setenv("NLPFLOW_PROGRESS_SECONDS", "0")  # a line after every step
    train, val, labels = _data(32)  # 4 steps an epoch, 12 in all
    model = fit_transformer(train, val, labels=labels, params=_params(tiny_encoder))
    history = model.history or []
    assert len(history) == 3
    assert _lines(caplog, "start") == [
        "training transformer on 32 examples (3 epochs, 12 steps) on cpu"
    ]
    epochs = [_parse(line) for line in _lines(caplog, "epoch")]
    assert [(e["epoch"], e["epochs"], e["step"], e["steps"]) for e in epochs] == [
        (1, 3, 4, 12), (2, 3, 8, 12), (3, 3, 12, 12),
    ]  # fmt: skip
    for line, row in zip(epochs, history, strict=True):
        assert line["loss"] == pytest.approx(row["train_loss"], abs=5e-4)
        assert line["val"] == pytest.approx(row["val_macro_f1"], abs=5e-4)
        assert line["rate"] > 0
        # the steps left (8 examples each) take at least what training alone would take:
        # the ETA also allows for the evaluations to come
        left = (12 - line["step"]) * 8 / line["rate"]
        assert line["eta"] >= left - 0.6
    etas = [e["eta"] for e in epochs]
    assert etas == sorted(etas, reverse=True) and etas[-1] == 0
    steps = [_parse(line)["step"] for line in _lines(caplog, "step")]
    assert steps == list(range(1, 13))
    best = max(history, key=lambda r: r["val_macro_f1"])
    (done,) = _lines(caplog, "done")
    expected = rf"trained in [\d.]+ s \(best epoch {int(best['epoch'])}, val macro_f1 {best['val_macro_f1']:.3f}\)"
    assert re.fullmatch(expected, done), done


class _Crash(TrainerCallback):
    def on_step_end(self, args, state, control, **kw):  # type: ignore[no-untyped-def]
        if state.global_step == 3:
            raise RuntimeError("simulated crash after step 3")


def test_a_resumed_training_says_where_it_resumed(
    tiny_encoder: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from nlpflow.training.families.transformer import fit_transformer

    caplog.set_level(logging.INFO, logger="nlpflow.train")
    params = _params(tiny_encoder, epochs=2, checkpoints=CheckpointParams(every_steps=2))
    train, val, labels = _data(32)  # 4 steps an epoch, 8 in all; checkpoints at 2, 4, 6
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit_transformer(
            train, val, labels=labels, params=params, workdir=tmp_path, callbacks=[_Crash()]
        )
    assert not _lines(caplog, "resumed")
    caplog.clear()
    model = fit_transformer(train, val, labels=labels, params=params, workdir=tmp_path)
    assert model.resumed_from == "checkpoint-2"
    assert _lines(caplog, "resumed") == [
        "resumed from checkpoint checkpoint-2 (epoch 1/2, step 2/8)"
    ]
    # both epochs end in this process: the first was cut short by the crash
    assert [_parse(line)["epoch"] for line in _lines(caplog, "epoch")] == [1, 2]
    assert _lines(caplog, "done")[0].endswith(
        f"val macro_f1 {max(r['val_macro_f1'] for r in model.history or []):.3f})"
    )


def test_tfidf_says_when_it_starts_and_ends(caplog: pytest.LogCaptureFixture) -> None:
    from nlpflow.training.train import fit

    caplog.set_level(logging.INFO, logger="nlpflow.train")
    train, val, labels = _data(200)
    scores: dict[str, float] = {}
    fit(train, val, labels=labels, params=TrainParams(family="tfidf_logreg"),
        on_epoch=lambda _, s: scores.update(s))  # fmt: skip
    start, done = _lines(caplog)
    assert start == "training tfidf_logreg on 200 examples"
    assert re.fullmatch(
        rf"trained in \d+\.\d s \(val macro_f1 {scores['val_macro_f1']:.3f}\)", done
    )


def test_spacy_textcat_logs_each_epoch(caplog: pytest.LogCaptureFixture) -> None:
    from nlpflow.config.params import SpacyTextcatParams

    caplog.set_level(logging.INFO, logger="nlpflow.train")
    history: list[float] = []
    train, val, labels = _data(64)
    params = TrainParams(
        family="spacy_textcat", spacy_textcat=SpacyTextcatParams(epochs=2, batch_size=16)
    )
    from nlpflow.training.train import fit

    fit(
        train,
        val,
        labels=labels,
        params=params,
        on_epoch=lambda _, s: history.append(s["val_macro_f1"]),
    )
    assert _lines(caplog, "start") == [
        "training spacy_textcat on 64 examples (2 epochs, 8 steps) on cpu"
    ]
    epochs = [_parse(line) for line in _lines(caplog, "epoch")]
    assert [(e["epoch"], e["step"]) for e in epochs] == [(1, 4), (2, 8)]
    assert [e["val"] for e in epochs] == pytest.approx(history, abs=5e-4)
    assert not _lines(caplog, "step")  # the default interval (30 s) is longer than this training


def test_the_stage_runner_shows_the_lines_on_stderr_once() -> None:
    code = (
        "from nlpflow.cli.stages import show_library_lines as show; show(); show()\n"
        "from nlpflow.training.progress import TrainingProgress\n"
        "p = TrainingProgress('tfidf_logreg'); p.begin(examples=3); p.finish()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == [
        "training tfidf_logreg on 3 examples", lines[1].split(" ", 1)[1],
    ]  # fmt: skip
    assert re.fullmatch(r"\d\d:\d\d:\d\d trained in \d+\.\d s", lines[1])
    assert done.stdout == ""
