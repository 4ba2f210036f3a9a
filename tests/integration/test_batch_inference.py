"""Batch inference against the local PostgreSQL (database `test`): the flow reads a real table,
validates it with GX, scores it with a model registered in a real MLflow registry (SQLite), and
appends predictions (and the rejected rows) to tables of the same database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from nlpflow.errors import DataValidationError, ParamsError, RegistryError
from tests.conftest import PG_URL, SAMPLE

MODEL_MAX_CHARS = 300  # baked into the registered version; params.serve.max_chars stays 5000


@dataclass
class Registered:
    root: Path  # project folder: params.yaml (absent: defaults), mlflow.db
    tracking_uri: str
    name: str
    version: int


def register_model(
    root: Path, name: str, *, labels: list[str] | None = None, alias: str = "champion"
) -> Registered:
    """Train a quick tfidf_logreg on the bundled sample (only `labels` when given), save it
    with its manifest as nlpflow.training.train.train does, publish it and point `alias` at it."""
    from nlpflow.config.params import Params, PreprocessParams, ServeParams, TrainParams
    from nlpflow.config.settings import Settings
    from nlpflow.release.registry import publish_model
    from nlpflow.tracking.tracker import Tracker
    from nlpflow.training.families import update_manifest
    from nlpflow.training.train import fit

    sample = pd.read_csv(SAMPLE)
    if labels is not None:
        sample = sample[sample["label"].isin(labels)]
    texts, targets = sample["text"].tolist(), sample["label"].tolist()
    train = TrainParams(family="tfidf_logreg")
    model = fit(
        (texts, targets), (texts[:20], targets[:20]), labels=sorted(set(targets)), params=train
    )
    model_dir = root / "models" / f"{name}-{uuid.uuid4().hex[:6]}"
    model.save(model_dir)
    update_manifest(model_dir, preprocess=PreprocessParams().model_dump(), train=train.model_dump())
    uri = f"sqlite:///{root / 'mlflow.db'}"
    tracker = Tracker(Settings(project_dir=root, tracking_uri=uri))
    run_id = tracker.start_run("nlpflow", run_name="register-for-inference", tags={})
    params = Params(serve=ServeParams(max_chars=MODEL_MAX_CHARS, max_batch=16))
    version = publish_model(
        tracker, run_id=run_id, model_dir=model_dir, model_name=name, params=params
    )
    tracker.end_run(run_id, "FINISHED")
    tracker.client.set_registered_model_alias(name, alias, str(version))
    return Registered(root=root, tracking_uri=uri, name=name, version=version)


def served_predictions(reg: Registered, texts: list[str]) -> pd.DataFrame:
    """What the champion predicts when MLflow's own loader fetches it by alias, in process."""
    import mlflow
    import mlflow.pyfunc

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_REGISTRY_URI", reg.tracking_uri)
        mp.setenv("MLFLOW_TRACKING_URI", reg.tracking_uri)
        assert mlflow.get_registry_uri() == reg.tracking_uri
        model = mlflow.pyfunc.load_model(f"models:/{reg.name}@champion")
    return model.predict(pd.DataFrame({"text": texts}))


@pytest.fixture
def inference_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Registered]:
    root = tmp_path / "project"
    root.mkdir()
    name = f"infer-{uuid.uuid4().hex[:6]}"
    reg = register_model(root, name)
    monkeypatch.setenv("NLPFLOW_PROJECT_DIR", str(root))
    monkeypatch.setenv("NLPFLOW_TRACKING_URI", reg.tracking_uri)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("NLPFLOW_ARTIFACT_ROOT", raising=False)
    monkeypatch.setenv("NLPFLOW_REGISTERED_MODEL", name)
    yield reg


@pytest.fixture
def engine(pg_engine) -> object:
    return pg_engine


@pytest.fixture
def tables(engine) -> Iterator[dict[str, str]]:
    """Unique names of the input, predictions and rejected tables; all dropped afterwards."""
    import sqlalchemy as sa

    stem = f"inf_{uuid.uuid4().hex[:8]}"
    names = {"input": f"{stem}_tickets", "output": f"{stem}_preds"}
    names["rejected"] = f"{names['output']}_rejected"
    try:
        yield names
    finally:
        with engine.begin() as connection:
            for table in names.values():
                connection.execute(sa.text(f'DROP TABLE IF EXISTS "{table}"'))


