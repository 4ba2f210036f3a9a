"""preprocess chunk by chunk (runtime.chunk_rows / max_memory_mb) writes what preprocess in
memory writes, and never holds a whole split: chunks of at most chunk_rows rows are read, and
each becomes a row group of the output as it is cleaned.

    .venv/bin/python -m pytest tests/data/test_streaming_preprocess.py -q

Real spaCy cleaning of the bundled sample (726 tickets) plus texts that clean to nothing, in
one process and in a pool of two spawned workers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

import nlpflow.data.preprocess as preprocess_module
import nlpflow.data.streaming.preprocess as streaming
from nlpflow.config.params import PreprocessParams, RuntimeParams
from nlpflow.data.preprocess import preprocess

REPO = Path(__file__).resolve().parents[2]
CHUNK = 100
SWITCHES = PreprocessParams(lowercase=True, lemmatize=True, remove_stopwords=True,
                            remove_punctuation=True, batch_size=16)  # fmt: skip


@pytest.fixture(scope="module")
def gathered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sample = pd.read_csv(REPO / "data/sample/support_tickets.csv", dtype=str)
    sample.loc[5, "text"] = "https://example.com/x"  # both clean to "": counted as emptied
    sample.loc[400, "text"] = "the and of"
    sample["source_row"] = range(len(sample))
    folder = tmp_path_factory.mktemp("gathered")
    cut = {"train": (0, 500), "validation": (500, 560), "test": (560, None)}
    for split, (lo, hi) in cut.items():
        part = sample.iloc[lo:hi]
        part.reset_index(drop=True).to_parquet(folder / f"{split}.parquet", index=False)
    return folder


def _frames(folder: Path) -> dict[str, pd.DataFrame]:
    return {s: pd.read_parquet(folder / f"{s}.parquet") for s in ("train", "validation", "test")}


def _assert_same(a: Path, b: Path) -> None:
    for split, frame in _frames(a).items():
        pd.testing.assert_frame_equal(_frames(b)[split], frame)


@pytest.fixture(scope="module")
def whole(gathered: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    dst = tmp_path_factory.mktemp("whole")
    return dst, preprocess(src=gathered, dst=dst, params=SWITCHES)


def test_streamed_output_equals_the_in_memory_output(
    gathered: Path, whole: tuple[Path, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    read = streaming.iter_frames

    def spy(path: Path, rows: int, columns: list[str] | None = None) -> Any:
        for frame in read(path, rows, columns):
            seen.append(len(frame))
            yield frame

    def no_whole_file(*args: object, **kwargs: object) -> None:
        raise AssertionError("the streaming path read a whole split")

    monkeypatch.setattr(streaming, "iter_frames", spy)
    monkeypatch.setattr(pd, "read_parquet", no_whole_file)
    runtime = RuntimeParams(chunk_rows=CHUNK)
    report = preprocess(src=gathered, dst=tmp_path, params=SWITCHES, runtime=runtime)
    monkeypatch.undo()
    dst, expected = whole
    _assert_same(dst, tmp_path)
    # every row read, never more than a chunk at once
    assert max(seen) == CHUNK and sum(seen) == 726
    assert pq.ParquetFile(tmp_path / "train.parquet").metadata.num_row_groups == 5  # 500 rows
    assert report.rows == expected.rows
    assert report.emptied == expected.emptied == 2  # the URL, the stop words
    assert report.streamed == {"rows_per_chunk": CHUNK, "chunks": 5 + 1 + 2, "n_process": 1}
    assert expected.streamed is None


def test_a_pool_of_workers_writes_the_same_output(
    gathered: Path, whole: tuple[Path, Any], tmp_path: Path
) -> None:
    params = SWITCHES.model_copy(update={"n_process": 2})
    runtime = RuntimeParams(chunk_rows=CHUNK)
    report = preprocess(src=gathered, dst=tmp_path, params=params, runtime=runtime)
    _assert_same(whole[0], tmp_path)
    assert report.streamed is not None and report.streamed["n_process"] == 2


def test_a_cleaner_started_afresh_cleans_the_same(
    gathered: Path, whole: tuple[Path, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A long stream renews the TextPreprocessor when spaCy's vocabulary grows past VOCAB_LIMIT
    # (memory); here after every batch, and the output must not change.
    started: list[int] = []
    original = preprocess_module.TextPreprocessor.__init__

    def counting(self: Any, params: PreprocessParams) -> None:
        started.append(1)
        original(self, params)

    monkeypatch.setattr(preprocess_module, "VOCAB_LIMIT", 10)
    monkeypatch.setattr(preprocess_module.TextPreprocessor, "__init__", counting)
    params = SWITCHES.model_copy(update={"batch_size": 100})
    preprocess(src=gathered, dst=tmp_path, params=params, runtime=RuntimeParams(chunk_rows=CHUNK))
    _assert_same(whole[0], tmp_path)
    assert len(started) == 1 + 8  # the first, and one after each batch of 100 (5 + 1 + 2)


def test_kept_text_streams_too(gathered: Path, tmp_path: Path) -> None:
    preprocess(src=gathered, dst=tmp_path / "whole", params=SWITCHES, keep_text=True)
    report = preprocess(
        src=gathered, dst=tmp_path / "chunked", params=SWITCHES, keep_text=True,
        runtime=RuntimeParams(chunk_rows=CHUNK),
    )  # fmt: skip
    _assert_same(tmp_path / "whole", tmp_path / "chunked")
    assert report.kept_as_written and report.streamed is not None
