"""Inference shapes its input as training did (issue 18): a model trained by gather on a
headerless CSV (data.columns [label, title, description], data.text_column [title,
description], data.label_map) scores that same file with `nlpflow infer` and no inference
column settings, answers records of its fields online (the pyfunc, the HTTP app of
`nlpflow serve`, `nlpflow predict --record`), and refuses input lacking a field, naming it.
Every output kind is written 0600 with its `.rejected` file (or `_rejected` table) even when
no row is rejected. Real gather, MLflow (SQLite), Prefect and GX; no mocks.

    .venv/bin/python -m pytest tests/flows/test_inference_fields.py -q
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import uuid
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REPO, SAMPLE
from tests.integration.test_batch_inference import Registered

CODES = {"billing": "1", "shipping": "2", "technical": "3", "account": "4"}
COLUMNS = ["label", "title", "description"]


def _split(text: str) -> tuple[str, str]:
    words = text.split()
    return " ".join(words[:3]), " ".join(words[3:])


def _write_headerless(path: Path) -> pd.DataFrame:
    """The sample as a headerless CSV of code, title, description; the frame it came from."""
    sample = pd.read_csv(SAMPLE)
    sample = sample[sample["label"].isin(CODES)].reset_index(drop=True)
    parts = [_split(t) for t in sample["text"]]
    frame = pd.DataFrame({
        "label": sample["label"].map(CODES), "title": [p[0] for p in parts],
        "description": [p[1] for p in parts], "name": sample["label"],
    })  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    frame[COLUMNS].to_csv(path, index=False, header=False)
    return frame


@pytest.fixture(scope="module")
def fields_model(tmp_path_factory: pytest.TempPathFactory) -> Registered:
    """gather's reader and label rewriting on the headerless file, a tfidf_logreg fitted on
    what they made, published with the params that made it."""
    from nlpflow.config.params import DataParams, Params, PreprocessParams, TrainParams
    from nlpflow.config.settings import Settings
    from nlpflow.data.local_source import load_source
    from nlpflow.data.nlp.text_classification import rewrite_labels
    from nlpflow.release.registry import publish_model
    from nlpflow.tracking.tracker import Tracker
    from nlpflow.training.families import update_manifest
    from nlpflow.training.train import fit

    root = tmp_path_factory.mktemp("fields") / "project"
    source = root / "data" / "tickets.csv"
    _write_headerless(source)
    # the repository's params.yaml: its inference section must leave the shaping to the model
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    data = DataParams(
        source=str(source), columns=COLUMNS, text_column=["title", "description"],
        label_map={v: k for k, v in CODES.items()},
    )  # fmt: skip
    frame, _ = load_source(source, data)
    frame = rewrite_labels(frame, data)
    texts, targets = frame["text"].tolist(), frame["label"].tolist()
    assert texts[0] == " ".join(_split(pd.read_csv(SAMPLE)["text"][0]))  # gather joined them
    train = TrainParams(family="tfidf_logreg")
    model = fit((texts, targets), (texts[:20], targets[:20]), labels=sorted(set(targets)),
                params=train)  # fmt: skip
    model_dir = root / "models" / "fields"
    model.save(model_dir)
    update_manifest(model_dir, preprocess=PreprocessParams().model_dump(), train=train.model_dump())
    uri = f"sqlite:///{root / 'mlflow.db'}"
    tracker = Tracker(Settings(project_dir=root, tracking_uri=uri))
    run_id = tracker.start_run("nlpflow", run_name="fields", tags={})
    name = f"fields-{uuid.uuid4().hex[:6]}"
    version = publish_model(
        tracker, run_id=run_id, model_dir=model_dir, model_name=name, params=Params(data=data)
    )
    tracker.end_run(run_id, "FINISHED")
    tracker.client.set_registered_model_alias(name, "champion", str(version))
    return Registered(root=root, tracking_uri=uri, name=name, version=version)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, fields_model: Registered) -> Registered:
    monkeypatch.setenv("NLPFLOW_PROJECT_DIR", str(fields_model.root))
    monkeypatch.setenv("NLPFLOW_TRACKING_URI", fields_model.tracking_uri)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("NLPFLOW_ARTIFACT_ROOT", raising=False)
    monkeypatch.setenv("NLPFLOW_REGISTERED_MODEL", fields_model.name)
    return fields_model


def _pyfunc(reg: Registered):  # type: ignore[no-untyped-def]
    import mlflow.pyfunc

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_REGISTRY_URI", reg.tracking_uri)
        mp.setenv("MLFLOW_TRACKING_URI", reg.tracking_uri)
        return mlflow.pyfunc.load_model(f"models:/{reg.name}@champion")


def _joined(frame: pd.DataFrame) -> list[str]:
    return (frame["title"] + " " + frame["description"]).tolist()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_infer_scores_the_headerless_training_file_as_gather_shaped_it(
    prefect_api: str, env: Registered, venv_env: dict[str, str]
) -> None:
    frame = _write_headerless(env.root / "data" / "tickets.csv")
    done = subprocess.run(
        ["nlpflow", "infer", "--set", "inference.source=data/tickets.csv",
         "--set", "inference.output=scored/tickets.csv"],
        env=dict(os.environ) | {"PATH": venv_env["PATH"], "PREFECT_API_URL": prefect_api}, capture_output=True, text=True,
        timeout=300, cwd=env.root,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = pd.read_csv(env.root / "scored" / "tickets.csv")
    assert out["row"].tolist() == list(range(len(frame)))  # no header row read as data
    model, texts = _pyfunc(env), _joined(frame)
    expected = pd.concat(  # in requests of at most serve.max_batch texts
        [
            model.predict(pd.DataFrame({"text": texts[i : i + 200]}))
            for i in range(0, len(texts), 200)
        ],
        ignore_index=True,
    )
    assert out["label"].tolist() == expected["label"].tolist()
    assert out["score"].round(6).tolist() == expected["score"].round(6).tolist()
    # the input's codes through the trained label_map: comparable with the predictions
    assert out["input_label"].tolist() == frame["name"].tolist()
    assert (out["label"] == out["input_label"]).mean() > 0.9  # it scored what it trained on


def test_input_lacking_a_trained_field_is_refused_naming_it(
    prefect_api: str, env: Registered
) -> None:
    from nlpflow.errors import DataValidationError
    from nlpflow.flows.inference import inference_flow

    source = env.root / "incoming" / "titles.csv"
    source.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"title": ["refund please"], "body": ["the parcel never came"]}).to_csv(
        source, index=False
    )
    with pytest.raises(DataValidationError) as error:
        inference_flow(overrides=["inference.source=incoming/titles.csv", "inference.columns=[]",
                                  "inference.output=scored/titles.csv"])  # fmt: skip
    message = str(error.value)
    assert "no column(s) 'description' in the input" in message
    assert "its columns: title, body" in message and "set inference.text_column" in message
    # told otherwise, it scores: the override joins title and body
    inference_flow(overrides=["inference.source=incoming/titles.csv", "inference.columns=[]",
                              "inference.text_column=[title,body]",
                              "inference.output=scored/titles.csv"])  # fmt: skip
    out = pd.read_csv(env.root / "scored" / "titles.csv")
    expected = _pyfunc(env).predict(pd.DataFrame({"text": ["refund please the parcel never came"]}))
    assert out["label"].tolist() == expected["label"].tolist()


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_every_file_output_is_0600_with_an_empty_rejected_file(
    prefect_api: str, env: Registered, suffix: str
) -> None:
    from nlpflow.flows.inference import inference_flow

    _write_headerless(env.root / "data" / "tickets.csv")
    out = env.root / "kinds" / f"tickets{suffix}"
    # chunk_rows=300: the output is joined from several chunk parts
    inference_flow(overrides=["inference.source=data/tickets.csv", f"inference.output={out}",
                              "inference.chunk_rows=300"])  # fmt: skip
    rejected = out.with_name(f"tickets.rejected{suffix}")
    assert _mode(out) == 0o600 and _mode(rejected) == 0o600
    read = {".csv": pd.read_csv, ".parquet": pd.read_parquet,
            ".jsonl": lambda p: pd.read_json(p, lines=True)}[suffix]  # fmt: skip
    assert len(read(out)) == 726  # three chunks, all there
    if suffix == ".jsonl":
        assert rejected.read_bytes() == b""
    else:
        assert len(read(rejected)) == 0


def test_a_table_output_gets_its_rejected_table_even_when_empty(
    prefect_api: str, env: Registered
) -> None:
    from nlpflow.flows.inference import inference_flow

    frame = _write_headerless(env.root / "data" / "tickets.csv")
    db = env.root / f"shop-{uuid.uuid4().hex[:6]}.db"
    with sqlite3.connect(db) as connection:
        frame[COLUMNS].to_sql("tickets", connection, index=False)
    inference_flow(overrides=[f"inference.source=sqlite:///{db}", "inference.table=tickets",
                              "inference.output=scored"])  # fmt: skip
    with sqlite3.connect(db) as connection:
        scored = pd.read_sql("SELECT label, input_label FROM scored", connection)
        rejected = pd.read_sql("SELECT * FROM scored_rejected", connection)
    assert len(scored) == len(frame) and scored["input_label"].tolist() == frame["name"].tolist()
    assert len(rejected) == 0 and "reasons" in rejected.columns


def test_the_pyfunc_answers_records_of_the_trained_fields(env: Registered) -> None:
    from mlflow.exceptions import MlflowException

    model = _pyfunc(env)
    fields = pd.DataFrame({"title": ["Refund for my", "App crashes on"],
                           "description": ["order please", "login every time"]})  # fmt: skip
    as_fields = model.predict(fields)
    as_text = model.predict(pd.DataFrame({"text": _joined(fields)}))
    pd.testing.assert_frame_equal(as_fields, as_text)
    with pytest.raises(MlflowException) as error:
        model.predict(pd.DataFrame({"title": ["Refund for my"]}))
    assert "lacks field(s) 'description'" in str(error.value)
    # a bare list cannot be matched to one of several optional columns: said so, with the fix
    with pytest.raises(MlflowException) as error:
        model.predict(["Refund for my order please"])
    assert 'name them, as {"inputs": {"text": ["..."]}}' in str(error.value)


def test_the_served_app_takes_records_and_refuses_one_missing_a_field(env: Registered) -> None:
    from starlette.testclient import TestClient

    from nlpflow.config.settings import Settings
    from nlpflow.serving.app import MODEL_PATH_ENV, build_app
    from nlpflow.tracking.tracker import Tracker

    folder = env.root / "served"
    Tracker(Settings(project_dir=env.root, tracking_uri=env.tracking_uri)).load_version(
        env.name, env.version, folder
    )
    path = next(p.parent for p in folder.rglob("MLmodel"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(MODEL_PATH_ENV, str(path))
        client = TestClient(build_app())
    record = {"title": "App crashes on", "description": "login every time"}
    ok = client.post("/invocations", json={"dataframe_records": [record]})
    assert ok.status_code == 200, ok.text
    plain = client.post("/invocations", json={"inputs": {"text": [" ".join(record.values())]}})
    assert ok.json() == plain.json()
    # a bare list of texts still works with the fields' optional columns in the schema
    listed = client.post("/invocations", json={"inputs": [" ".join(record.values())]})
    assert listed.status_code == 200, listed.text
    assert listed.json() == plain.json()
    bad = client.post(
        "/invocations", json={"dataframe_records": [record, {"title": "Refund for my"}]}
    )
    assert bad.status_code == 400
    assert "record 1 (counting from 0) lacks field(s) 'description'" in bad.json()["message"]


def test_predict_command_takes_records(env: Registered, venv_env: dict[str, str]) -> None:
    record = {"title": "App crashes on", "description": "login every time"}
    run = ["nlpflow", "predict", "--model", f"{env.name}@champion", "--json"]
    done = subprocess.run([*run, "--record", json.dumps(record)], env=dict(os.environ) | {"PATH": venv_env["PATH"]},
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.splitlines()[0])
    expected = _pyfunc(env).predict(pd.DataFrame({"text": ["App crashes on login every time"]}))
    assert answer["label"] == expected["label"][0]
    assert answer["text"] == "App crashes on login every time"
    done = subprocess.run([*run, "--record", '{"title": "Refund"}'],
                          env=dict(os.environ) | {"PATH": venv_env["PATH"]}, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 2 and "lacks field(s) 'description'" in done.stderr
    assert "Traceback" not in done.stderr
