"""A SQL source gathered in chunks (runtime.chunk_rows): the query's rows fetched through a
server-side cursor, a chunk at a time, into a snapshot of Parquet parts; the same splits as
gathering it whole. Against the local PostgreSQL (database `test`), a table of its own.

    .venv/bin/python -m pytest tests/integration/test_sql_streaming.py -q
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

from nlpflow.config.params import parse_params
from nlpflow.config.settings import Settings
from nlpflow.pipeline.runs import make_context
from nlpflow.pipeline.stages import run_stage
from tests.conftest import PG_URL

ROWS, CHUNK = 2_000, 100  # the table is 20 chunks long


@pytest.fixture
def table(pg_engine: Any) -> Iterator[str]:
    import sqlalchemy as sa

    name = f"tickets_stream_{uuid.uuid4().hex[:8]}"
    labels = ("billing", "shipping", "refund")
    frame = pd.DataFrame(
        {
            "id": range(ROWS),
            "body": [f"ticket {i} about {labels[i % 3]}, order {i * 7 % 97}" for i in range(ROWS)],
            "category": [labels[i % 3] if i % 50 else None for i in range(ROWS)],
        }
    )
    frame.loc[1901, "body"] = frame.loc[3, "body"]  # a repeat 19 chunks later
    frame.to_sql(name, pg_engine, index=False)
    yield name
    with pg_engine.begin() as connection:
        connection.execute(sa.text(f'DROP TABLE "{name}"'))


def _gather(root: Path, table: str, runtime: dict[str, Any] | None) -> dict[str, Any]:
    tree: dict[str, Any] = {"data": {
        "source": PG_URL, "text_column": "body", "label_column": "category",
        "query": f'SELECT body, category FROM "{table}" ORDER BY id', "dedupe": "exact",
    }}  # fmt: skip
    if runtime is not None:
        tree["runtime"] = runtime
    ctx = make_context(root, parse_params(tree), Settings(project_dir=root), tracked=False)
    run_stage("gather", ctx)
    return json.loads((root / "data/gathered/manifest.json").read_text())


def test_a_query_streamed_in_chunks_gives_the_same_splits(
    table: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[dict[str, Any]] = []
    read = pd.read_sql_query

    def spy(sql: Any, con: Any, **kwargs: Any) -> Any:  # records how the query was read
        streams = con.get_execution_options().get("stream_results")
        asked.append({"chunksize": kwargs.get("chunksize"), "stream_results": streams})
        return read(sql, con, **kwargs)

    monkeypatch.setattr(pd, "read_sql_query", spy)
    whole = _gather(tmp_path / "whole", table, None)
    chunked = _gather(tmp_path / "chunked", table, {"chunk_rows": CHUNK})
    assert asked == [
        {"chunksize": None, "stream_results": None},
        {"chunksize": CHUNK, "stream_results": True},  # PostgreSQL: a named (server) cursor
    ]
    for split in ("train", "validation", "test"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(tmp_path / "chunked" / f"data/gathered/{split}.parquet"),
            pd.read_parquet(tmp_path / "whole" / f"data/gathered/{split}.parquet"),
        )
    for key in ("rows", "labels", "duplicates_dropped", "format"):
        assert chunked[key] == whole[key], key
    assert whole["duplicates_dropped"] == 1 and whole["labels"]["<missing>"] == 40
    parts = sorted((tmp_path / "chunked" / ".nlpflow/cache/sql/snapshot").glob("*.parquet"))
    assert len(parts) == ROWS // CHUNK  # fetched and written a chunk at a time
    assert {pq.ParquetFile(p).metadata.num_rows for p in parts} == {CHUNK}
    assert chunked["streamed"]["chunks"] >= ROWS // CHUNK
