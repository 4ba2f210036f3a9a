"""`nlpflow serve` and `nlpflow predict` against a real registry (SQLite in a temp dir) and a real
`mlflow models serve` process, in an environment where any attempt to install a package or to
reach the network would fail."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.conftest import SAMPLE, use_mlflow_store
from tests.serve_client import NLPFLOW, free_port, hostile_env, post, serving

pytestmark = pytest.mark.slow
NAME = "serve-test-classifier"
MAX_CHARS, MAX_BATCH = 200, 8
# Raw texts as a client sends them; the URL, e-mail and capitals are changed by preprocessing.
RAW = [
    "Hi, I was billed twice for my subscription, see https://example.com/invoice/9",
    "My parcel is stuck in customs since Monday",
    "   The app crashes when I upload a photo!!  ",
    "Please delete my account and all my data: jane@example.com",
    "REFUND ME NOW, the charge on my card is wrong",
    "Où est mon colis? tracking says delivered",
]


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tfidf_logreg model trained as the train stage does (cleaned text, manifest with the
    preprocess params), published with small serving limits, version 1 = champion."""
    from nlpflow.config.params import PreprocessParams, TrainParams, parse_params
    from nlpflow.config.settings import Settings
    from nlpflow.data.preprocess import TextPreprocessor
    from nlpflow.release.registry import publish_model
    from nlpflow.tracking.tracker import Tracker
    from nlpflow.training.families import update_manifest
    from nlpflow.training.train import fit

    root = tmp_path_factory.mktemp("serving") / "project"
    root.mkdir()
    frame = pd.read_csv(SAMPLE)
    preprocess = PreprocessParams(lowercase=True, remove_punctuation=True)
    cleaner = TextPreprocessor(preprocess)
    train = TrainParams(family="tfidf_logreg")
    labels = sorted(set(frame["label"]))
    model = fit(
        (cleaner.transform(frame["text"].tolist()), frame["label"].tolist()), ([], []),
        labels=labels, params=train,
    )  # fmt: skip
    folder = root / "models" / "model"
    model.save(folder)
    update_manifest(folder, preprocess=preprocess.model_dump(), train=train.model_dump())
    settings = Settings(project_dir=root, registered_model=NAME)
    tracker = Tracker(settings)
    run_id = tracker.start_run("nlpflow", run_name="serving-test", tags={})
    params = parse_params({"serve": {"max_chars": MAX_CHARS, "max_batch": MAX_BATCH}})
    version = publish_model(
        tracker, run_id=run_id, model_dir=folder, model_name=NAME, params=params
    )
    tracker.client.set_registered_model_alias(NAME, "champion", str(version))
    tracker.end_run(run_id, "FINISHED")
    return {"root": root, "folder": folder, "model": model, "cleaner": cleaner, "labels": labels}


