"""The gate's reads of a real MLflow registry (SQLite in a temporary folder): only "not found"
means no champion, and what a champion trained on is found from its run."""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from nlpflow.config.params import Params
from nlpflow.config.settings import Settings
from nlpflow.errors import RegistryError, TrackingError
from nlpflow.evaluation.training_texts import (
    TRAINING_TEXTS,
    load_text_hashes,
    save_text_hashes,
    text_key,
)
from nlpflow.release.champion import aliases_of, champion_version, move_champion, withdraw_version
from nlpflow.release.evidence import log_training_texts, overlap
from nlpflow.tracking.connection import RegistryUnavailableError
from nlpflow.tracking.refs import CHALLENGER, CHAMPION
from nlpflow.tracking.tracker import Tracker

NAME = "gate-lookup"


@pytest.fixture(scope="module")
def tracker(tmp_path_factory: pytest.TempPathFactory) -> Tracker:
    """One store for the module (a fresh SQLite store takes seconds to build); each test
    registers its own model name."""
    return Tracker(Settings(project_dir=tmp_path_factory.mktemp("store")))


def _version(tracker: Tracker, name: str, *, run_id: str | None = None) -> int:
    client = tracker.client
    if not client.search_registered_models(f"name = '{name}'"):
        client.create_registered_model(name)
    return int(client.create_model_version(name, "file:///nowhere", run_id=run_id).version)


def test_only_an_absent_model_or_alias_means_no_champion(tracker: Tracker) -> None:
    name = "absent"
    assert champion_version(tracker, name) is None  # no such model
    _version(tracker, name)
    assert champion_version(tracker, name) is None  # a model, no champion alias
    _version(tracker, name)
    tracker.client.set_registered_model_alias(name, CHAMPION, "2")
    assert champion_version(tracker, name) == 2


def test_a_registry_that_fails_is_an_error_not_no_champion(tmp_path: Path) -> None:
    tracker = Tracker(Settings(project_dir=tmp_path))
    _version(tracker, NAME)
    tracker.client.set_registered_model_alias(NAME, CHAMPION, "1")
    # the store breaks (here: a table gone); any answer but "not found" must stop the gate
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        db.execute("DROP TABLE registered_model_aliases")
    with pytest.raises(RegistryUnavailableError) as raised:
        champion_version(tracker, NAME)
    assert raised.value.retryable
    message = str(raised.value)
    assert "looking up the champion of 'gate-lookup'" in message
    assert "no such table" in message and "Nothing was decided" in message
    # a manual promote says so too, instead of "model has no version 1"
    with pytest.raises(RegistryUnavailableError, match="reading version 1"):
        move_champion(tracker, Params(), name=NAME, version=1, action="promote", by="me",
                      reason="hotfix")  # fmt: skip


def test_a_withdrawal_restores_the_aliases_and_never_reads_a_failure_as_none(
    tmp_path: Path,
) -> None:
    tracker = Tracker(Settings(project_dir=tmp_path))
    assert aliases_of(tracker, "nothing-yet") == {CHAMPION: None, CHALLENGER: None}
    for _ in range(2):
        _version(tracker, NAME)
    tracker.client.set_registered_model_alias(NAME, CHAMPION, "1")
    tracker.client.set_registered_model_alias(NAME, CHALLENGER, "1")
    before = aliases_of(tracker, NAME)
    assert before == {CHAMPION: 1, CHALLENGER: 1}
    tracker.client.set_registered_model_alias(NAME, CHALLENGER, "2")  # v2's registration
    run_id = tracker.client.create_run(tracker.experiment_id("withdraw")).info.run_id
    withdraw_version(tracker, NAME, 2, run_id=run_id, restore=before, reason="evaluate failed")
    assert aliases_of(tracker, NAME) == {CHAMPION: 1, CHALLENGER: 1}
    assert [int(v.version) for v in tracker.client.search_model_versions(f"name = '{NAME}'")] == [1]
    with sqlite3.connect(tmp_path / "mlflow.db") as db:  # the store breaks
        db.execute("DROP TABLE registered_model_aliases")
    with pytest.raises(RegistryUnavailableError, match="reading the aliases"):
        aliases_of(tracker, NAME)


def test_a_tracking_server_that_is_away_is_a_retryable_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("NLPFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    away = Tracker(Settings(project_dir=tmp_path))
    with pytest.raises(RegistryUnavailableError) as raised:
        champion_version(away, NAME)
    assert raised.value.retryable and isinstance(raised.value, TrackingError)
    assert f"MLflow tracking server http://127.0.0.1:{port} is unreachable" in str(raised.value)


def test_a_missing_version_is_still_a_registry_error(tracker: Tracker) -> None:
    _version(tracker, "missing")
    with pytest.raises(RegistryError, match="has no version 7"):
        move_champion(tracker, Params(), name="missing", version=7, action="promote", by="me",
                      reason="x")  # fmt: skip


def test_text_keys_ignore_case_spacing_and_unicode_form(tmp_path: Path) -> None:
    assert text_key("Refund  my\tORDER ") == text_key("refund my order")
    assert text_key("ﬁle") == text_key("file")  # NFKC: the ligature is two letters
    assert text_key("refund my order") != text_key("refund my orders")
    path = tmp_path / TRAINING_TEXTS
    assert save_text_hashes(path, ["a", "A ", "b"]) == 2
    first = path.read_bytes()
    save_text_hashes(path, ["b", "a"])
    assert path.read_bytes() == first  # same texts, same bytes: DVC sees no change
    assert load_text_hashes(path) == {text_key("a"), text_key("b")}


def _test_rows(texts: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"raw_text": texts, "label": ["x"] * len(texts)})


