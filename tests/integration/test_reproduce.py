"""`nlpflow reproduce RUN_ID` rebuilds a tfidf_logreg run from its record alone.

The pipeline runs once as the training flow sequences it (each stage, then `dvc commit`; a push
to a local-folder DVC remote after validate and after register; the reproduction record at the
end). Then the DVC cache, every output and the data source (a file outside git) are deleted, so
the reproduction can only get its data from the remote. The CLI runs as a subprocess.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from nlpflow.pipeline.reproduce import compare_metrics, flatten_metrics
from nlpflow.pipeline.stages import STAGE_NAMES
from tests.conftest import (
    REPO,
    SAMPLE,
    _venv_env,
    fast_params,
    make_project,
    mlflow_client,
    project_environment,
)

MODEL = "reproduce-test-classifier"
OUTPUTS = (
    "data/gathered",
    "data/validated",
    "data/quarantine",
    "data/processed",
    "models",
    "reports",
)


def _recorded(
    base: Path, params: dict[str, Any], data: Path, environ: dict[str, str] | None = None
) -> dict[str, Any]:
    """A project in `base` whose data source is `data` copied outside git, run once as the
    training flow sequences it and recorded for reproduction; then the DVC cache, every output
    and the data source are deleted, so a reproduction can only pull its data from the remote."""
    from nlpflow.config.params import load_params
    from nlpflow.config.settings import load_settings
    from nlpflow.pipeline.remote import push, record_for_reproduction, resolve_remote
    from nlpflow.pipeline.runs import close_run, make_context, open_run, record_dvc_stage
    from nlpflow.pipeline.stages import STAGE_NAMES, run_stage

    source = base / "outside-git" / data.name  # as /data/tickets.csv would be
    source.parent.mkdir()
    shutil.copy(data, source)
    params["data"]["source"] = str(source)
    root = make_project(base / "project", yaml.safe_dump(params, sort_keys=False))
    with project_environment(root, MODEL) as env:
        env.setenv("NLPFLOW_DVC_REMOTE", str(base / "remote"))
        for name, value in (environ or {}).items():
            env.setenv(name, value)
        ctx = make_context(root, load_params(root / "params.yaml"), load_settings())
        remote = resolve_remote(root, ctx.settings)
        run_id = open_run(ctx, runner="prefect")
        for name in STAGE_NAMES:
            run_stage(name, ctx)
            record_dvc_stage(root, name)
            if name == "validate":
                push(root, ("gather", "validate"), remote=remote)
        push(root, ("train", "baseline"), remote=remote)
        record_for_reproduction(ctx, dvc_lock=True)
        close_run(ctx, failed=False)
    metrics = json.loads((root / "reports/metrics.json").read_text())
    lock = (root / "dvc.lock").read_text()
    shutil.rmtree(root / ".dvc" / "cache")
    for out in OUTPUTS:
        shutil.rmtree(root / out)
    source.unlink()
    return {"root": root, "run_id": run_id, "metrics": metrics, "lock": lock, "remote": remote}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    params = yaml.safe_load(fast_params(family="tfidf_logreg"))
    return _recorded(tmp_path_factory.mktemp("reproduce"), params, SAMPLE)


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = _venv_env() | {"NLPFLOW_PROJECT_DIR": str(root), "NLPFLOW_REGISTERED_MODEL": MODEL}
    for name in ("NLPFLOW_TRACKING_URI", "MLFLOW_TRACKING_URI", "NLPFLOW_DVC_REMOTE"):
        env.pop(name, None)  # the remote comes from the run's record
    return subprocess.run(
        ["nlpflow", "reproduce", *args], cwd=root, capture_output=True, text=True, env=env,
        timeout=600,
    )  # fmt: skip


def _worktrees(root: Path) -> list[str]:
    listing = subprocess.run(
        ["git", "worktree", "list", "--porcelain"], cwd=root, capture_output=True, text=True
    ).stdout
    return re.findall(r"^worktree (.+)$", listing, flags=re.MULTILINE)


def test_the_run_records_params_lock_and_remote(project: dict[str, Any]) -> None:
    client = mlflow_client(project["root"])
    run = client.get_run(project["run_id"])
    assert run.data.tags["reproduce.dvc_remote"] == project["remote"].url
    assert run.data.tags["reproduce.dvc_remote_name"] == "nlpflow"
    folder = Path(client.download_artifacts(project["run_id"], "reproduce"))
    assert (folder / "dvc.lock").read_text() == project["lock"]
    recorded = yaml.safe_load((folder / "params.yaml").read_text())
    assert recorded["train"]["family"] == "tfidf_logreg"
    assert recorded["data"]["source"].endswith(f"outside-git/{SAMPLE.name}")
    gathered = yaml.safe_load(project["lock"])["stages"]["gather"]["outs"][0]["md5"]
    object_path = Path(project["remote"].url) / "files/md5" / gathered[:2] / gathered[2:]
    assert object_path.is_file()  # the snapshot's directory listing is in the remote


def _differences(done: subprocess.CompletedProcess[str]) -> str:
    """What a failed reproduction says: the metrics it got wrong first (the whole report is
    40 rows, more than a CI log shows), then its stderr."""
    try:
        rows = json.loads(done.stdout)["metrics"]
    except (ValueError, KeyError, TypeError):
        return done.stdout + done.stderr
    wrong = [row for row in rows if not row["within"]]
    return f"metrics not reproduced: {json.dumps(wrong, indent=1)}\n{done.stderr}"


def _reproduces_identically(project: dict[str, Any]) -> str:
    """Reproduce the project's run through the CLI and check every metric; its stderr."""
    root = project["root"]
    done = _cli(root, project["run_id"], "--json")
    assert done.returncode == 0, _differences(done)
    report = json.loads(done.stdout)
    expected = flatten_metrics(project["metrics"])
    assert len(expected) > 30 and report["within"] is True
    assert [row["metric"] for row in report["metrics"]] == list(expected)
    for row in report["metrics"]:
        assert row["original"] == row["reproduced"] == expected[row["metric"]], row
        assert row["diff"] in (0.0, None) and row["within"], row
    assert report["remote"] == project["remote"].url
    ran = re.findall(r"Running stage '(\w+)'", done.stderr)
    assert ran == [name for name in STAGE_NAMES if name != "gather"]  # the data: pulled
    worktree = re.search(r"git worktree at \w+: (\S+)", done.stderr)
    assert worktree and not Path(worktree.group(1)).exists()
    assert _worktrees(root) == [str(root)]
    # reproduction registered into its own throw-away store, not the project's
    client = mlflow_client(root)
    assert [v.run_id for v in client.search_model_versions(f"name='{MODEL}'")] == [
        project["run_id"]
    ]
    return done.stderr


