"""runtime.max_memory_mb -> rows per chunk (nlpflow.data.streaming.plan_chunks): what a chunk
is left once the process and the data-wide state are paid for, and the refusal of a budget
too small to hold them.

    .venv/bin/python -m pytest tests/unit/test_streaming_budget.py -q
"""

from __future__ import annotations

import pytest

from nlpflow.config.params import PreprocessParams, RuntimeParams, parse_params
from nlpflow.data.streaming import MB, RowCost, plan_chunks, rss_mb
from nlpflow.errors import ParamsError

COST = RowCost(factor=10.0, fixed=500, state=64)
ROWS, BYTES = 1_000_000, 120.0  # a million rows of ~120 bytes in Parquet


def _plan(runtime: RuntimeParams | None, rows: int = ROWS) -> int | None:
    plan = plan_chunks(runtime, stage="validate", rows=rows, bytes_per_row=BYTES, cost=COST)
    return None if plan is None else plan.rows


def test_no_limit_and_data_that_fits_is_the_in_memory_path() -> None:
    assert _plan(None, rows=10_000) is None
    assert _plan(RuntimeParams(), rows=10_000) is None


def test_chunk_rows_is_taken_as_given() -> None:
    assert _plan(RuntimeParams(chunk_rows=777)) == 777


def test_a_budget_leaves_each_chunk_what_process_and_state_do_not_take() -> None:
    budget = int(rss_mb()) + 300
    rows = _plan(RuntimeParams(max_memory_mb=budget))
    assert rows is not None
    state_mb = ROWS * COST.state / MB  # 61 MB of hashes and counts for a million rows
    chunk_mb = COST.chunk_bytes(rows, BYTES) / MB
    assert rss_mb() + state_mb + chunk_mb <= budget + 1
    assert chunk_mb > 200  # most of what is left goes to the chunk
    bigger = _plan(RuntimeParams(max_memory_mb=budget + 500))
    assert bigger is not None and bigger > rows


def test_a_budget_below_what_the_process_holds_is_refused_with_the_least_that_works() -> None:
    with pytest.raises(ParamsError, match=r"runtime\.max_memory_mb=256 is too small") as info:
        _plan(RuntimeParams(max_memory_mb=256), rows=20_000_000)
    least = int(str(info.value).rsplit("at least ", 1)[1].rstrip("."))
    assert _plan(RuntimeParams(max_memory_mb=least + 1), rows=20_000_000) is not None


def test_preprocess_workers_come_out_of_the_budget() -> None:
    from nlpflow.data.streaming.preprocess import WORKER_MB, parent_budget

    budget = RuntimeParams(max_memory_mb=2000)
    assert parent_budget(budget, PreprocessParams(n_process=1)) == budget
    left = parent_budget(budget, PreprocessParams(n_process=3))
    assert left is not None and left.max_memory_mb == 2000 - 3 * WORKER_MB
    assert parent_budget(None, PreprocessParams(n_process=3)) is None


def test_runtime_section_is_checked_and_documented() -> None:
    params = parse_params({"runtime": {"max_memory_mb": 2048}})
    assert params.runtime.max_memory_mb == 2048 and params.runtime.streaming
    with pytest.raises(ParamsError, match=r"runtime\.max_memory_mb: Input should be greater"):
        parse_params({"runtime": {"max_memory_mb": 100}})
    with pytest.raises(ParamsError, match=r"runtime\.chunk: unknown key"):
        parse_params({"runtime": {"chunk": 5}})
    assert not parse_params({}).runtime.streaming