GOOD = [
    "I was charged twice for my subscription this month",
    "The app crashes every time I open the settings page",
    "Where is my parcel? It was due last week",
    "Please reset my password, I cannot log in",
    "Can I get a refund for the annual plan?",
    "Error 500 when uploading a CSV file",
]
BLANK, LONG = "   \t ", "my invoice is wrong " * 20  # 400 characters: over the model's 300


def _input_rows() -> pd.DataFrame:
    texts = [*GOOD[:3], BLANK, *GOOD[3:], LONG]
    return pd.DataFrame({"ticket_id": [101 + i for i in range(len(texts))], "body": texts})


def _read(engine, table: str) -> pd.DataFrame:
    return pd.read_sql_table(table, engine)


def test_flow_scores_a_postgres_table(
    prefect_api: str, inference_env: Registered, engine, tables
) -> None:
    from nlpflow.flows.inference import inference_flow
    from tests.conftest import mlflow_client

    rows = _input_rows()
    rows.to_sql(tables["input"], engine, index=False)
    before = _read(engine, tables["input"])
    result = inference_flow(
        overrides=[
            f"inference.source={PG_URL}", f"inference.table={tables['input']}",
            "inference.text_column=body", "inference.id_column=ticket_id",
            f"inference.output={tables['output']}", "inference.batch_size=4",
        ]
    )  # fmt: skip
    reg = inference_env
    predictions = _read(engine, tables["output"]).sort_values("ticket_id").reset_index(drop=True)
    valid = rows[~rows["body"].isin([BLANK, LONG])].reset_index(drop=True)
    assert predictions["ticket_id"].tolist() == valid["ticket_id"].tolist()
    assert predictions["row"].tolist() == [0, 1, 2, 4, 5, 6]
    # every row scored by the registered version, exactly as the pyfunc scores it in-process
    expected = served_predictions(reg, valid["body"].tolist())
    assert predictions["label"].tolist() == expected["label"].tolist()
    proba = [c for c in expected.columns if c.startswith("proba_")]
    assert len(proba) >= 4
    pd.testing.assert_frame_equal(predictions[["score", *proba]], expected[["score", *proba]])
    assert set(predictions["model_version"]) == {reg.version}
    assert set(predictions["model_name"]) == {reg.name}
    assert predictions["scored_at"].nunique() == 1 and predictions["scored_at"].notna().all()
    assert str(predictions["scored_at"].dt.tz) == "UTC"
    assert set(predictions["run_id"]) == {result["run_id"]}
    # the two bad rows, beside the output, with the check each broke
    rejected = _read(engine, tables["rejected"]).sort_values("ticket_id").reset_index(drop=True)
    assert rejected["ticket_id"].tolist() == [104, 108]
    assert rejected["checks"].tolist() == ["text_not_blank", "text_length"]
    assert rejected["expectations"].tolist() == [
        "expect_column_values_to_not_match_regex", "expect_column_value_lengths_to_be_between",
    ]  # fmt: skip
    assert "at most 300 characters" in rejected["reasons"][1]  # the model's limit, not params'
    assert rejected["body"].tolist() == [BLANK, LONG]
    assert set(rejected["run_id"]) == {result["run_id"]}
    # the input table is as it was
    pd.testing.assert_frame_equal(_read(engine, tables["input"]), before)
    # counts in the flow's result and the MLflow run
    assert result["rows_read"] == 8 and result["rows_rejected"] == 2 and result["rows_scored"] == 6
    assert sum(result["labels"].values()) == 6
    run = mlflow_client(reg.root).get_run(result["run_id"])
    assert run.info.status == "FINISHED"
    experiment = mlflow_client(reg.root).get_experiment(run.info.experiment_id)
    assert experiment.name == "nlpflow-inference"
    metrics = run.data.metrics
    assert (
        metrics["rows_read"],
        metrics["rows_valid"],
        metrics["rows_rejected"],
        metrics["rows_scored"],
    ) == (8, 6, 2, 6)
    assert metrics["rejected_text_not_blank"] == 1 and metrics["rejected_text_length"] == 1
    counts = expected["label"].value_counts()
    assert {k: metrics[f"label_{k}"] for k in counts.index} == counts.to_dict()
    tags = run.data.tags
    assert tags["model.name"] == reg.name and tags["model.version"] == str(reg.version)
    assert tags["inference.output"] == f"table {tables['output']}"
    assert tags["inference.source"].startswith("postgresql+psycopg://postgres@127.0.0.1:5432/test")
    # a second run appends: the table holds both runs, told apart by run id
    again = inference_flow(
        overrides=[
            f"inference.source={PG_URL}", f"inference.table={tables['input']}",
            "inference.text_column=body", "inference.id_column=ticket_id",
            f"inference.output={tables['output']}",
        ]
    )  # fmt: skip
    both = _read(engine, tables["output"])
    assert len(both) == 12 and set(both["run_id"]) == {result["run_id"], again["run_id"]}