@pytest.fixture(scope="module")
def server(registered, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with serving(registered["root"], NAME, tmp_path_factory.mktemp("serve")) as running:
        yield running


def _in_process(registered: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    import mlflow

    use_mlflow_store(monkeypatch, registered["root"])
    return mlflow.pyfunc.load_model(f"models:/{NAME}@champion")


def test_served_predictions_equal_in_process(registered, server, monkeypatch) -> None:
    local = _in_process(registered, monkeypatch).predict(pd.DataFrame({"text": RAW}))
    status, body = post(server["url"], {"dataframe_split": {"columns": ["text"],
                                                             "data": [[t] for t in RAW]}})  # fmt: skip
    assert status == 200, body
    served = pd.DataFrame(body["predictions"])
    assert list(served.columns) == ["label", "score", *(f"proba_{c}" for c in registered["labels"])]
    assert served["label"].tolist() == local["label"].tolist()
    # identical, not close: the server runs the same code on the same floats, and JSON's
    # shortest repr of a float64 reads back to the same float64
    assert served.to_dict(orient="list") == local.reset_index(drop=True).to_dict(orient="list")
    # the other payload form gives the same answer
    status, plain = post(server["url"], {"inputs": RAW})
    assert status == 200 and plain == body
    # the server cleaned the text: on the raw texts the bare model answers differently
    model, cleaner = registered["model"], registered["cleaner"]
    cleaned = model.predict_proba(cleaner.transform(RAW))
    assert served.filter(like="proba_").to_numpy() == pytest.approx(cleaned, abs=1e-12)
    assert abs(model.predict_proba(RAW) - cleaned).max() > 1e-3


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"inputs": ["fine", ""]}, "row 1: text is empty"),
        ({"inputs": ["   \t "]}, "row 0: text is blank (whitespace only)"),
        ({"inputs": ["ok", "x" * (MAX_CHARS + 1)]},
         f"row 1: text has {MAX_CHARS + 1} characters, more than serve.max_chars={MAX_CHARS}"),
        ({"inputs": ["my parcel"] * (MAX_BATCH + 1)},
         f"{MAX_BATCH + 1} texts in one request, more than serve.max_batch={MAX_BATCH}"),
        ({"dataframe_records": [{"text": "ok"}, {"text": None}]}, "row 1: text is missing"),
        ({"dataframe_records": [{"body": "my parcel"}]}, "missing inputs ['text']"),
        # values MLflow's parsing turned into the texts "None", "3", "True" (answered 200)
        ({"inputs": [None]}, "row 0: text is missing"),
        ({"inputs": ["ok", 3]}, "row 1: text is a int, not a string"),
        ({"inputs": [True]}, "row 0: text is a bool, not a string"),
        ({"inputs": [1.5]}, "row 0: text is a float, not a string"),
        ({"inputs": [["nested"]]}, "row 0: text is a list, not a string"),
        ({"inputs": {"text": ["ok", {"a": 1}]}}, "row 1: text is a dict, not a string"),
        ({"instances": [None]}, "row 0: text is missing"),
        ({"dataframe_split": {"columns": ["text"], "data": [["ok"], [7]]}},
         "row 1: text is a int, not a string"),
        ({"inputs": ["None"]}, "row 0: text is 'None', a missing value written as text"),
        ({"inputs": [" nan "]}, "row 0: text is 'nan', a missing value written as text"),
    ],
)  # fmt: skip
def test_bad_requests_get_400_with_a_message(server, payload: Any, fragment: str) -> None:
    status, body = post(server["url"], payload)
    assert status == 400, body
    assert fragment in body["message"]
    assert body["error_code"] == "INVALID_PARAMETER_VALUE"
    # and the server is still up and answering
    status, good = post(server["url"], {"inputs": ["my parcel never arrived"]})
    assert status == 200 and good["predictions"][0]["label"] == "shipping"


