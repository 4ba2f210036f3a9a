"""Batch inference in chunks: the same predictions whatever the chunk size and the engine, ids
repeated across chunks rejected as one check of the whole input would, a run killed with
SIGKILL resumed with every row scored exactly once, and two runs at once on one output.
Real Prefect (ProcessPoolTaskRunner workers), a real MLflow registry, real GX, the local
PostgreSQL for the table output."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from nlpflow.errors import OutputBusyError
from nlpflow.serving.batch.progress import open_job
from tests.conftest import PG_URL, mlflow_client
from tests.integration.test_batch_inference import BLANK, GOOD, LONG, Registered, register_model

META = ["run_id", "scored_at"]  # differ between runs by design


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Registered:
    root = tmp_path / "project"
    root.mkdir()
    reg = register_model(root, f"chunks-{uuid.uuid4().hex[:6]}")
    monkeypatch.setenv("NLPFLOW_PROJECT_DIR", str(root))
    monkeypatch.setenv("NLPFLOW_TRACKING_URI", reg.tracking_uri)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("NLPFLOW_ARTIFACT_ROOT", raising=False)
    monkeypatch.setenv("NLPFLOW_REGISTERED_MODEL", reg.name)
    return reg


def _rows(n: int) -> pd.DataFrame:
    """n tickets with ids; a blank text at 10, a long one at 30, id 1003 at rows 3 and 40."""
    texts = [f"{GOOD[i % len(GOOD)]} (ticket {i})" for i in range(n)]
    texts[10], texts[30] = BLANK, LONG
    ids = [1000 + i for i in range(n)]
    ids[40] = ids[3]
    return pd.DataFrame({"ticket_id": ids, "body": texts, "channel": ["mail"] * n})


def _infer(output: str, *extra: str) -> dict:
    from nlpflow.flows.inference import inference_flow

    return inference_flow(
        overrides=[
            "inference.source=incoming/tickets.csv", "inference.text_column=body",
            "inference.id_column=ticket_id", f"inference.output={output}",
            "inference.batch_size=5", *extra,
        ]
    )  # fmt: skip


def test_chunks_on_two_worker_processes_equal_one_pass(
    prefect_api: str, registered: Registered, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nlpflow.serving.batch.read as read

    root = registered.root
    (root / "incoming").mkdir()
    _rows(45).to_csv(root / "incoming" / "tickets.csv", index=False)
    whole = _infer("out/whole.parquet", "inference.chunk_rows=1000")
    assert whole["chunks"] == 1
    # streamed (not read whole), 7 rows a chunk, on two worker processes
    monkeypatch.setattr(read, "WHOLE_BELOW_BYTES", 0)
    monkeypatch.setenv("NLPFLOW_ENGINE", "processes")
    monkeypatch.setenv("NLPFLOW_WORKERS", "2")
    chunked = _infer("out/chunked.parquet", "inference.chunk_rows=7")
    assert chunked["chunks"] == 7 and chunked["resumed_chunks"] == 0
    a = pd.read_parquet(root / "out" / "whole.parquet")
    b = pd.read_parquet(root / "out" / "chunked.parquet")
    pd.testing.assert_frame_equal(a.drop(columns=META), b.drop(columns=META))
    # the repeated id is rejected at both rows although they lie in different chunks
    rejected = pd.read_parquet(root / "out" / "chunked.rejected.parquet")
    assert rejected["row"].tolist() == [3, 10, 30, 40]
    assert rejected["checks"].tolist() == [
        "id_unique",
        "text_not_blank",
        "text_length",
        "id_unique",
    ]
    pd.testing.assert_frame_equal(
        pd.read_parquet(root / "out" / "whole.rejected.parquet").drop(columns=META),
        rejected.drop(columns=META),
    )
    assert b["row"].tolist() == [r for r in range(45) if r not in {3, 10, 30, 40}]
    for key in ("rows_read", "rows_valid", "rows_rejected", "rows_scored", "labels",
                "rejected_by_check"):  # fmt: skip
        assert whole[key] == chunked[key], key
    assert chunked["rejected_by_check"] == {"id_unique": 2, "text_length": 1, "text_not_blank": 1}
    # the files are whole, private to their owner, and the parts are gone
    for name in ("chunked.parquet", "chunked.rejected.parquet"):
        assert (root / "out" / name).stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in (root / "out").iterdir()) == [
        "chunked.parquet", "chunked.rejected.parquet", "whole.parquet", "whole.rejected.parquet"
    ]  # fmt: skip
    # CSV parts are joined with one header: the same rows as the Parquet output
    _infer("out/chunked.csv", "inference.chunk_rows=7")
    csv = pd.read_csv(root / "out" / "chunked.csv")
    assert csv["row"].tolist() == b["row"].tolist() and csv["label"].tolist() == b["label"].tolist()
    assert pd.read_csv(root / "out" / "chunked.rejected.csv")["row"].tolist() == [3, 10, 30, 40]


def test_on_invalid_fail_checks_every_chunk_before_writing(
    prefect_api: str, registered: Registered, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nlpflow.errors import DataValidationError

    root = registered.root
    (root / "incoming").mkdir()
    _rows(45).to_csv(root / "incoming" / "tickets.csv", index=False)
    with pytest.raises(DataValidationError) as failed:
        _infer("out/p.parquet", "inference.chunk_rows=7", "inference.on_invalid=fail")
    message = str(failed.value)
    assert "4 of 45 rows break 3 check(s)" in message
    assert "[id_unique]: 2 rows" in message
    assert "row 3 ticket_id='1003'" in message and "row 40 ticket_id='1003'" in message
    assert "row 30 ticket_id='1030'" in message and "(400 chars)" in message
    assert not (root / "out").exists() or not any((root / "out").iterdir()), list(
        (root / "out").rglob("*")
    )


# --------------------------------------------------------------------- killed, resumed


def _env(reg: Registered, venv_env: dict[str, str], prefect_api: str) -> dict[str, str]:
    return venv_env | {
        "PREFECT_API_URL": prefect_api, "NLPFLOW_PROJECT_DIR": str(reg.root),
        "NLPFLOW_TRACKING_URI": reg.tracking_uri, "NLPFLOW_REGISTERED_MODEL": reg.name,
        "NLPFLOW_ENGINE": "processes", "NLPFLOW_WORKERS": "2",
    }  # fmt: skip


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["nlpflow", "infer", *args], env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip


def _wait_until(
    done: object, *, what: str, proc: subprocess.Popen[str], seconds: float = 240
) -> None:
    deadline = time.monotonic() + seconds
    while not done():  # type: ignore[operator]
        if proc.poll() is not None:
            _, err = proc.communicate()
            raise AssertionError(
                f"the run ended (rc {proc.returncode}) before {what}:\n{err[-3000:]}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {seconds} s")
        time.sleep(0.05)


@pytest.fixture
def table(pg_engine) -> Iterator[str]:
    import sqlalchemy as sa

    name = f"inf_chunks_{uuid.uuid4().hex[:8]}"
    try:
        yield name
    finally:
        with pg_engine.begin() as connection:
            for suffix in ("", "_rejected", "_progress"):
                connection.execute(sa.text(f'DROP TABLE IF EXISTS "{name}{suffix}"'))


def _committed_chunks(target: str, reg: Registered, engine) -> int:
    if target == "file":
        parts = reg.root / "out" / "scored.parquet.parts"
        return len(list(parts.glob("chunk-*.json"))) if parts.is_dir() else 0
    import sqlalchemy as sa

    with engine.connect() as connection:
        if not sa.inspect(connection).has_table(f"{target}_progress"):
            return 0
        return int(
            connection.execute(
                sa.text(f'SELECT count(*) FROM "{target}_progress" WHERE chunk >= 0')
            ).scalar()
        )


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["file", "table"])
def test_a_killed_run_resumes_and_scores_every_row_once(
    kind: str, prefect_api: str, registered: Registered, venv_env: dict[str, str], pg_engine,
    request: pytest.FixtureRequest,
) -> None:  # fmt: skip
    reg, n = registered, 1500
    frame = _rows(n)
    if kind == "file":
        source = reg.root / "incoming" / "tickets.csv"
        source.parent.mkdir()
        frame.to_csv(source, index=False)
        where = [f"inference.source={source}", "inference.output=out/scored.parquet"]
        target = "file"
    else:
        target = request.getfixturevalue("table")
        frame.to_sql(f"{target}_input", pg_engine, index=False)
        request.addfinalizer(lambda: _drop(pg_engine, f"{target}_input"))
        where = [f"inference.source={PG_URL}", f"inference.table={target}_input",
                 f"inference.output={target}"]  # fmt: skip
    args = [a for s in [*where, "inference.text_column=body", "inference.id_column=ticket_id",
                        "inference.chunk_rows=50"] for a in ("--set", s)]  # fmt: skip
    env = _env(reg, venv_env, prefect_api)
    kill_after = random.randint(2, 8)  # shown by the assertion messages below
    first = _start(args, env)
    try:
        _wait_until(lambda: _committed_chunks(target, reg, pg_engine) >= kill_after,
                    what=f"{kill_after} committed chunks", proc=first)  # fmt: skip
        if kind == "file":  # a second run on the same output file is refused meanwhile
            with pytest.raises(OutputBusyError, match="another inference run is writing"):
                open_job(_plan(reg.root, where), chunk_rows=50, resume=True)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.communicate()
    committed = _committed_chunks(target, reg, pg_engine)
    assert kill_after <= committed < n // 50, (kill_after, committed)
    if kind == "file":
        assert not (reg.root / "out" / "scored.parquet").exists()  # parts only, until the end
        reruns = [_start(args, env)]
    else:  # two reruns at once: they share the job, and still no row is written twice
        reruns = [_start(args, env), _start(args, env)]
    outputs = [proc.communicate(timeout=600) for proc in reruns]
    for proc, (_, err) in zip(reruns, outputs, strict=True):
        assert proc.returncode == 0, err[-3000:]
    assert any("committed by the attempt it resumed" in out for out, _ in outputs), outputs
    if kind == "file":
        scored = pd.read_parquet(reg.root / "out" / "scored.parquet")
        rejected = pd.read_parquet(reg.root / "out" / "scored.rejected.parquet")
        assert not (reg.root / "out" / "scored.parquet.parts").exists()
    else:
        scored = pd.read_sql_table(target, pg_engine)
        rejected = pd.read_sql_table(f"{target}_rejected", pg_engine)
    # every row exactly once: scored or rejected, never both, never twice (a table is read in
    # id order, so `row` counts in that order there)
    rows = [*scored["row"], *rejected["row"]]
    assert sorted(rows) == list(range(n)), (kill_after, committed)
    bad = {1003, 1010, 1030}
    ids = sorted(str(i) for i in scored["ticket_id"])  # CSV ids are read as text
    assert ids == sorted(str(i) for i in frame["ticket_id"] if i not in bad)
    assert sorted(str(i) for i in rejected["ticket_id"]) == ["1003", "1003", "1010", "1030"]
    # the killed attempt's rows carry its run id; that run was closed KILLED by the rerun
    runs = set(scored["run_id"])
    assert len(runs) >= 2
    client = mlflow_client(reg.root)
    statuses = sorted(client.get_run(r).info.status for r in runs)
    assert statuses.count("KILLED") == 1 and "RUNNING" not in statuses, statuses


def _plan(root: Path, overrides: list[str]):
    from nlpflow.config.params import load_params
    from nlpflow.config.settings import Settings
    from nlpflow.serving.batch import plan_inference

    params = load_params(root / "params.yaml", [*overrides, "inference.text_column=body",
                                                "inference.id_column=ticket_id"])  # fmt: skip
    return plan_inference(params, Settings(project_dir=root))


def _drop(engine, name: str) -> None:
    import sqlalchemy as sa

    with engine.begin() as connection:
        connection.execute(sa.text(f'DROP TABLE IF EXISTS "{name}"'))


@pytest.mark.slow
def test_a_worker_killed_midway_fails_the_run_with_a_message_and_the_rerun_resumes(
    prefect_api: str, registered: Registered, venv_env: dict[str, str]
) -> None:
    import psutil

    reg, n = registered, 1500
    source = reg.root / "incoming" / "tickets.csv"
    source.parent.mkdir()
    _rows(n).to_csv(source, index=False)
    sets = [f"inference.source={source}", "inference.output=out/scored.parquet",
            "inference.text_column=body", "inference.id_column=ticket_id",
            "inference.chunk_rows=50"]  # fmt: skip
    args = [a for s in sets for a in ("--set", s)]
    env = _env(reg, venv_env, prefect_api)
    run = _start(args, env)
    try:
        _wait_until(lambda: _committed_chunks("file", reg, None) >= 2, what="2 chunks", proc=run)
        workers = [p for p in psutil.Process(run.pid).children(recursive=True)
                   if "spawn_main" in " ".join(p.cmdline())]  # fmt: skip
        assert len(workers) == 2, workers
        workers[0].kill()  # what the kernel's OOM killer does
        _, err = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    assert run.returncode == 2, err[-3000:]
    assert "[NLP014] a worker process died while scoring" in err
    assert "Traceback" not in err
    rerun = _start(args, env)
    out, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err[-3000:]
    assert "committed by the attempt it resumed" in out
    scored = pd.read_parquet(reg.root / "out" / "scored.parquet")
    assert sorted(scored["row"]) == [r for r in range(n) if r not in {3, 10, 30, 40}]


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["dask", "ray"])
def test_the_same_predictions_on_a_local_dask_or_ray_cluster(
    engine: str, prefect_api: str, registered: Registered, venv_env: dict[str, str]
) -> None:
    """`nlpflow infer` as a user runs it on a laptop (no Prefect server configured: the CLI's
    temporary one, which the cluster's workers report to), chunks on a local cluster of 2
    workers, against the same input scored in this process."""
    reg = registered
    (reg.root / "incoming").mkdir()
    _rows(45).to_csv(reg.root / "incoming" / "tickets.csv", index=False)
    local = _infer("out/local.parquet", "inference.chunk_rows=1000")
    # RAY_AUTH_MODE: a local Ray would otherwise write a token to ~/.ray (test_sweep_engines)
    env = _env(reg, venv_env, prefect_api) | {"NLPFLOW_ENGINE": engine, "RAY_AUTH_MODE": "disabled"}
    env.pop("PREFECT_API_URL")
    sets = ["inference.source=incoming/tickets.csv", "inference.text_column=body",
            "inference.id_column=ticket_id", f"inference.output=out/{engine}.parquet",
            "inference.chunk_rows=10", "inference.batch_size=5"]  # fmt: skip
    run = _start([a for s in sets for a in ("--set", s)], env)
    out, err = run.communicate(timeout=600)
    assert run.returncode == 0, err[-4000:]
    assert "5 chunk(s)" in out
    assert f"chunks run on {engine} (2 local {engine} workers)" in err
    a = pd.read_parquet(reg.root / "out" / "local.parquet")
    b = pd.read_parquet(reg.root / "out" / f"{engine}.parquet")
    pd.testing.assert_frame_equal(a.drop(columns=META), b.drop(columns=META))
    assert local["rows_scored"] == len(b) == 41


def test_a_long_stream_of_texts_does_not_grow_the_cleaners_vocabulary(
    registered: Registered, monkeypatch: pytest.MonkeyPatch
) -> None:
    """spaCy keeps every distinct token it has seen; a worker scoring millions of rows (or a
    server running for weeks) starts a fresh cleaner past VOCAB_LIMIT strings, answering the
    same."""
    import mlflow.pyfunc

    import nlpflow.data.preprocess as preprocess

    monkeypatch.setenv("MLFLOW_TRACKING_URI", registered.tracking_uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", registered.tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/{registered.name}/{registered.version}")
    inner = model.unwrap_python_model()
    texts = [f"refund for order {i} ref {i * 7919}" for i in range(16)]
    before = model.predict(pd.DataFrame({"text": texts}))
    first = inner.cleaner
    monkeypatch.setattr(preprocess, "VOCAB_LIMIT", len(first.nlp.vocab.strings) + 5)
    again = model.predict(
        pd.DataFrame({"text": [f"{t} unseen{i} words{i}" for i, t in enumerate(texts)]})
    )
    assert inner.cleaner is not first  # grown past the limit: replaced
    assert len(inner.cleaner.nlp.vocab.strings) < len(first.nlp.vocab.strings)
    after = model.predict(pd.DataFrame({"text": texts}))
    pd.testing.assert_frame_equal(before, after)
    assert len(again) == len(texts)