def test_on_invalid_fail_stops_with_examples_and_writes_nothing(
    prefect_api: str, inference_env: Registered, engine, tables
) -> None:
    from nlpflow.flows.inference import inference_flow
    from tests.conftest import mlflow_client

    _input_rows().to_sql(tables["input"], engine, index=False)
    with pytest.raises(DataValidationError) as failed:
        inference_flow(
            overrides=[
                f"inference.source={PG_URL}", f"inference.query=SELECT * FROM \"{tables['input']}\"",
                "inference.text_column=body", "inference.id_column=ticket_id",
                f"inference.output={tables['output']}", "inference.on_invalid=fail",
            ]
        )  # fmt: skip
    message = str(failed.value)
    assert "2 of 8 rows break 2 check(s)" in message
    assert "[text_not_blank]: 1 rows" in message and "row 3 ticket_id=104" in message
    assert "[text_length]: 1 rows" in message and "(400 chars)" in message
    assert "inference.on_invalid=skip" in message
    import sqlalchemy as sa

    inspector = sa.inspect(engine)
    assert not inspector.has_table(tables["output"])
    assert not inspector.has_table(tables["rejected"])
    [run] = mlflow_client(inference_env.root).search_runs(
        [
            mlflow_client(inference_env.root)
            .get_experiment_by_name("nlpflow-inference")
            .experiment_id
        ]
    )
    assert run.info.status == "FAILED"


def _plan(root: Path, **inference: object):
    from nlpflow.config.params import parse_params
    from nlpflow.config.settings import Settings
    from nlpflow.serving.batch import plan_inference

    params = parse_params({"inference": {"source": PG_URL, **inference}})
    return plan_inference(params, Settings(project_dir=root))


def test_refuses_to_write_into_the_input_table(tmp_path: Path) -> None:
    for output in ("tickets", "public.tickets"):
        with pytest.raises(ParamsError, match="the input table 'tickets'"):
            _plan(tmp_path, table="tickets", output=output)
    with pytest.raises(ParamsError, match="the input table"):  # the rejected rows' table
        _plan(tmp_path, table="preds_rejected", output="preds")
    with pytest.raises(ParamsError, match=r"which inference\.query reads"):
        _plan(tmp_path, query='SELECT * FROM "Preds" WHERE id > 3', output="preds")
    # namesakes in other schemas, and longer names, are other tables
    assert _plan(tmp_path, table="crm.tickets", output="scores.tickets").target.kind == "table"
    plan = _plan(tmp_path, query="SELECT * FROM tickets_2026", output="tickets")
    assert (plan.target.predictions, plan.target.rejected) == ("tickets", "tickets_rejected")
    # a database source may write a file; the password never reaches logs or tags
    plan = _plan(tmp_path, table="t", output="out/preds.csv")
    assert plan.target.kind == "file"
    assert plan.target.rejected == str(tmp_path / "out/preds.rejected.csv")
    from nlpflow.config.params import parse_params
    from nlpflow.config.settings import Settings
    from nlpflow.serving.batch import plan_inference

    url = "postgresql://scorer:s3cret@db.example:5432/shop"
    with pytest.raises(ParamsError, match=r"inference\.source holds a password") as refused:
        parse_params({"inference": {"source": url, "table": "t", "output": "p"}})
    assert "s3cret" not in str(refused.value)
    # built in code, params skip that check: the shown source is masked all the same
    params = parse_params({"inference": {"table": "t", "output": "p"}})
    params = params.model_copy(
        update={"inference": params.inference.model_copy(update={"source": url})}
    )
    shown = plan_inference(params, Settings(project_dir=tmp_path)).shown_source
    assert "s3cret" not in shown and shown.startswith("postgresql://scorer:***@db.example")


