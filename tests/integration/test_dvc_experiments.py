"""DVC experiments through nlpflow, as a user runs them in a git + DVC project (tfidf_logreg):

1. `dvc repro`, committed: the baseline the experiments branch from;
2. two queued experiments (`dvc exp run --queue -S ...`, `dvc queue start -j 1`), which DVC runs
   one after the other in temporary copies of the repository under .dvc/tmp/exps/;
3. two experiments in the workspace (`dvc exp run -n NAME -S ...`).

Then `dvc exp show` and MLflow must agree: one FINISHED run per experiment, tagged with its
name, in the project's own store; plain `dvc push`/`dvc pull` use the remote nlpflow pushed to;
and `nlpflow reproduce` rebuilds a `dvc repro` run and a `dvc exp run` run with every metric equal.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, _venv_env, fast_params, make_project, mlflow_client

pytestmark = pytest.mark.slow

MODEL = "dvc-exp-classifier"
QUEUED = {"q-two": 2.0, "q-three": 3.0}
WORKSPACE = {"c-one": 1.0, "c-five": 5.0}


def _run(root: Path, env: dict[str, str], *args: str, timeout: int = 900) -> str:
    done = subprocess.run(
        list(args), cwd=root, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{args}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _wait_for_queue(root: Path, env: dict[str, str], *, seconds: int = 900) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status = _run(root, env, "dvc", "queue", "status")
        if "Queued" not in status and "Running" not in status:
            return status
        time.sleep(5)
    raise AssertionError(f"the queue did not finish in {seconds} s:\n{status}")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Any:
    base = tmp_path_factory.mktemp("dvc-experiments")
    root = make_project(base / "project", fast_params(family="tfidf_logreg"))
    # the repository's own .gitignore: metrics.json must be in git for `dvc exp show`
    shutil.copy(REPO / ".gitignore", root / ".gitignore")
    env = _venv_env() | {"NLPFLOW_REGISTERED_MODEL": MODEL, "XDG_DATA_HOME": str(base / "xdg")}
    # no NLPFLOW_PROJECT_DIR: a queued experiment's stages find their project as its working dir
    for name in (
        "NLPFLOW_PROJECT_DIR",
        "NLPFLOW_TRACKING_URI",
        "MLFLOW_TRACKING_URI",
        "NLPFLOW_DVC_REMOTE",
        "DVC_EXP_NAME",
        "DVC_EXP_BASELINE_REV",
        "DVC_ROOT",
    ):
        env.pop(name, None)  # fmt: skip
    _run(root, env, "git", "commit", "-qam", "the repository's .gitignore")
    _run(root, env, "dvc", "repro")
    _run(root, env, "git", "add", "-A")
    _run(root, env, "git", "commit", "-qm", "baseline: dvc repro")
    baseline = _run(root, env, "git", "rev-parse", "HEAD").strip()
    try:
        for name, c in QUEUED.items():
            _run(root, env, "dvc", "exp", "run", "--queue", "-n", name, "-S", f"train.tfidf.C={c}")
        _run(root, env, "dvc", "queue", "start", "-j", "1")
        queue = _wait_for_queue(root, env)
    finally:
        subprocess.run(["dvc", "queue", "stop", "--kill"], cwd=root, env=env, capture_output=True)
    for name, c in WORKSPACE.items():
        _run(root, env, "dvc", "exp", "run", "-n", name, "-S", f"train.tfidf.C={c}")
    return {"root": root, "env": env, "baseline": baseline, "queue": queue, "base": base}


def _experiments(root: Path, env: dict[str, str]) -> dict[str, dict[str, Any]]:
    """`dvc exp show --json`: experiment name -> its params.yaml and metrics.json."""
    found = {}
    for row in json.loads(_run(root, env, "dvc", "exp", "show", "--json")):
        for exp in row.get("experiments") or []:
            data = exp["revs"][0]["data"]
            found[exp["name"]] = {
                "params": data["params"]["params.yaml"]["data"],
                "metrics": data["metrics"]["reports/metrics.json"]["data"],
            }
    return found


def _runs_of(root: Path, name: str) -> list[Any]:
    client = mlflow_client(root)
    experiment = client.get_experiment_by_name("nlpflow")
    return list(
        client.search_runs(
            [experiment.experiment_id], filter_string=f"tags.`dvc.exp_name` = '{name}'"
        )
    )


def test_the_queue_ran_both_experiments(lab: Any) -> None:
    lines = [line.split() for line in lab["queue"].splitlines()]
    assert {cols[1]: cols[-1] for cols in lines if cols and cols[1] in QUEUED} == {
        "q-two": "Success",
        "q-three": "Success",
    }


def test_exp_show_lists_every_experiment_with_its_params_and_metrics(lab: Any) -> None:
    shown = _experiments(lab["root"], lab["env"])
    assert set(QUEUED) | set(WORKSPACE) <= set(shown)
    for name, c in (QUEUED | WORKSPACE).items():
        assert shown[name]["params"]["train"]["tfidf"]["C"] == c
        macro_f1 = shown[name]["metrics"]["macro_f1"]
        assert isinstance(macro_f1, float) and 0.5 < macro_f1 <= 1.0, (name, macro_f1)


def test_each_experiment_is_one_finished_mlflow_run_in_the_projects_store(lab: Any) -> None:
    root = lab["root"]
    shown = _experiments(root, lab["env"])
    run_ids = set()
    for name, c in (QUEUED | WORKSPACE).items():
        runs = _runs_of(root, name)
        assert [r.info.status for r in runs] == ["FINISHED"], name
        run = runs[0]
        run_ids.add(run.info.run_id)
        assert run.data.params["train.tfidf.C"] == str(c)
        assert run.data.tags["dvc.exp_baseline"] == lab["baseline"]
        assert run.data.tags["git.commit"] == lab["baseline"]
        assert run.data.tags["reproduce.code_dirty"] == "false"  # only params.yaml changed
        assert run.info.run_name.endswith(f" · exp {name}")
        # the same numbers in both views: the MLflow run is the experiment's
        assert run.data.metrics["test/macro_f1"] == shown[name]["metrics"]["macro_f1"]
        # its artifacts in the project, not in the deleted copy a queued experiment ran in
        assert Path(run.info.artifact_uri.removeprefix("file://")).is_relative_to(root)
    assert len(run_ids) == len(QUEUED) + len(WORKSPACE)
    assert [p for p in (root / ".dvc").rglob("mlflow.db")] == []
    # the `dvc repro` run has no experiment tags
    client = mlflow_client(root)
    experiment = client.get_experiment_by_name("nlpflow").experiment_id
    everything = client.search_runs([experiment], filter_string="tags.`nlpflow.runner` = 'dvc'")
    plain = [r for r in everything if "dvc.exp_name" not in r.data.tags]
    assert len(plain) == 1 and plain[0].data.tags["git.commit"] != lab["baseline"]


def test_plain_dvc_push_and_pull_use_the_remote_nlpflow_pushed_to(lab: Any) -> None:
    root, env = lab["root"], lab["env"]
    store = lab["base"] / "xdg" / "nlpflow" / "dvc-remote"
    assert _run(root, env, "dvc", "remote", "default").strip() == "nlpflow"
    assert _run(root, env, "dvc", "remote", "list").split() == ["nlpflow", str(store), "(default)"]
    # every stage's run pushed what it built, so the workspace's outputs are all there already
    assert "Everything is up to date" in _run(root, env, "dvc", "push")
    model = root / "models" / "model"
    shutil.rmtree(model)
    shutil.rmtree(root / ".dvc" / "cache")
    _run(root, env, "dvc", "pull")
    assert model.is_dir() and any(model.iterdir())
    assert "Data and pipelines are up to date" in _run(root, env, "dvc", "status")


def _reproduce(lab: Any, run_id: str) -> dict[str, Any]:
    env = lab["env"] | {"NLPFLOW_PROJECT_DIR": str(lab["root"])}
    out = _run(lab["root"], env, "nlpflow", "reproduce", run_id, "--json")
    return dict(json.loads(out))


@pytest.mark.parametrize("made_by", ["dvc repro", "dvc exp run", "dvc exp run --queue"])
def test_reproduce_rebuilds_runs_made_by_dvc(lab: Any, made_by: str) -> None:
    root = lab["root"]
    if made_by == "dvc repro":
        client = mlflow_client(root)
        experiment = client.get_experiment_by_name("nlpflow").experiment_id
        runs = client.search_runs([experiment], filter_string="tags.`nlpflow.runner` = 'dvc'")
        run = next(r for r in runs if "dvc.exp_name" not in r.data.tags)
    else:  # its commit is the baseline, its -S params in its record
        run = _runs_of(root, "c-five" if made_by == "dvc exp run" else "q-three")[0]
    report = _reproduce(lab, run.info.run_id)
    assert report["within"] is True and len(report["metrics"]) > 30
    assert all(row["diff"] in (0.0, None) and row["within"] for row in report["metrics"])
    by_metric = {row["metric"]: row for row in report["metrics"]}
    assert by_metric["macro_f1"]["reproduced"] == run.data.metrics["test/macro_f1"]
    assert report["remote"] == str(lab["base"] / "xdg" / "nlpflow" / "dvc-remote")
