"""params `sweep`: the search space's validation messages, how a trial's values merge onto the
train params, the Optuna distributions built from it, and train.dropout reaching the encoder.

    .venv/bin/pytest tests/unit/test_sweep_space.py -q
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from nlpflow.config.params import Params, TrainParams, load_params, parse_params
from nlpflow.errors import NlpflowError, ParamsError
from nlpflow.training.sweep import (
    _distribution,
    best_of,
    check_sweep,
    trial_train_params,
    write_best_params,
)

REPO = Path(__file__).resolve().parents[2]


def _error(space: dict[str, Any], **sweep: Any) -> str:
    with pytest.raises(ParamsError) as caught:
        parse_params({"sweep": {"space": space, **sweep}})
    return str(caught.value)


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"lr": {"type": "float", "low": 1e-3, "high": 1e-5}},
         "sweep.space.lr: low (0.001) must be below high (1e-05)"),
        ({"lr": {"type": "float", "low": 0.0, "high": 1e-3, "log": True}},
         "sweep.space.lr: log: true needs low > 0 (got 0)"),
        ({"lrr": {"type": "float", "low": 1e-5, "high": 1e-3}},
         "sweep.space: 'lrr' is not a train param (did you mean 'lr'?)"),
        ({"tfidf.CC": {"type": "float", "low": 1, "high": 3}},
         "'tfidf.CC' is not a train param (did you mean 'tfidf.C'?)"),
        ({"tfidf": {"type": "float", "low": 1, "high": 3}},
         "'tfidf' is a section; name one of its fields (tfidf.<field>)"),
        ({"lr": {"type": "float", "lo": 1e-5, "high": 1e-3}},
         "sweep.space: lr: unknown key 'lo'; allowed keys: choices, high, log, low, step, type"),
        ({"batch_size": {"type": "float", "low": 8, "high": 32}},
         "sweep.space: batch_size holds int values: use type int or categorical"),
        ({"epochs": {"type": "int", "low": 1, "high": 2.5}},
         "sweep.space.epochs: an int range needs whole numbers for low, high and step"),
        ({"dropout": {"type": "float", "low": 0.0, "high": 1.0}},
         "sweep.space: dropout: 1.0 is not a valid value: Input should be less than 1"),
        ({"batch_size": {"type": "categorical", "choices": [8, "large"]}},
         "sweep.space: batch_size: 'large' is not a valid value"),
        ({"batch_size": {"type": "categorical", "choices": []}},
         "sweep.space.batch_size: type categorical needs a non-empty list of choices"),
        ({"lr": {"type": "float", "low": 1e-5}},
         "sweep.space.lr: a float range needs both low and high"),
        ({"lr": 0.001}, "sweep.space: lr: expected a mapping like {type: float"),
        ({"lr": {"type": "grid", "low": 1e-5, "high": 1e-3}}, "sweep.space.lr.type: Input should be"),
    ],
)  # fmt: skip
def test_bad_space_is_refused_with_a_message_naming_the_entry(
    space: dict[str, Any], message: str
) -> None:
    assert message in _error(space)


def test_unknown_sweep_key_lists_the_sweep_keys() -> None:
    with pytest.raises(ParamsError) as caught:
        parse_params({"sweep": {"n_trails": 3}})
    assert "sweep.n_trails: unknown key; allowed keys here: experiment, metric, n_trials" in str(
        caught.value
    )


def test_repo_params_yaml_declares_the_issue_space() -> None:
    sweep = load_params(REPO / "params.yaml").sweep
    assert set(sweep.space) == {
        "lr", "batch_size", "epochs", "warmup_ratio", "dropout", "trainable_layers"
    }  # fmt: skip
    assert sweep.space["lr"].log and sweep.space["lr"].low == 1e-5  # YAML 1.0e-5, a float
    assert sweep.space["trainable_layers"].choices == [None, 2, 4]
    assert sweep.direction == "maximize" and Params().sweep.space == {}


def test_choices_are_stored_as_train_reads_them() -> None:
    # YAML 1.1 reads 1e-5 (no dot) as a string; the sweep must not suggest the string
    params = parse_params(
        {"sweep": {"space": {"lr": {"type": "categorical", "choices": ["1e-5", 0.001]}}}}
    )
    assert params.sweep.space["lr"].choices == [1e-5, 0.001]


def test_trial_values_merge_onto_train_params_nested_ones_included() -> None:
    base = TrainParams(lr=1e-4, epochs=4, tfidf={"C": 10.0, "ngram_max": 3})
    merged = trial_train_params(base, {"lr": 3e-3, "tfidf.C": 2.5, "dropout": None})
    assert (merged.lr, merged.tfidf.C, merged.dropout) == (3e-3, 2.5, None)
    assert (merged.epochs, merged.tfidf.ngram_max) == (4, 3)  # untouched values stay
    assert base.lr == 1e-4  # the base is not changed


def test_distributions_follow_the_space() -> None:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    sweep = parse_params(yaml.safe_load("""
sweep:
  space:
    lr: {type: float, low: 1.0e-5, high: 1.0e-3, log: true}
    epochs: {type: int, low: 2, high: 6, step: 2}
    trainable_layers: {type: categorical, choices: [null, 2]}
