"""Topic modelling end to end on the bundled support tickets, as `nlpflow run -c
configs/topics.yaml` runs it: Prefect, MLflow, DVC, GX, spaCy and the sentence encoder all real.

One project goes through a sequence: the flow with the shipped config (embedding_clusters, the
labels kept for scoring only, an nmf baseline), the same flow again (every stage a cache hit),
then the config written into params.yaml and `dvc repro` from scratch, which must rebuild the
same model and scores; last, a challenger with too many topics for four themes, which the gate
must refuse on coherence. The served, batch-scored and in-process answers of the champion are
compared at the end, and a sweep chooses the number of topics by validation NPMI.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from nlpflow.pipeline.fingerprint import hash_path
from nlpflow.pipeline.stages import METRICS, MODEL, STAGE_NAMES
from tests.conftest import (
    REPO,
    _git,
    cli_environment,
    dvc_repro,
    make_project,
    mlflow_client,
    project_environment,
    use_mlflow_store,
)

pytestmark = pytest.mark.slow
MODEL_NAME = "flow-test-topics"
CONFIG = "configs/topics.yaml"
SAMPLE = "data/sample/support_tickets.csv"
RAW = [
    "I was charged twice for my subscription this month",
    "The parcel never arrived at my address, please resend it",
    "The app crashes with an error code when I open the export page",
    "I cannot log in to my account after the password reset email",
]


def _project(root: Path) -> Path:
    """make_project's project plus the sample and the topics config, committed."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["schedule"]["skip_unchanged_data"] = False  # a rerun goes through the stages
    make_project(root, yaml.safe_dump(params, sort_keys=False))
    for rel in (SAMPLE, CONFIG):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / rel, root / rel)
    _git(root, "add", SAMPLE, CONFIG)
    _git(root, "commit", "-qm", "the tickets sample and the topics config")
    return root




@pytest.fixture(scope="module")
def sequence(prefect_api: str, tmp_path_factory: pytest.TempPathFactory):
    from nlpflow.config.params import merge
    from nlpflow.flows.training import training_flow

    root = _project(tmp_path_factory.mktemp("topic-flow") / "project")
    runs: dict[str, Any] = {"root": root}
    with project_environment(root, MODEL_NAME):
        configs = [str(root / CONFIG)]
        runs["first"] = training_flow(project_dir=str(root), configs=configs)
        runs["model"] = hash_path(root / MODEL)
        runs["metrics"] = json.loads((root / METRICS).read_text())
        runs["card"] = (root / "reports/model_card.md").read_text()
        runs["topics_md"] = (root / "reports/evaluation/topics.md").read_text()
        runs["plots"] = sorted(p.name for p in (root / "reports/plots").iterdir())
        runs["second"] = training_flow(project_dir=str(root), configs=configs)
        tree = merge(
            yaml.safe_load((root / "params.yaml").read_text()),
            yaml.safe_load((root / CONFIG).read_text()),
        )
        (root / "params.yaml").write_text(yaml.safe_dump(tree, sort_keys=False))
        _git(root, "commit", "-qam", "the topics config in params.yaml")
        runs["repro"] = dvc_repro(root, MODEL_NAME)
        runs["repro_model"] = hash_path(root / MODEL)
        runs["repro_metrics"] = json.loads((root / METRICS).read_text())
        # twelve topics for four themes: topics split a theme's words, less coherent
        runs["degraded"] = training_flow(
            project_dir=str(root), configs=configs, overrides=["train.topics.n_topics=12"]
        )
    yield runs