def test_reproduction_pulls_from_the_remote_and_every_metric_is_identical(
    project: dict[str, Any],
) -> None:
    _reproduces_identically(project)


@pytest.mark.slow
def test_a_tagger_reproduces_with_every_entity_metric_identical(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The same for token classification: spaCy's NER on the entities sample, seeded."""
    from nlpflow.config.params import merge

    params = merge(
        yaml.safe_load(fast_params(family="tfidf_logreg")),
        yaml.safe_load((REPO / "configs/ner_sample.yaml").read_text()),
    )
    params["train"]["spacy_ner"]["epochs"] = 5
    params["evaluate"]["behavioural"] = None  # its file is not in this project
    project = _recorded(
        tmp_path_factory.mktemp("reproduce-tagger"), params,
        REPO / "data/sample/support_entities.jsonl",
    )  # fmt: skip
    assert "entity_f1" in project["metrics"]
    _reproduces_identically(project)


def test_a_transformer_reproduces_on_the_thread_count_it_trained_on(
    tmp_path_factory: pytest.TempPathFactory, tiny_encoder: Path
) -> None:
    """train.cpu_threads null: the run trained on 1 torch thread (NLPFLOW_CPU_THREADS, as a
    busy machine would have chosen), and the idle machine's reproduction would choose every
    core. The count decides the weights' last bits, so reproduce takes the run's own
    (tag device.cpu_threads) and every metric is identical."""
    params = yaml.safe_load(fast_params(pretrained=tiny_encoder, epochs=2))
    assert params["train"].get("cpu_threads") is None  # chosen when training starts
    project = _recorded(
        tmp_path_factory.mktemp("reproduce-threads"), params, SAMPLE,
        environ={"NLPFLOW_CPU_THREADS": "1"},
    )  # fmt: skip
    run = mlflow_client(project["root"]).get_run(project["run_id"])
    assert run.data.tags["device.cpu_threads"] == "1"
    stderr = _reproduces_identically(project)
    assert "torch threads: 1, as the run trained (device.cpu_threads)" in stderr


def test_a_remote_without_the_data_fails_clearly_and_removes_the_worktree(
    project: dict[str, Any], tmp_path: Path
) -> None:
    root = project["root"]
    done = _cli(root, project["run_id"], "--remote", str(tmp_path / "empty-remote"))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "[NLP012] pulling the run's data from" in done.stderr
    assert "was the run's data pushed there?" in done.stderr
    assert "Traceback" not in done.stderr
    assert _worktrees(root) == [str(root)]


def _bare_run(root: Path, tags: dict[str, str], artifacts: bool = True) -> str:
    """A run in the project's store with the given git tags (and the two needed artifacts)."""
    client = mlflow_client(root)
    experiment = client.get_experiment_by_name("nlpflow").experiment_id
    run_id = str(client.create_run(experiment, tags=tags).info.run_id)
    if artifacts:
        client.log_artifact(run_id, str(SAMPLE.parents[2] / "params.yaml"), "reproduce")
        metrics = root.parent / "metrics.json"
        metrics.write_text('{"accuracy": 0.5}')
        client.log_artifact(run_id, str(metrics), "evaluation")
    client.set_terminated(run_id)
    return run_id


def _head(root: Path) -> str:
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("unknown", "[NLP012] no run 'no-such-run' in sqlite:///"),
        ("no commit", "records no git commit (its project was not a git repository)"),
        ("foreign commit", f"was made from commit {'ab' * 20}, which is not in the git repository"),
        ("dirty", "uncommitted changes, so commit"),
        ("no record", "has no artifact reproduce/params.yaml"),
    ],
)
def test_refusals_say_why_and_exit_2(project: dict[str, Any], case: str, says: str) -> None:
    root = project["root"]
    run_id = {
        "unknown": lambda: "no-such-run",
        "no commit": lambda: _bare_run(root, {"git.commit": "none"}),
        "foreign commit": lambda: _bare_run(root, {"git.commit": "ab" * 20, "git.dirty": "false"}),
        "dirty": lambda: _bare_run(root, {"git.commit": _head(root), "git.dirty": "true"}),
        "no record": lambda: _bare_run(root, {"git.commit": _head(root)}, artifacts=False),
    }[case]()
    done = _cli(root, run_id)
    assert done.returncode == 2, done.stdout + done.stderr
    assert says in done.stderr, done.stderr
    if case == "dirty":
        assert "--allow-dirty" in done.stderr
    assert done.stdout == "" and "Traceback" not in done.stderr
    assert _worktrees(root) == [str(root)]