def test_params_that_cannot_work_are_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match=r"set inference\.table"):
        _plan(tmp_path, output="p")
    with pytest.raises(ParamsError, match=r"inference\.output is not set"):
        _plan(tmp_path, table="t")
    with pytest.raises(ParamsError, match="clashes with a column nlpflow writes"):
        _plan(tmp_path, table="t", output="p", id_column="label")
    from nlpflow.config.params import parse_params

    with pytest.raises(ParamsError, match="not both"):
        parse_params({"inference": {"source": PG_URL, "table": "t", "query": "SELECT 1"}})
    with pytest.raises(ParamsError, match="apply to a database source"):
        parse_params({"inference": {"source": "new.csv", "table": "t"}})


def test_a_missing_model_or_alias_is_a_clear_error(tmp_path: Path) -> None:
    from nlpflow.config.settings import Settings
    from nlpflow.tracking.refs import resolve_model
    from nlpflow.tracking.tracker import Tracker

    reg = register_model(tmp_path, "infer-aliases")
    tracker = Tracker(Settings(project_dir=tmp_path, tracking_uri=reg.tracking_uri))
    assert resolve_model(tracker, reg.name, alias="champion").version == reg.version
    assert resolve_model(tracker, reg.name, alias=str(reg.version)).version == reg.version
    option = "inference.model_alias"
    with pytest.raises(RegistryError, match=r"no alias 'prod' \(aliases: @champion -> version 1\)"):
        resolve_model(tracker, reg.name, alias="prod", option=option)
    with pytest.raises(
        RegistryError, match=r"no version 7 \(versions: 1\): .*inference.model_alias"
    ):
        resolve_model(tracker, reg.name, alias="7", option=option)
    with pytest.raises(RegistryError, match=r"no registered model 'nope'.*nlpflow run"):
        resolve_model(tracker, "nope", alias="champion")


def test_id_checks_and_a_missing_column(tmp_path: Path) -> None:
    """GX on the rows alone: null and repeated ids are rejected with their reasons (a repeated
    id cannot join its prediction back), a missing column stops the run whatever on_invalid."""
    from nlpflow.serving.batch import validate_rows

    frame = pd.DataFrame(
        {"id": [1, 2, 2, None, 5], "text": ["fine", "twin a", "twin b", "no id", None]},
        dtype=object,
    )
    checked = validate_rows(
        frame, text_column="text", id_column="id", max_chars=100, on_invalid="skip"
    )
    assert checked.valid["row"].tolist() == [0]
    assert checked.rejected["row"].tolist() == [1, 2, 3, 4]
    assert checked.rejected["checks"].tolist() == [
        "id_unique", "id_unique", "id_not_null", "text_not_null",
    ]  # fmt: skip
    assert checked.failed == {"id_unique": 2, "id_not_null": 1, "text_not_null": 1}
    assert frame["id"].tolist()[:3] == [1, 2, 2]  # the caller's frame is not changed
    for on_invalid in ("skip", "fail"):
        with pytest.raises(DataValidationError, match=r"no column 'body'.*its columns: id, text"):
            validate_rows(
                frame, text_column="body", id_column=None, max_chars=100, on_invalid=on_invalid
            )


def test_batches_never_exceed_the_models_max_batch(tmp_path: Path) -> None:
    from nlpflow.config.settings import Settings
    from nlpflow.serving.batch import load_version, score_rows
    from nlpflow.tracking.refs import resolve_model
    from nlpflow.tracking.tracker import Tracker

    reg = register_model(tmp_path, "infer-batches")  # max_batch 16 in its model_config
    tracker = Tracker(Settings(project_dir=tmp_path, tracking_uri=reg.tracking_uri))
    model = load_version(
        tracker, resolve_model(tracker, reg.name, alias="champion"),
        max_chars=5000, max_batch=256,
    )  # fmt: skip
    texts = [f"{GOOD[i % len(GOOD)]} (ticket {i})" for i in range(40)]
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException, match="max_batch"):  # the served model's own limit
        model.pyfunc.predict(pd.DataFrame({"text": texts[:17]}))
    scored = score_rows(model, pd.DataFrame({"text": texts}), text_column="text", batch_size=256)
    expected = [served_predictions(reg, texts[i : i + 16]) for i in range(0, 40, 16)]
    pd.testing.assert_frame_equal(scored, pd.concat(expected, ignore_index=True))
