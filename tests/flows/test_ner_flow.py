"""Token classification end to end on the bundled entities sample, as `nlpflow run -c
configs/ner_sample.yaml` runs it: Prefect, MLflow, DVC, GX and spaCy all real.

One project goes through a sequence: the flow with the shipped config (spacy_ner, a rules
baseline), the same flow again (every stage a cache hit), then the config written into
params.yaml and `dvc repro` from scratch (no dvc.lock: the flow ran with --config), which must
rebuild the same model and the same scores, and then find nothing to do; last, a one-epoch
tagger the gate must refuse. Each test reads the part of the sequence it is about; the served,
batch-scored and in-process answers of the champion are compared at the end.
"""

from __future__ import annotations

import hashlib
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
MODEL_NAME = "flow-test-tagger"
CONFIG = "configs/ner_sample.yaml"
BEHAVIOURAL = "configs/behavioural/ner_sample.yaml"
SAMPLE = "data/sample/support_entities.jsonl"
TYPES = ["city", "order_id", "person", "product"]


def _project(root: Path) -> Path:
    """make_project's project plus the entities sample and the config, committed."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    # an unchanged rerun must go through the stages (all cache hits), not be skipped whole
    params["schedule"]["skip_unchanged_data"] = False
    make_project(root, yaml.safe_dump(params, sort_keys=False))
    for rel in (SAMPLE, CONFIG, BEHAVIOURAL):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / rel, root / rel)
    _git(root, "add", SAMPLE, CONFIG, BEHAVIOURAL)
    _git(root, "commit", "-qm", "entities sample and its config")
    return root



@pytest.fixture(scope="module")
def sequence(prefect_api: str, tmp_path_factory: pytest.TempPathFactory):
    from nlpflow.config.params import merge
    from nlpflow.flows.training import training_flow

    root = _project(tmp_path_factory.mktemp("ner-flow") / "project")
    runs: dict[str, Any] = {"root": root}
    with project_environment(root, MODEL_NAME):
        configs = [str(root / CONFIG)]
        runs["first"] = training_flow(project_dir=str(root), configs=configs)
        runs["model"] = hash_path(root / MODEL)
        runs["metrics"] = json.loads((root / METRICS).read_text())
        runs["card"] = (root / "reports/model_card.md").read_text()
        runs["second"] = training_flow(project_dir=str(root), configs=configs)
        runs["third"] = training_flow(project_dir=str(root), configs=configs)
        versions = mlflow_client(root).search_model_versions(f"name='{MODEL_NAME}'")
        runs["versions"] = sorted(int(v.version) for v in versions)
        # the same params for DVC: the config merged into params.yaml, as a user would commit it
        tree = merge(
            yaml.safe_load((root / "params.yaml").read_text()),
            yaml.safe_load((root / CONFIG).read_text()),
        )
        (root / "params.yaml").write_text(yaml.safe_dump(tree, sort_keys=False))
        _git(root, "commit", "-qam", "the NER config in params.yaml")
        runs["repro"] = dvc_repro(root, MODEL_NAME)
        runs["repro_model"] = hash_path(root / MODEL)
        runs["repro_metrics"] = json.loads((root / METRICS).read_text())
        runs["repro_again"] = dvc_repro(root, MODEL_NAME)
        # one epoch instead of fifteen: a tagger the gate must keep out
        runs["degraded"] = training_flow(
            project_dir=str(root), configs=configs, overrides=["train.spacy_ner.epochs=1"]
        )
    yield runs


def test_registered_tagger_answers_raw_text_with_entities_at_their_offsets(
    sequence, monkeypatch
) -> None:
    import mlflow

    root, first = sequence["root"], sequence["first"]
    use_mlflow_store(monkeypatch, root)
    version = mlflow_client(root).get_model_version_by_alias(MODEL_NAME, "champion")
    assert int(version.version) == first["register"]["version"] == 1
    raw = [
        "Hi, my Nimbus X2 headphones from order #55123 never reached Zürich. Thanks, Olga Fischer",
        "   Where is ORD-99812?  I need it before Friday.  ",  # spaces kept in the offsets
        "nothing to see here",
    ]
    served = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@champion").predict(
        pd.DataFrame({"text": raw})
    )
    assert list(served.columns) == ["entities"]
    answers = [json.loads(value) for value in served["entities"]]
    for text, entities in zip(raw, answers, strict=True):
        for entity in entities:
            assert entity["text"] == text[entity["start"] : entity["end"]], entity
            assert entity["label"] in TYPES and 0.0 < entity["score"] <= 1.0 + 1e-9
    found = {(e["text"], e["label"]) for e in answers[0]}
    # order numbers and a full name in a format the sample has: a model at F1 > 0.9 finds them
    assert {("#55123", "order_id"), ("Olga Fischer", "person")} <= found
    assert ("ORD-99812", "order_id") in {(e["text"], e["label"]) for e in answers[1]}
    assert answers[1][0]["start"] == raw[1].index("ORD-99812")


def test_mlflow_run_holds_entity_metrics_datasets_and_the_card_its_types(sequence) -> None:
    root, first, metrics = sequence["root"], sequence["first"], sequence["metrics"]
    client = mlflow_client(root)
    run = client.get_run(first["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["task"] == "token-classification"
    assert run.data.params["train.family"] == "spacy_ner"
    assert run.data.metrics["test/entity_f1"] == pytest.approx(metrics["entity_f1"])
    assert metrics["entity_f1"] > 0.9  # the sample's forms are learnable in 15 epochs
    assert metrics["baseline"]["family"] == "rules"
    assert metrics["baseline"]["entity_f1"] < metrics["entity_f1"]
    assert sorted(metrics["per_type"]) == TYPES
    for kind in TYPES:
        assert run.data.metrics[f"test_type/{kind}/f1"] == pytest.approx(
            metrics["per_type"][kind]["f1"]
        )
    # val entity F1 per epoch, as the train stage reported it
    history = client.get_metric_history(run.info.run_id, "val/entity_f1")
    assert [m.step for m in history] == list(range(1, first["train"]["epochs"] + 1))
    # the test dataset's digest hashes raw text and BIO tags: the start of the version's
    # test_set_sha256, computed here without nlpflow
    test = pd.read_parquet(root / "data/processed/test.parquet")
    digest = hashlib.sha256()
    for text, tags in zip(test["raw_text"], test["tags"], strict=True):
        digest.update(f"{text}\t{' '.join(tags)}\n".encode())
    datasets = {
        d.dataset.name: d.dataset.digest for d in run.inputs.dataset_inputs
    }  # fmt: skip
    assert datasets["support_entities-test"] == digest.hexdigest()[:32]
    version = client.get_model_version(MODEL_NAME, "1")
    assert version.tags["test_set_sha256"] == digest.hexdigest()
    # the logged model's type is its NLP task (MLflow's model search and comparison)
    logged = client.search_logged_models(
        [run.info.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'"
    )
    assert [m.model_type for m in logged] == ["token-classification"]
    card = sequence["card"]
    assert "entity_f1" in card
    for kind in TYPES:
        assert re.search(rf"^\| {kind} \|", card, re.MULTILINE), kind  # its per-type row


def test_an_unchanged_rerun_reuses_every_stage(sequence) -> None:
    first, second, third = sequence["first"], sequence["second"], sequence["third"]
    assert first["cached"] == [] and first["dvc_lock_updated"] is False  # --config: no lock
    # gx/ ships this task's suite and checkpoint as its params write them (validate, one of
    # whose inputs gx/ is, leaves it unchanged): nothing to redo from the second run on
    assert second["cached"] == third["cached"] == list(STAGE_NAMES)
    assert second["register"] == third["register"] == first["register"]  # no new version
    assert sequence["versions"] == [1]  # before `dvc repro` registered a second


def test_dvc_repro_of_the_same_params_rebuilds_the_same_model_and_scores(sequence) -> None:
    root = sequence["root"]
    assert sequence["repro"] == list(STAGE_NAMES)  # no dvc.lock yet: every stage
    assert sequence["repro_model"] == sequence["model"]  # spaCy's training is seeded
    assert sequence["repro_metrics"] == sequence["metrics"]
    assert sequence["repro_again"] == []
    client = mlflow_client(root)
    experiment = client.get_experiment_by_name("nlpflow")
    runs = client.search_runs([experiment.experiment_id])
    (repro,) = [r for r in runs if r.data.tags["nlpflow.runner"] == "dvc"]
    assert repro.data.metrics["test/entity_f1"] == sequence["metrics"]["entity_f1"]
    # a second version, the champion's equal: the gate keeps the champion
    assert int(client.get_model_version_by_alias(MODEL_NAME, "champion").version) == 1
    second = client.get_model_version(MODEL_NAME, "2")
    assert second.run_id == repro.info.run_id and second.tags["gate.decision"] == "rejected"


def test_the_gate_refuses_a_degraded_tagger_on_paired_entity_f1(sequence) -> None:
    root, first, degraded = sequence["root"], sequence["first"], sequence["degraded"]
    reg = degraded["register"]
    assert reg["version"] == 3 and reg["promoted"] is False and reg["previous_champion"] == 1
    assert reg["score"] < first["register"]["score"] - 0.1  # it really is worse
    failed = {c["name"] for c in reg["checks"] if c["applicable"] and not c["passed"]}
    assert "margin" in failed
    assert reg["reasons"].startswith("margin: entity_f1")
    client = mlflow_client(root)
    assert int(client.get_model_version_by_alias(MODEL_NAME, "champion").version) == 1
    assert int(client.get_model_version_by_alias(MODEL_NAME, "challenger").version) == 3
    tags = client.get_model_version(MODEL_NAME, "3").tags
    assert tags["gate.decision"] == "rejected" and tags["gate.compared_version"] == "1"
    values = json.loads(tags["gate.metrics"])
    assert values["champion"] == pytest.approx(first["register"]["score"])


RAW = [
    "Hi, my Nimbus X2 headphones from order #55123 never reached Zürich. Thanks, Olga Fischer",
    "   Where is ORD-99812?  I need it before Friday.  ",
    "nothing to see here",
    "Olga Fischer again: order #55124, the Nimbus X2 again, shipped to Bern",
]


def _champion_in_process(root: Path, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    import mlflow

    use_mlflow_store(monkeypatch, root)
    model = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@champion")
    return [json.loads(v) for v in model.predict(pd.DataFrame({"text": RAW}))["entities"]]


def test_served_tagger_answers_as_in_process(sequence, monkeypatch, tmp_path: Path) -> None:
    from tests.serve_client import post, serving

    root = sequence["root"]
    local = _champion_in_process(root, monkeypatch)
    assert any(local)  # the comparison is about entities, not empty lists
    with serving(root, MODEL_NAME, tmp_path) as server:
        status, body = post(server["url"], {"inputs": RAW})
        assert status == 200, body
        served = [json.loads(row["entities"]) for row in body["predictions"]]
        assert served == local
        status, body = post(server["url"], {"inputs": ["fine", ""]})
        assert status == 400 and "row 1: text is empty" in body["message"]


def test_nlpflow_infer_writes_entities_as_a_json_column(sequence, monkeypatch) -> None:
    root = sequence["root"]
    local = _champion_in_process(root, monkeypatch)
    source, output = root / "to_score.csv", root / "scored.jsonl"
    pd.DataFrame({"ticket": [f"t{i}" for i in range(len(RAW))], "text": RAW}).to_csv(
        source, index=False
    )
    env = cli_environment(root, MODEL_NAME)
    done = subprocess.run(
        ["nlpflow", "infer", "-s", f"inference.source={source}", "-s",
         f"inference.output={output}", "-s", "inference.id_column=ticket", "-s",
         "inference.batch_size=3"],
        cwd=root, capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    scored = pd.read_json(output, lines=True)
    assert scored["ticket"].tolist() == [f"t{i}" for i in range(len(RAW))]
    # a JSON column, batched by 3: the same entities as one in-process call
    assert [json.loads(v) for v in scored["entities"]] == local
    assert (root / "scored.rejected.jsonl").exists()
    # the inference run counts entities per type (a classifier's counts rows per label)
    client = mlflow_client(root)
    experiment = client.get_experiment_by_name("nlpflow-inference")
    (run,) = client.search_runs([experiment.experiment_id])
    expected: dict[str, float] = {}
    for entities in local:
        for entity in entities:
            expected[f"entities_{entity['label']}"] = (
                expected.get(f"entities_{entity['label']}", 0) + 1
            )
    counted = {k: v for k, v in run.data.metrics.items() if k.startswith("entities_")}
    assert counted == expected and run.data.metrics["rows_scored"] == len(RAW)


def test_a_sweep_over_a_tagger_is_judged_on_validation_entity_f1(sequence) -> None:
    from nlpflow.flows.sweep import sweep_flow

    root = sequence["root"]  # params.yaml holds the NER config by now
    space = {
        "spacy_ner.epochs": {"type": "int", "low": 1, "high": 6},
        "spacy_ner.learn_rate": {"type": "float", "low": 1e-4, "high": 3e-3, "log": True},
    }
    sets = ["sweep.study=tagger", "sweep.runner=threads", "sweep.n_trials=3",
            "sweep.parallelism=1", "sweep.pruner=none", "train.spacy_ner.patience=6", f"sweep.space={json.dumps(space)}",
            "sweep.output=reports/sweep/tagger.yaml"]  # fmt: skip
    with project_environment(root, MODEL_NAME):
        result = sweep_flow(project_dir=str(root), overrides=sets)
    trials = result["trials"]
    assert [t["state"] for t in trials] == ["COMPLETE"] * 3
    client = mlflow_client(root)
    values = []
    for trial in trials:
        history = client.get_metric_history(trial["run_id"], "val/entity_f1")
        assert history, trial  # each epoch's validation entity F1, as train reported it
        values.append(max(m.value for m in history))
        best = client.get_run(trial["run_id"]).data.metrics["best/val_entity_f1"]
        assert best == pytest.approx(values[-1])
    assert result["best_value"] == pytest.approx(max(values))
    written = yaml.safe_load((root / "reports/sweep/tagger.yaml").read_text())
    assert set(written["train"]["spacy_ner"]) == {"epochs", "learn_rate"}