def _raw_request(port: int, head: str, body: bytes = b"") -> tuple[int, bytes]:
    """One HTTP/1.1 exchange on a socket: the status and body, even when the server answers
    before reading all that was announced."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as conn:
        conn.sendall(head.encode() + b"\r\n" + body)
        response = b""
        while chunk := conn.recv(65536):
            response += chunk
    status_line, _, rest = response.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def _head(length: int) -> str:
    return (
        "POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\nConnection: close\r\n"
    )


def test_request_size_depth_and_error_length_are_bounded(server) -> None:
    from nlpflow.serving.app import Limits

    limit = Limits(max_chars=MAX_CHARS, max_batch=MAX_BATCH).max_body_bytes
    # 5 MB announced, nothing sent: refused from the header, the body never read
    status, body = _raw_request(server["port"], _head(5_000_000))
    assert status == 413 and len(body) < 1024
    assert f"5,000,000 bytes, more than {limit:,}" in json.loads(body)["message"]
    # nested 30,000 deep, under the size limit: a 400, not MLflow's RecursionError 500
    deep = b'{"inputs": ' + b"[" * 30_000 + b"]" * 30_000 + b"}"
    status, body = _raw_request(server["port"], _head(len(deep)), deep)
    assert status == 400 and "nests 30,001 levels deep, more than 32" in body.decode()
    # a long text under the size limit: 400 saying the length and the limit, not echoing it
    status, answer = post(server["url"], {"inputs": ["é" * 10_000]})
    assert status == 400 and len(json.dumps(answer)) < 1024
    assert (
        f"text has 10,000 characters, more than serve.max_chars={MAX_CHARS}" in (answer["message"])
    )
    assert "éééé" not in answer["message"]
    # MLflow's own errors lose the request they quoted ("Failed to predict data '...'")
    status, answer = post(server["url"], {"dataframe_records": [{"body": "secret " * 100}]})
    assert status == 400 and "secret" not in json.dumps(answer) and len(json.dumps(answer)) < 1024
    status, answer = post(server["url"], {"inputs": ["my parcel never arrived"]})
    assert status == 200 and answer["predictions"][0]["label"] == "shipping"


def test_server_built_no_environment_and_stops_on_sigterm(server) -> None:
    log = server["log"].read_text()
    assert f"serving {NAME} version 1 (@champion)" in log
    assert not any(server["env_root"].iterdir())  # no virtualenv was made
    process = server["process"]
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    with socket.socket() as probe:  # uvicorn, MLflow's grandchild, is gone too
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no listener
        probe.bind(("127.0.0.1", server["port"]))


def test_serve_refuses_an_unknown_alias_before_starting(registered, tmp_path: Path) -> None:
    env = hostile_env(registered["root"], tmp_path, NAME)
    start = time.monotonic()
    result = subprocess.run(
        [NLPFLOW, "serve", "--model", f"{NAME}@staging", "--port", str(free_port())],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert f"model '{NAME}' has no alias 'staging' (aliases: @champion -> version 1)" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr and time.monotonic() - start < 60
    result = subprocess.run(
        [NLPFLOW, "serve", "--model", "no-such-model"], env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert "no registered model 'no-such-model'" in result.stderr and NAME in result.stderr


def _predict_cli(registered: dict[str, Any], tmp_path: Path, *args: str) -> Any:
    return subprocess.run(
        [NLPFLOW, "predict", *args], env=hostile_env(registered["root"], tmp_path, NAME),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_predict_cli_prints_what_the_model_predicts(registered, tmp_path, monkeypatch) -> None:
    local = _in_process(registered, monkeypatch).predict(pd.DataFrame({"text": RAW[:3]}))
    texts = [arg for text in RAW[:3] for arg in ("--text", text)]
    result = _predict_cli(registered, tmp_path, "--model", f"{NAME}@champion", *texts, "--json")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row.pop("text") for row in rows] == RAW[:3]
    assert rows == local.to_dict(orient="records")
    table = _predict_cli(registered, tmp_path, "--text", RAW[1])  # default: the champion
    assert table.returncode == 0, table.stderr
    assert f"{NAME} version 1 (@champion)" in table.stdout
    assert local["label"][1] in table.stdout and f"{local['score'][1]:.4f}" in table.stdout


def test_predict_cli_reads_files_in_requests_of_max_batch(
    registered, tmp_path, monkeypatch
) -> None:
    texts = (RAW * 2)[: MAX_BATCH + 3]  # more than one request's worth
    model = _in_process(registered, monkeypatch)
    local = pd.concat(
        [
            model.predict(pd.DataFrame({"text": part}))
            for part in (texts[:MAX_BATCH], texts[MAX_BATCH:])
        ],
        ignore_index=True,
    )
    pd.DataFrame({"id": range(len(texts)), "text": texts}).to_csv(tmp_path / "in.csv", index=False)
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n\n")
    pd.DataFrame({"text": texts}).to_json(tmp_path / "in.jsonl", orient="records", lines=True)
    pd.DataFrame({"text": texts}).to_parquet(tmp_path / "in.parquet")
    for name in ("in.csv", "in.txt", "in.jsonl", "in.parquet"):
        result = _predict_cli(registered, tmp_path, "--input", str(tmp_path / name), "--json")
        assert result.returncode == 0, (name, result.stderr)
        rows = [json.loads(line) for line in result.stdout.splitlines()]
        assert [r["text"] for r in rows] == texts, name
        assert [r["label"] for r in rows] == local["label"].tolist(), name
        assert [r["score"] for r in rows] == local["score"].tolist(), name


def test_predict_cli_reports_bad_input(registered, tmp_path: Path) -> None:
    pd.DataFrame({"body": ["my parcel"]}).to_csv(tmp_path / "no_text.csv", index=False)
    result = _predict_cli(registered, tmp_path, "--input", str(tmp_path / "no_text.csv"))
    assert result.returncode == 2
    assert "has no 'text' column (columns: body)" in result.stderr
    pd.DataFrame({"text": ["fine", "", "y" * (MAX_CHARS + 5)]}).to_csv(
        tmp_path / "bad_rows.csv", index=False
    )
    result = _predict_cli(registered, tmp_path, "--input", str(tmp_path / "bad_rows.csv"))
    assert result.returncode == 2, result.stdout
    assert "2 of 3 texts rejected" in result.stderr and "row 1: text is empty" in result.stderr
    assert f"row 2: text has {MAX_CHARS + 5} characters" in result.stderr
    assert "Traceback" not in result.stderr
