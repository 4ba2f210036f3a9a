"""preprocess, chunk by chunk: no split is ever held whole (runtime.max_memory_mb).

    out = preprocess_chunks(src, dst, rows=50_000, batch_size=512,
                            cleaning=partial(cleaning_stream, PreprocessParams()))

Each split is read `rows` rows at a time (pyarrow, page by page), its texts go to the cleaning
workers in batches of preprocess.batch_size (at most two a worker in flight:
nlpflow.data.preprocess.cleaning_stream), and each chunk is written as one row group of the
output as soon as its texts are back. The reader runs ahead of the writer by one chunk, so the
workers never wait for a chunk to be written; memory holds about two chunks, the workers'
batches and the workers themselves. The frame written is the in-memory path's, chunk by chunk:
`frame.assign(raw_text=frame["text"], text=cleaned)` (tests/data/test_streaming_preprocess.py).

Workers: preprocess.n_process, not NLPFLOW_WORKERS. The engine setting says where a run's
parallel work goes (a Dask or Ray cluster, for batch scoring and sweeps); cleaning needs the
same spaCy vocabulary and lemma tables in each worker and pays off only above a size and
with mask_entities on 2 cores (bench/preprocess.py), so its worker count stays a knob of the
stage that is measured per stage, and the processes stay on this machine, beside the files.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nlpflow.config.params import PreprocessParams, RuntimeParams
from nlpflow.data.splits import SPLITS
from nlpflow.data.streaming import RowCost, plan_chunks
from nlpflow.data.streaming.parquet import ParquetSink, bytes_per_row, iter_frames, parquet_rows

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

# Measured (bench/scale_data.py): a chunk takes about 6x its Parquet bytes plus ~400 bytes a row
# (the frame, the list of texts, the cleaned list), twice over (read ahead). A spawned worker:
# 166 MB with spaCy's blank pipeline (torch kept out: nlpflow.data.preprocess._start_worker),
# up to ~50 MB more of vocabulary (VOCAB_LIMIT), and its share of the libraries both map,
# counted twice in the sum of RSS (1,007 MB of a 1,024 MB budget with 250 here, 1M rows).
# With mask_entities: torch and the NER model too.
PREPROCESS_COST = RowCost(factor=12.0, fixed=800, state=0)
WORKER_MB = 300
NER_WORKER_MB = 700


def chunk_rows(
    paths: dict[str, Path], runtime: RuntimeParams | None, params: PreprocessParams
) -> int | None:
    """Rows per chunk, or None for the in-memory path (nlpflow.data.streaming.plan_chunks)."""
    plan = plan_chunks(
        parent_budget(runtime, params), stage="preprocess",
        rows=sum(parquet_rows(p) for p in paths.values()),
        bytes_per_row=bytes_per_row(paths.values()), cost=PREPROCESS_COST,
    )  # fmt: skip
    return None if plan is None else plan.rows


def parent_budget(runtime: RuntimeParams | None, params: PreprocessParams) -> RuntimeParams | None:
    """The budget left to this process once the cleaning workers' own memory is paid for."""
    workers = params.n_process if params.n_process > 1 else 0
    if runtime is None or runtime.max_memory_mb is None or not workers:
        return runtime
    each = NER_WORKER_MB if params.mask_entities else WORKER_MB
    # below the section's bound on purpose: plan_chunks then says what the budget lacks
    left = max(runtime.max_memory_mb - workers * each, 1)
    return runtime.model_copy(update={"max_memory_mb": left})


def output_schema(schema: pa.Schema, *, keep_text: bool) -> pa.Schema:
    """The input's columns, `text` cleaned (a string), then `raw_text`: the input's text."""
    import pyarrow as pa

    text = schema.field("text")
    cleaned = text if keep_text else pa.field("text", pa.string())
    fields = [cleaned if f.name == "text" else f for f in schema]
    return pa.schema([*fields, text.with_name("raw_text")])


def _with_cleaned(
    frames: Iterator[tuple[str, pd.DataFrame]],
    clean: Callable[[Iterable[list[str]]], Iterator[list[str]]],
    size: int,
) -> Iterator[tuple[str, pd.DataFrame, list[str]]]:
    """Each frame with its cleaned texts, in order; texts go to `clean` in batches of `size`
    while later frames are read."""
    waiting: deque[tuple[str, pd.DataFrame, int]] = deque()

    def batches() -> Iterator[list[str]]:
        for split, frame in frames:
            texts = frame["text"].astype(str).tolist()  # as the in-memory path
            waiting.append((split, frame, len(texts)))
            for i in range(0, len(texts), size):
                yield texts[i : i + size]

    done: list[str] = []
    for part in clean(batches()):
        done += part
        while waiting and len(done) >= waiting[0][2]:
            split, frame, count = waiting.popleft()
            yield split, frame, done[:count]
            done = done[count:]
    for split, frame, _ in waiting:  # frames without rows, read after the last text
        yield split, frame, []


Cleaner = Callable[[Iterable[list[str]]], Iterator[list[str]]]


@dataclass
class Cleaned:
    """What preprocess_chunks wrote: rows per split, texts cleaned to nothing, chunks."""

    rows: dict[str, int]
    emptied: int
    chunks: int


def preprocess_chunks(
    src: Path,
    dst: Path,
    *,
    rows: int,
    batch_size: int,
    cleaning: Callable[[], AbstractContextManager[Cleaner]] | None,
) -> Cleaned:
    """preprocess's output, `rows` rows at a time (the module's docstring says how);
    `cleaning` opens nlpflow.data.preprocess.cleaning_stream, None keeps the text as written."""
    import pyarrow.parquet as pq

    emptied, chunks = 0, 0
    dst.mkdir(parents=True, exist_ok=True)
    paths = {split: src / f"{split}.parquet" for split in SPLITS}
    frames = ((s, f) for s, p in paths.items() for f in iter_frames(p, rows))
    with ExitStack() as stack:
        sinks = {}
        for split, path in paths.items():
            schema = output_schema(pq.read_schema(path), keep_text=cleaning is None)
            sinks[split] = stack.enter_context(ParquetSink(dst / f"{split}.parquet", schema))
        if cleaning is None:
            for split, frame in frames:
                sinks[split].write_frame(frame.assign(raw_text=frame["text"]))
                chunks += 1
        else:
            clean = stack.enter_context(cleaning())
            for split, frame, cleaned in _with_cleaned(frames, clean, batch_size):
                emptied += sum(1 for t in cleaned if not t)
                sinks[split].write_frame(frame.assign(raw_text=frame["text"], text=cleaned))
                chunks += 1
    return Cleaned({split: sink.rows for split, sink in sinks.items()}, emptied, chunks)