def test_compare_metrics_flags_what_moved_past_the_tolerance_or_went_missing() -> None:
    original = {"accuracy": 0.9, "per_class": {"a": {"f1": 0.8}}, "ci": {"metric": "macro_f1"}}
    reproduced = {"accuracy": 0.9001, "per_class": {"a": {"f1": 0.8}}, "extra": 1}
    rows = {row.metric: row for row in compare_metrics(original, reproduced, tolerance=1e-3)}
    assert list(rows) == ["accuracy", "per_class.a.f1", "ci.metric", "extra"]
    assert rows["accuracy"].diff == pytest.approx(1e-4) and rows["accuracy"].within
    assert rows["per_class.a.f1"].diff == 0.0 and rows["per_class.a.f1"].within
    assert rows["ci.metric"].reproduced is None and not rows["ci.metric"].within
    assert rows["extra"].original is None and not rows["extra"].within
    strict = compare_metrics(original, original | {"accuracy": 0.9001}, tolerance=0.0)
    assert [row.metric for row in strict if not row.within] == ["accuracy"]
    nan = compare_metrics({"auc": float("nan")}, {"auc": float("nan")}, tolerance=0.0)
    assert nan[0].within and nan[0].diff == 0.0


def test_the_prefect_tasks_push_and_record_inside_a_flow(prefect_api: str, tmp_path: Path) -> None:
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from nlpflow.config.params import load_params
    from nlpflow.config.settings import Settings
    from nlpflow.pipeline.runs import make_context, open_run
    from nlpflow.tasks.remote import push_to_remote, record_reproduction
    from tests.integration.test_remote import DVC_YAML, _dvc

    root = tmp_path / "project"
    root.mkdir()
    _dvc(root, "init", "--no-scm", "-q")
    (root / "dvc.yaml").write_text(DVC_YAML)
    _dvc(root, "repro", "-q")
    remote = tmp_path / "remote"
    settings = Settings(project_dir=root, dvc_remote=str(remote))
    ctx = make_context(root, load_params(root / "params.yaml"), settings)
    run_id = open_run(ctx, runner="prefect")

    @flow
    def pushes() -> str:
        said = push_to_remote(ctx, stages=("gather",))
        record_reproduction(ctx, dvc_lock=True)
        return said

    assert pushes() == "2 files pushed"
    assert len(list((remote / "files" / "md5").rglob("*"))) == 4  # 2 folders, 2 objects
    client = mlflow_client(root)
    run = client.get_run(run_id)
    assert run.data.tags["reproduce.dvc_remote"] == str(remote)
    folder = Path(client.download_artifacts(run_id, "reproduce"))
    assert (folder / "dvc.lock").read_text() == (root / "dvc.lock").read_text()
    assert yaml.safe_load((folder / "params.yaml").read_text()) == ctx.params.public_dict()
    with get_client(sync_client=True) as prefect:
        found = prefect.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["nlpflow-push-gather"]))
        )
    assert found and str(remote) in str(found[-1].data)