def test_the_run_finds_the_four_themes_and_scores_them_against_the_labels(sequence) -> None:
    metrics, first = sequence["metrics"], sequence["first"]
    assert metrics["topics"] == 4
    # the labels never trained it, yet its largest topics recover them (0.87 measured)
    assert metrics["purity"] > 0.8 and metrics["nmi"] > 0.5
    assert -1.0 <= metrics["npmi"] <= 1.0 and 0.0 <= metrics["c_v"] <= 1.0
    assert 0.9 < metrics["diversity"] <= 1.0
    assert sum(metrics["topic_shares"].values()) == pytest.approx(1.0, abs=1e-5)
    assert metrics["baseline"]["family"] == "nmf"
    assert metrics["baseline"]["npmi"] < metrics["npmi"]  # the gate's baseline check passed
    reg = first["register"]
    assert reg["version"] == 1 and reg["promoted"] is True
    assert {"topic_words.png", "topic_map.png", "topic_shares.csv"} <= set(sequence["plots"])
    # the topic-word table: four rows, each theme's words in one of them
    rows = [line for line in sequence["topics_md"].splitlines() if re.match(r"^\| \d+ \|", line)]
    assert len(rows) == 4
    for words in (("bill", "card"), ("order", "delivery"), ("account", "login")):
        assert sum(all(w in row for w in words) for row in rows) == 1, words
    assert re.search(r"^\| topic \| share of test texts \| NPMI \|", sequence["card"], re.M)