def test_overlap_finds_the_test_rows_the_champion_trained_on(
    tracker: Tracker, tmp_path: Path
) -> None:
    run_id = tracker.client.create_run(tracker.client.create_experiment("e")).info.run_id
    evaluation = tmp_path / "evaluation"
    save_text_hashes(evaluation / TRAINING_TEXTS, ["Where is my parcel?", "Cancel my plan"])
    log_training_texts(tracker, run_id=run_id, evaluation=evaluation)
    name = "overlap"
    version = _version(tracker, name, run_id=run_id)
    rows = _test_rows(["cancel my  plan", "new text", "WHERE IS MY PARCEL?", "another"])
    found = overlap(tracker, name, version, predictions=rows)
    assert (found.test_rows, found.trained_on, found.kept) == (4, 2, [1, 3])
    clean = overlap(tracker, name, version, predictions=_test_rows(["new", "other"]))
    assert (clean.trained_on, clean.kept, clean.compared_rows) == (0, None, 2)
    # a version registered before nlpflow recorded its training texts: unknown, not "none"
    other_run = tracker.client.create_run(tracker.client.create_experiment("f")).info.run_id
    legacy = overlap(tracker, name, _version(tracker, name, run_id=other_run), predictions=rows)
    assert legacy.trained_on is None and legacy.compared_rows == 4


def _break(store: Path, table: str) -> None:
    with sqlite3.connect(store / "mlflow.db") as db:
        db.execute(f"DROP TABLE {table}")


def test_one_resolver_says_what_the_registry_holds_and_never_reads_a_failure_as_absent(
    tmp_path: Path,
) -> None:
    from nlpflow.tracking.refs import ModelRef, resolve_model, resolve_spec

    settings = Settings(project_dir=tmp_path)
    tracker = Tracker(settings)
    for _ in range(2):
        _version(tracker, "clf")
    tracker.set_alias("clf", CHAMPION, 1)
    assert resolve_model(tracker, "clf") == ModelRef("clf", 1, CHAMPION)
    assert resolve_model(tracker, "clf", alias="2") == ModelRef("clf", 2)  # a number: a version
    assert resolve_spec("clf/2", settings) == ModelRef("clf", 2)
    assert resolve_spec("models:/clf@champion", settings) == ModelRef("clf", 1, CHAMPION)
    cases = [
        ({"alias": "prod"}, "model 'clf' has no alias 'prod' (aliases: @champion -> version 1)"),
        ({"version": 9}, "model 'clf' has no version 9 (versions: 1, 2): name one of those in X"),
    ]
    for given, says in cases:
        with pytest.raises(RegistryError) as raised:
            resolve_model(tracker, "clf", option="X", **given)  # type: ignore[arg-type]
        assert says in str(raised.value) and raised.value.code == "NLP008"
    with pytest.raises(RegistryError, match=r"no registered model 'nope' .*\(registered: clf\)"):
        resolve_model(tracker, "nope")
    _break(tmp_path, "registered_model_aliases")  # the registry fails: not "no such model"
    with pytest.raises(RegistryUnavailableError, match="reading the aliases of 'clf'") as failed:
        resolve_spec("clf@champion", settings)
    assert failed.value.retryable


def test_a_store_that_fails_is_never_read_as_an_absent_run(tmp_path: Path) -> None:
    from nlpflow.pipeline.reproduce import ReproductionError, load_record
    from nlpflow.release.lineage import load_lineage

    tracker = Tracker(Settings(project_dir=tmp_path))
    run_id = tracker.start_run("runs", run_name=None, tags={})
    version = _version(tracker, "lin", run_id=run_id)
    assert tracker.run_status(run_id) == "RUNNING"
    assert tracker.run_status("0" * 32) is None  # not in this store
    with pytest.raises(ReproductionError, match=r"no run '0+'"):
        load_record(tracker, "0" * 32)
    with pytest.raises(RegistryError, match="has no version 9"):
        load_lineage(tracker, "lin", 9)
    assert load_lineage(tracker, "lin", version).run is not None
    _break(tmp_path, "runs")
    with pytest.raises(RegistryUnavailableError, match="reading the open run"):
        tracker.run_status(run_id)
    with pytest.raises(RegistryUnavailableError, match=f"reading run {run_id}"):
        load_record(tracker, run_id)
    with pytest.raises(RegistryUnavailableError, match=f"reading run {run_id}"):
        load_lineage(tracker, "lin", version)


def test_opening_a_tracker_sends_the_statuses_kept_while_the_server_was_away(
    tmp_path: Path,
) -> None:
    from nlpflow.tracking.markers import PENDING, load_pending, save_pending

    settings = Settings(project_dir=tmp_path)
    first = Tracker(settings)
    open_run, ended = (first.start_run("pending", run_name=None, tags={}) for _ in range(2))
    first.end_run(ended, "FINISHED")
    for run_id in (open_run, ended, "0" * 32):  # the last one: not in this store
        save_pending(tmp_path, uri=first.uri, run_id=run_id, status="FAILED")
    save_pending(tmp_path, uri="http://elsewhere:5000", run_id="1" * 32, status="FAILED")
    later = Tracker(settings)
    assert len(load_pending(tmp_path)) == 4  # building a Tracker sends nothing
    later.open()
    assert later.run_status(open_run) == "FAILED"
    assert later.run_status(ended) == "FINISHED"  # someone already ended it: kept as it was
    assert [p["uri"] for p in load_pending(tmp_path)] == ["http://elsewhere:5000"]
    assert (tmp_path / PENDING).exists()
