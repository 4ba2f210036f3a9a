"""The sweep flow on the tiny encoder: parallel trials, nested MLflow runs, the best trial's
values written to a params file, and median pruning. Prefect, Optuna and MLflow all real.

    .venv/bin/pytest tests/flows/test_sweep.py -q
"""

from __future__ import annotations

import json
import os
import socket
import statistics
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest
import yaml

from nlpflow.config.params import load_params
from nlpflow.training.sweep import SWEEP_DIR
from tests.conftest import fast_params, make_project, mlflow_client, project_environment

pytestmark = pytest.mark.slow
METRIC = "val_macro_f1"
# The tiny encoder learns in 1-2 epochs at these rates (macro-F1 0.3-0.65); at 32 texts a
# batch or rates below 1e-3 it stays at the majority class, and every trial would tie.
SPACE = {
    "lr": {"type": "float", "low": 3e-3, "high": 1.5e-2, "log": True},
    "batch_size": {"type": "categorical", "choices": [8, 16]},
    "epochs": {"type": "int", "low": 1, "high": 2},
    "warmup_ratio": {"type": "float", "low": 0.0, "high": 0.2},
    "dropout": {"type": "float", "low": 0.0, "high": 0.3},
    "trainable_layers": {"type": "categorical", "choices": [None, 1]},
}


def _params(tiny_encoder: Path, sweep: dict[str, Any]) -> str:
    tree = yaml.safe_load(fast_params(pretrained=tiny_encoder, epochs=2))
    tree["sweep"] = {"metric": METRIC, "seed": 7, "space": SPACE} | sweep
    return yaml.safe_dump(tree, sort_keys=False)


@pytest.fixture(scope="module")
def project(prefect_api: str, tiny_encoder: Path, tmp_path_factory: pytest.TempPathFactory):
    sweep = {"n_trials": 4, "parallelism": 2, "runner": "processes", "pruner": "none",
             "study": "parallel"}  # fmt: skip
    root = make_project(tmp_path_factory.mktemp("sweep") / "project", _params(tiny_encoder, sweep))
    with project_environment(root, "sweep-classifier"):
        yield root


@pytest.fixture(scope="module")
def swept(project: Path) -> dict[str, Any]:
    from nlpflow.flows.sweep import sweep_flow

    return sweep_flow(project_dir=str(project))