""")).sweep  # fmt: skip
    lr, epochs = _distribution("lr", sweep), _distribution("epochs", sweep)
    assert isinstance(lr, FloatDistribution) and (lr.low, lr.high, lr.log) == (1e-5, 1e-3, True)
    assert isinstance(epochs, IntDistribution) and (epochs.low, epochs.high, epochs.step) == (
        2, 6, 2
    )  # fmt: skip
    layers = _distribution("trainable_layers", sweep)
    assert isinstance(layers, CategoricalDistribution) and layers.choices == (None, 2)


def test_trial_value_is_the_best_epoch_in_the_metric_direction() -> None:
    history = [{"epoch": 1, "val_macro_f1": 0.4, "val_loss": 0.9},
               {"epoch": 2, "val_macro_f1": 0.6, "val_loss": 0.7},
               {"epoch": 3, "val_macro_f1": 0.5, "val_loss": 0.8}]  # fmt: skip
    assert best_of(history, metric="val_macro_f1", direction="maximize") == 0.6
    assert best_of(history, metric="val_loss", direction="minimize") == 0.7
    with pytest.raises(NlpflowError, match="reported no val_accuracy in any epoch"):
        best_of(history, metric="val_accuracy", direction="maximize")


def test_sweep_checks_before_anything_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ParamsError, match=r"sweep\.space is empty"):
        check_sweep(Params(), tmp_path)
    space = {"space": {"lr": {"type": "float", "low": 1e-5, "high": 1e-3}}}
    tfidf = parse_params(
        {"train": {"family": "tfidf_logreg"}, "sweep": space | {"metric": "val_loss"}}
    )
    with pytest.raises(ParamsError, match="tfidf_logreg reports no validation loss"):
        check_sweep(tfidf, tmp_path)
    threads = parse_params({"sweep": space | {"runner": "threads", "parallelism": 2}})
    with pytest.raises(ParamsError, match="threads cannot train transformer trials side by side"):
        check_sweep(threads, tmp_path)
    check_sweep(threads.model_copy(update={"train": tfidf.train}), tmp_path)  # no Trainer
    with monkeypatch.context() as mp:  # as if prefect-dask were not installed
        mp.setitem(sys.modules, "prefect_dask", None)
        with pytest.raises(ParamsError, match=r'pip install "nlpflow\[dask\]"'):
            check_sweep(parse_params({"sweep": space | {"runner": "dask"}}), tmp_path)


def test_best_params_file_merges_over_params_yaml(tmp_path: Path) -> None:
    output = tmp_path / "best.yaml"
    write_best_params(
        output, study="s", trial=3, value=0.8125, values={"lr": 2e-4, "tfidf.C": 0.5},
        metric="val_macro_f1", run_id="abc", shown="best.yaml",
    )  # fmt: skip
    text = output.read_text()
    assert "trial 3, val_macro_f1 = 0.8125 (MLflow run abc)" in text
    assert "nlpflow run --config best.yaml" in text
    merged = load_params(REPO / "params.yaml", configs=[output])
    assert (merged.train.lr, merged.train.tfidf.C) == (2e-4, 0.5)
    assert merged.train.epochs == load_params(REPO / "params.yaml").train.epochs


def test_train_dropout_sets_every_dropout_of_the_encoder(tiny_encoder: Path) -> None:
    import torch

    from nlpflow.training.families.transformer import _load_pretrained

    def rates(dropout: float | None) -> set[float]:
        model, _ = _load_pretrained(str(tiny_encoder), ["a", "b"], 0, dropout)
        return {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)}

    assert rates(None) == {0.1}  # BertConfig's own
    assert rates(0.3) == {0.3}  # hidden states, attention and the classification head


@pytest.mark.subprocess  # `nlpflow` in a child process
@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("sweep.space={}", "sweep.space is empty: declare the train params to search"),
        ("sweep.runner=dask", 'pip install "nlpflow[dask]"'),
        ("sweep.space.lr.low=0", "sweep.space.lr: log: true needs low > 0"),
    ],
)
def test_cli_refuses_a_bad_sweep_before_starting(
    override: str, message: str, tmp_path: Path, venv_env: dict[str, str]
) -> None:
    import subprocess

    # the dev install has prefect-dask: the child runs `nlpflow` as if it had not
    absent = "import sys; sys.modules['prefect_dask'] = None; "
    nlpflow = [sys.executable, "-c", f"{absent}from nlpflow.cli.main import main; main()"]
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    done = subprocess.run(
        [*nlpflow, "sweep", "--set", override], cwd=tmp_path, capture_output=True, text=True,
        env=venv_env | {"NLPFLOW_PROJECT_DIR": str(tmp_path)}, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert message in " ".join(done.stderr.split())  # rich wraps long lines
    assert not (tmp_path / "mlflow.db").exists()  # refused before any run was opened
