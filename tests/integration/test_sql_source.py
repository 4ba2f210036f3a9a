"""A SQL source against the local PostgreSQL (database `test`), with its own table per test."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from nlpflow.config.params import parse_params
from nlpflow.config.settings import Settings
from nlpflow.data.sources import read_sql
from nlpflow.errors import DataSourceError, SourceUnavailableError
from nlpflow.pipeline.runs import make_context
from nlpflow.pipeline.stages import run_stage
from tests.conftest import PG_URL


@pytest.fixture
def table(pg_engine) -> Iterator[str]:
    import sqlalchemy as sa

    engine = pg_engine
    name = f"tickets_{uuid.uuid4().hex[:8]}"
    rows = [
        {
            "body": f"parcel {i} is late",
            "category": "shipping",
            "created_at": f"2026-11-{1 + i:02d}T10:00:00",
        }
        for i in range(20)
    ] + [
        {
            "body": f"refund order {i}",
            "category": "billing",
            "created_at": f"2026-11-{1 + i:02d}T11:00:00",
        }
        for i in range(20)
    ]
    frame = pd.DataFrame(rows).assign(created_at=lambda f: pd.to_datetime(f["created_at"]))
    frame.to_sql(name, engine, index=False)
    yield name
    with engine.begin() as connection:
        connection.execute(sa.text(f'DROP TABLE "{name}"'))


def _gather(tmp_path: Path, **data: object) -> dict:
    params = parse_params(
        {"data": {"source": PG_URL, "text_column": "body", "label_column": "category", **data}}
    )
    ctx = make_context(tmp_path, params, Settings(project_dir=tmp_path), tracked=False)
    run_stage("gather", ctx)
    return json.loads((tmp_path / "data/gathered/manifest.json").read_text())


def test_cutoff_gathers_only_rows_up_to_it_and_replays_identically(
    table: str, tmp_path: Path
) -> None:
    query = f'SELECT body, category, created_at FROM "{table}"'
    first = _gather(
        tmp_path / "a", query=query, timestamp_column="created_at", cutoff="2026-11-10T10:30:00"
    )
    # days 1..10 of shipping (10:00) and days 1..9 of billing (11:00, day 10 is after 10:30)
    assert first["labels"] == {"billing": 9, "shipping": 10}
    assert first["params"]["cutoff"] == "2026-11-10T10:30:00"
    again = _gather(
        tmp_path / "b", query=query, timestamp_column="created_at", cutoff="2026-11-10T10:30:00"
    )
    assert again["source_sha256"] == first["source_sha256"]


def test_no_cutoff_means_now_and_is_recorded(table: str, tmp_path: Path) -> None:
    manifest = _gather(tmp_path, query=f'SELECT * FROM "{table}"', timestamp_column="created_at")
    assert sum(manifest["labels"].values()) == 40
    assert manifest["params"]["cutoff"] >= "2026-11-29"  # the run's own time, recorded


def test_sql_errors_are_clear(table: str, tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match=r"set data\.query"):
        _gather(tmp_path)
    with pytest.raises(DataSourceError, match=r'data\.query failed.*"no_such_table"'):
        _gather(tmp_path, query='SELECT * FROM "no_such_table"')
    with pytest.raises(DataSourceError, match="returned no rows"):
        _gather(
            tmp_path,
            query=f'SELECT * FROM "{table}"',
            timestamp_column="created_at",
            cutoff="2000-01-01T00:00:00",
        )
    with pytest.raises(SourceUnavailableError) as down:
        read_sql(
            "postgresql+psycopg://postgres@127.0.0.1:1/test",
            query="SELECT 1",
            timestamp_column=None,
            cutoff=None,
        )
    assert down.value.retryable is True