def _trial_runs(root: Path, parent: str) -> list[Any]:
    client = mlflow_client(root)
    experiment = client.get_experiment_by_name("nlpflow-sweep")
    return client.search_runs([experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{parent}'")


def _load_study(root: Path, name: str) -> Any:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    journal = root / SWEEP_DIR / name / "journal.log"
    return optuna.load_study(
        study_name=name, storage=JournalStorage(JournalFileBackend(str(journal)))
    )


def test_trials_ran_in_parallel(swept: dict[str, Any], project: Path) -> None:
    runs = _trial_runs(project, swept["run_id"])
    assert len(runs) == 4
    spans = [(r.info.start_time, r.info.end_time) for r in runs]
    overlapping = [(a, b) for a, b in combinations(spans, 2) if max(a[0], b[0]) < min(a[1], b[1])]
    # 2 at a time from the start: the first two overlap, and each later one overlaps another
    assert len(overlapping) >= 2, spans
    reports = swept["trials"]
    assert max(r["started"] for r in reports[:2]) < min(r["ended"] for r in reports[:2])
    pids = {int(r["worker"].rsplit(":", 1)[1]) for r in reports}
    assert len(pids) == 2 and os.getpid() not in pids  # the pool's two processes, not this one


def test_each_trial_is_a_nested_run_with_its_values_and_epochs(
    swept: dict[str, Any], project: Path
) -> None:
    client = mlflow_client(project)
    parent = client.get_run(swept["run_id"])
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["sweep.study"] == "parallel"
    study = _load_study(project, "parallel")
    by_number = {t.number: t for t in study.trials}
    runs = _trial_runs(project, swept["run_id"])
    assert sorted(r.data.tags["sweep.trial"] for r in runs) == ["0", "1", "2", "3"]
    for run in runs:
        trial = by_number[int(run.data.tags["sweep.trial"])]
        assert trial.user_attrs["mlflow_run_id"] == run.info.run_id
        assert run.info.status == "FINISHED" and run.data.tags["sweep.state"] == "COMPLETE"
        assert float(run.data.params["train.lr"]) == pytest.approx(trial.params["lr"])
        assert run.data.params["train.batch_size"] == str(trial.params["batch_size"])
        assert float(run.data.params["train.dropout"]) == pytest.approx(trial.params["dropout"])
        history = client.get_metric_history(run.info.run_id, "val/macro_f1")
        # one point per epoch the trial trained (its own epochs value, early stopping aside)
        assert [m.step for m in sorted(history, key=lambda m: m.step)] == list(
            range(1, len(history) + 1)
        )
        assert 1 <= len(history) <= trial.params["epochs"]
        assert trial.value == pytest.approx(max(m.value for m in history))
        assert run.data.metrics[f"best/{METRIC}"] == pytest.approx(trial.value)


def test_best_params_file_holds_the_best_completed_trial(
    swept: dict[str, Any], project: Path
) -> None:
    client = mlflow_client(project)
    runs = _trial_runs(project, swept["run_id"])
    scores = {
        r.info.run_id: max(
            m.value for m in client.get_metric_history(r.info.run_id, "val/macro_f1")
        )
        for r in runs
    }
    assert len(set(scores.values())) > 1, scores  # else any trial would pass as the best
    best_run = swept["best_run_id"]
    assert scores[best_run] == max(scores.values())  # ties: Optuna keeps the earliest
    best = next(r for r in runs if r.info.run_id == best_run)
    assert swept["best_value"] == pytest.approx(scores[best_run])
    assert swept["best_trial"] == int(best.data.tags["sweep.trial"])
    output = project / "reports/sweep/best_params.yaml"
    assert swept["output"] == str(output)
    written = yaml.safe_load(output.read_text())
    assert set(written) == {"train"} and set(written["train"]) == set(SPACE)
    assert written["train"]["lr"] == pytest.approx(float(best.data.params["train.lr"]))
    assert written["train"]["epochs"] == int(best.data.params["train.epochs"])
    # it merges over params.yaml as a config file, as `nlpflow run --config` does
    merged = load_params(project / "params.yaml", configs=[output])
    assert merged.train.lr == pytest.approx(written["train"]["lr"])
    assert merged.train.dropout == pytest.approx(written["train"]["dropout"])
    assert merged.train.pretrained == load_params(project / "params.yaml").train.pretrained
    # the parent run records the winner; only the winner's model is kept on disk
    parent = client.get_run(swept["run_id"])
    assert parent.data.metrics[f"best/{METRIC}"] == pytest.approx(scores[best_run])
    assert parent.data.tags["sweep.best_run_id"] == best_run
    assert float(parent.data.params["best.lr"]) == pytest.approx(written["train"]["lr"])
    models = sorted(p.parent.name for p in (project / SWEEP_DIR / "parallel").glob("*/model"))
    assert models == [f"trial-{swept['best_trial']}"]


def _median_rule_prunes(trial: Any, earlier: list[Any]) -> int | None:
    """The epoch at which Optuna's median rule (warm-up 0, one completed trial needed) stops
    `trial`, given the trials completed before it; None: it runs to the end."""
    for epoch in sorted(trial.intermediate_values):
        if not earlier:
            return None
        best_so_far = max(v for e, v in trial.intermediate_values.items() if e <= epoch)
        values = [t.intermediate_values[epoch] for t in earlier if epoch in t.intermediate_values]
        if values and best_so_far < statistics.median(values):
            return epoch
    return None


def test_median_pruner_stops_trials_worse_than_the_median(project: Path) -> None:
    from nlpflow.flows.sweep import sweep_flow

    # One at a time, so which trials completed before each one is fixed. At lr 1e-7 the
    # weights barely move (majority class, macro-F1 0.10); at 1e-2 the first epoch reaches
    # about 0.3. Seed 0 samples 1e-7, 1e-2, 1e-7, 1e-7, 1e-2: a bad trial completes while no
    # good one has, later bad ones fall below the median and stop at epoch 1.
    space = {
        "lr": {"type": "categorical", "choices": [1e-2, 1e-7]},
        "batch_size": {"type": "categorical", "choices": [16]},
    }
    sets = ["sweep.study=pruning", "sweep.n_trials=5", "sweep.parallelism=1", "sweep.runner=threads",
            "sweep.pruner=median", "sweep.pruner_startup_trials=1", "sweep.pruner_warmup_epochs=0",
            "train.epochs=2", f"sweep.space={json.dumps(space)}", "sweep.seed=0",
            "sweep.output=reports/sweep/pruning.yaml"]  # fmt: skip
    result = sweep_flow(project_dir=str(project), overrides=sets)
    study = _load_study(project, "pruning")
    states = [t.state.name for t in study.trials]
    assert "PRUNED" in states and "COMPLETE" in states, states
    client = mlflow_client(project)
    for trial in study.trials:
        earlier = [t for t in study.trials[: trial.number] if t.state.name == "COMPLETE"]
        expected = _median_rule_prunes(trial, earlier)
        run = client.get_run(trial.user_attrs["mlflow_run_id"])
        if expected is None:
            assert trial.state.name == "COMPLETE", trial.number
            assert run.info.status == "FINISHED"
        else:
            assert trial.state.name == "PRUNED" and trial.last_step == expected, trial.number
            assert run.info.status == "KILLED" and run.data.tags["sweep.state"] == "PRUNED"
    assert result["best_value"] == max(t.value for t in study.trials if t.state.name == "COMPLETE")
    assert [t["state"] for t in result["trials"]] == states


def test_threads_run_trials_of_other_families_side_by_side(project: Path) -> None:
    from nlpflow.flows.sweep import sweep_flow

    space = {"tfidf.C": {"type": "float", "low": 0.01, "high": 100.0, "log": True},
             "tfidf.ngram_max": {"type": "int", "low": 1, "high": 3}}  # fmt: skip
    sets = ["sweep.study=threads", "sweep.runner=threads", "sweep.n_trials=4",
            "sweep.parallelism=2", "sweep.pruner=none", "train.family=tfidf_logreg",
            f"sweep.space={json.dumps(space)}", "sweep.output=reports/sweep/threads.yaml"]  # fmt: skip
    result = sweep_flow(project_dir=str(project), overrides=sets)
    trials = result["trials"]
    assert [t["state"] for t in trials] == ["COMPLETE"] * 4
    assert {t["worker"] for t in trials} == {f"{socket.gethostname()}:{os.getpid()}"}
    assert max(t["started"] for t in trials[:2]) < min(t["ended"] for t in trials[:2])
    study = _load_study(project, "threads")  # both threads reported through the journal
    assert {t.user_attrs["mlflow_run_id"] for t in study.trials} == {t["run_id"] for t in trials}
    values = [t.value for t in study.trials]
    assert len(set(values)) > 1 and result["best_value"] == max(values)
    written = yaml.safe_load((project / "reports/sweep/threads.yaml").read_text())
    assert written["train"]["tfidf"] == {
        "C": pytest.approx(study.best_trial.params["tfidf.C"]),
        "ngram_max": study.best_trial.params["tfidf.ngram_max"],
    }


def test_a_trial_the_user_must_fix_fails_the_sweep_with_its_message(project: Path) -> None:
    from nlpflow.flows.sweep import sweep_flow
    from nlpflow.errors import ModelError

    # the tiny encoder has 2 layers: 5 trainable ones is a mistake every trial would repeat
    space = {"trainable_layers": {"type": "categorical", "choices": [5]}}
    sets = ["sweep.study=broken", "sweep.runner=threads", "sweep.parallelism=1",
            "sweep.n_trials=3", f"sweep.space={json.dumps(space)}"]  # fmt: skip
    with pytest.raises(ModelError, match="trainable_layers=5 but the encoder has 2 layers"):
        sweep_flow(project_dir=str(project), overrides=sets)
    (trial,) = _load_study(project, "broken").trials  # it stopped at the first
    assert trial.state.name == "FAIL"
    client = mlflow_client(project)
    run = client.get_run(trial.user_attrs["mlflow_run_id"])
    assert run.info.status == "FAILED" and run.data.tags["sweep.state"] == "FAIL"
    parent = client.get_run(run.data.tags["mlflow.parentRunId"])
    assert parent.info.status == "FAILED" and parent.data.tags["sweep.study"] == "broken"


def test_cli_sweep_prints_the_best_trial_and_how_to_use_it(
    project: Path, prefect_api: str, venv_env: dict[str, str]
) -> None:
    import subprocess

    sets = ["sweep.study=cli", "sweep.n_trials=1", "sweep.runner=threads", "sweep.parallelism=1",
            "sweep.pruner=none", "train.epochs=1",
            "sweep.output=reports/sweep/cli.yaml"]  # fmt: skip
    env = venv_env | {"NLPFLOW_PROJECT_DIR": str(project), "PREFECT_API_URL": prefect_api,
                      "NLPFLOW_REGISTERED_MODEL": "sweep-classifier"}  # fmt: skip
    done = subprocess.run(
        ["nlpflow", "sweep", *(arg for s in sets for arg in ("--set", s))], cwd=project,
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    study = _load_study(project, "cli")
    (trial,) = study.trials
    output = project / "reports/sweep/cli.yaml"
    assert "Sweep cli: 1 trials (1 complete, 0 pruned)" in done.stdout
    assert f"best trial 0: {METRIC} {trial.value:.4f}" in done.stdout
    assert f"train with them: nlpflow run --config {output}" in done.stdout
    assert yaml.safe_load(output.read_text())["train"]["lr"] == pytest.approx(trial.params["lr"])