def test_mlflow_holds_coherence_and_the_topic_pictures(sequence) -> None:
    root, first, metrics = sequence["root"], sequence["first"], sequence["metrics"]
    client = mlflow_client(root)
    run = client.get_run(first["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["task"] == "topic-modeling"
    assert run.data.params["train.family"] == "embedding_clusters"
    assert run.data.params["train.topics.n_topics"] == "4"
    for name in ("npmi", "c_v", "diversity", "nmi", "purity"):
        assert run.data.metrics[f"test/{name}"] == pytest.approx(metrics[name]), name
    # the one "epoch" a topic model reports: validation coherence, what a sweep maximises
    assert client.get_metric_history(run.info.run_id, "val/npmi")
    # evaluate logs its folders' files under `evaluation` (the plots and the tables alike)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
    expected = {"topic_words.png", "topic_map.png", "topics.md", "topics.csv"}
    assert {f"evaluation/{name}" for name in expected} <= artifacts


def test_an_unchanged_rerun_reuses_every_stage(sequence) -> None:
    assert sequence["second"]["cached"] == list(STAGE_NAMES)
    assert sequence["second"]["register"] == sequence["first"]["register"]


def test_dvc_repro_of_the_same_params_rebuilds_the_same_topics(sequence) -> None:
    assert sequence["repro"] == list(STAGE_NAMES)
    assert sequence["repro_model"] == sequence["model"]
    assert sequence["repro_metrics"] == sequence["metrics"]


def test_the_gate_refuses_less_coherent_topics_with_no_paired_test(sequence) -> None:
    root, first, degraded = sequence["root"], sequence["first"], sequence["degraded"]
    reg = degraded["register"]
    assert reg["promoted"] is False and reg["previous_champion"] == 1
    assert reg["score"] < first["register"]["score"]
    checks = {c["name"]: c for c in reg["checks"]}
    assert checks["margin"]["applicable"] and not checks["margin"]["passed"]
    assert checks["margin"]["reason"].startswith("npmi ")
    # coherence scores the topics as a whole: no paired test over rows, and it says so
    assert checks["significance"]["applicable"] is False
    assert "not tested" in checks["significance"]["reason"]
    assert checks["serving"]["passed"]  # the registered pyfunc answers as evaluate recorded
    client = mlflow_client(root)
    assert int(client.get_model_version_by_alias(MODEL_NAME, "champion").version) == 1


def _champion_in_process(root: Path, monkeypatch: pytest.MonkeyPatch) -> pd.DataFrame:
    import mlflow

    use_mlflow_store(monkeypatch, root)
    model = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@champion")
    return model.predict(pd.DataFrame({"text": RAW}))


def test_the_champion_answers_each_text_with_its_topic_and_words(sequence, monkeypatch) -> None:
    answer = _champion_in_process(sequence["root"], monkeypatch)
    shares = answer[[c for c in answer.columns if c.startswith("share_")]]
    assert list(shares.columns) == ["share_0", "share_1", "share_2", "share_3"]
    assert shares.sum(axis=1).to_numpy() == pytest.approx([1.0] * len(RAW), abs=1e-5)
    assert answer["probability"].tolist() == pytest.approx(shares.max(axis=1).tolist())
    # four texts, one per theme: four different topics, each worded by its theme
    assert answer["topic"].nunique() == 4
    for row, words in zip(
        answer["words"], (("bill",), ("order",), ("app",), ("account",)), strict=True
    ):
        assert all(w in row.split(", ") for w in words), row


def test_served_topics_equal_the_in_process_ones(sequence, monkeypatch, tmp_path: Path) -> None:
    from tests.serve_client import post, serving

    root = sequence["root"]
    local = _champion_in_process(root, monkeypatch)
    with serving(root, MODEL_NAME, tmp_path) as server:
        status, body = post(server["url"], {"inputs": RAW})
        assert status == 200, body
        served = pd.DataFrame(body["predictions"])
    assert served["topic"].tolist() == local["topic"].tolist()
    assert served["words"].tolist() == local["words"].tolist()
    assert served["share_1"].to_numpy() == pytest.approx(local["share_1"].to_numpy(), abs=1e-9)


def test_batch_inference_reports_topic_share_drift_from_training(sequence, monkeypatch) -> None:
    root = sequence["root"]
    tickets = pd.read_csv(root / SAMPLE)
    billing = tickets[tickets["label"] == "billing"].head(40)  # one theme only: a drifted mix
    source, output = root / "billing.csv", root / "billing_scored.csv"
    billing[["text"]].to_csv(source, index=False)
    done = subprocess.run(
        ["nlpflow", "infer", "-s", f"inference.source={source}", "-s", f"inference.output={output}"],
        cwd=root, capture_output=True, text=True, env=cli_environment(root, MODEL_NAME), timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "topic shares moved by" in done.stdout and "from the training mix" in done.stdout
    scored = pd.read_csv(output)
    client = mlflow_client(root)
    experiment = client.get_experiment_by_name("nlpflow-inference")
    (run,) = client.search_runs([experiment.experiment_id])
    import mlflow

    use_mlflow_store(monkeypatch, root)  # the champion's recorded training mix (models/model
    # holds the refused twelve-topic challenger by now)
    champion = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@champion")
    reference = champion.unwrap_python_model().model.reference_shares
    assert sum(reference.values()) == pytest.approx(1.0, abs=1e-5)
    current = {t: float(scored[f"share_{t}"].mean()) for t in reference}
    expected = 0.5 * sum(abs(current[t] - reference[t]) for t in reference)
    assert run.data.metrics["drift_tvd"] == pytest.approx(expected, abs=1e-5)
    assert expected > 0.4  # forty billing tickets against four balanced themes
    counts = scored["topic"].astype(str).value_counts().to_dict()
    assert {k.removeprefix("topic_"): v for k, v in run.data.metrics.items()
            if k.startswith("topic_")} == counts  # fmt: skip


def test_a_sweep_chooses_the_number_of_topics_by_validation_npmi(sequence) -> None:
    from nlpflow.flows.sweep import sweep_flow

    root = sequence["root"]  # params.yaml holds the topics config by now
    sets = ["sweep.study=topics", "sweep.runner=threads", "sweep.n_trials=3",
            "sweep.parallelism=1", "sweep.pruner=none", "sweep.output=reports/sweep/topics.yaml"]  # fmt: skip
    with project_environment(root, MODEL_NAME):
        result = sweep_flow(project_dir=str(root), overrides=sets)
    trials = result["trials"]
    assert [t["state"] for t in trials] == ["COMPLETE"] * 3
    client = mlflow_client(root)
    values = [client.get_run(t["run_id"]).data.metrics["best/val_npmi"] for t in trials]
    assert result["best_value"] == pytest.approx(max(values))
    written = yaml.safe_load((root / "reports/sweep/topics.yaml").read_text())
    assert 3 <= written["train"]["topics"]["n_topics"] <= 8
