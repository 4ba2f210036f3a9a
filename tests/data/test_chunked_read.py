"""Batch inference reads its input in chunks (nlpflow.serving.batch.read.iter_chunks): a large
file streamed, a small one read whole and cut, both with the same rows and values as the
whole-file reader, for every format and compression; ids repeated across chunks are found from
their hashes."""

from __future__ import annotations

import bz2
import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nlpflow.config.params import DataParams
import nlpflow.serving.batch.read as read
from nlpflow.serving.batch import plan_inference
from nlpflow.data.reading import plain_name, read_table
from nlpflow.errors import DataSourceError
from nlpflow.serving.batch.checks import id_hashes, repeated_ids

TEXTS = [
    "plain text",
    'a "quoted" word, and a comma',
    "two\nlines",
    "ünïcödé ✓",
    "",  # an empty field is missing, as read_table reads it
    "007",  # stays a string
]


def _frame() -> pd.DataFrame:
    rows = [(str(i), TEXTS[i % len(TEXTS)]) for i in range(23)]
    return pd.DataFrame(rows, columns=["id", "text"])


def _write(frame: pd.DataFrame, path: Path) -> None:
    name = plain_name(path).suffix
    if name == ".parquet":
        frame.to_parquet(path, index=False, row_group_size=5)
        return
    if name == ".jsonl":
        data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in frame.to_dict("records"))
    else:
        data = frame.to_csv(index=False, sep="\t" if name == ".tsv" else ",")
    raw = data.encode()
    if path.suffix == ".gz":
        raw = gzip.compress(raw)
    elif path.suffix == ".bz2":
        raw = bz2.compress(raw)
    elif path.suffix == ".zst":
        import zstandard

        raw = zstandard.ZstdCompressor().compress(raw)
    path.write_bytes(raw)


def _chunks(path: Path, *, rows: int, whole_below: int) -> list[pd.DataFrame]:
    from nlpflow.config.params import parse_params
    from nlpflow.config.settings import Settings

    params = parse_params({"inference": {"source": str(path), "output": str(path) + ".out.csv"}})
    plan = plan_inference(params, Settings(project_dir=path.parent))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(read, "WHOLE_BELOW_BYTES", whole_below)
        return list(read.iter_chunks(plan, rows=rows))


@pytest.mark.parametrize(
    "name", ["t.csv", "t.csv.gz", "t.csv.bz2", "t.jsonl", "t.jsonl.zst", "t.parquet"]
)
def test_streamed_chunks_equal_the_whole_file(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    frame = _frame()
    if name.startswith("t.jsonl"):
        frame.loc[frame["text"] == "", "text"] = None  # JSON writes null, not ""
    _write(frame, path)
    fmt = plain_name(path).suffix.lstrip(".")
    whole = read_table(path, fmt, DataParams())
    chunks = list(_chunks(path, rows=4, whole_below=0))
    assert [len(c) for c in chunks] == [4, 4, 4, 4, 4, 3]
    streamed = pd.concat(chunks, ignore_index=True)
    pd.testing.assert_frame_equal(streamed.astype(object), whole.astype(object))
    assert streamed["id"].tolist()[:3] == ["0", "1", "2"] or name.endswith("parquet")
    # the same as a small file read whole and cut
    cut = pd.concat(_chunks(path, rows=4, whole_below=1 << 30), ignore_index=True)
    pd.testing.assert_frame_equal(cut.astype(object), whole.astype(object))


def test_bad_bytes_in_a_streamed_file_name_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(b"id,text\n1,caf\xe9\n")
    with pytest.raises(DataSourceError, match="not valid UTF-8.*iconv"):
        list(_chunks(path, rows=10, whole_below=0))
    lines = tmp_path / "bad.jsonl"
    lines.write_text('{"text": "fine"}\n{"text": \n')
    with pytest.raises(DataSourceError, match="line 2 is not valid JSON"):
        list(_chunks(lines, rows=10, whole_below=0))


def test_ids_repeated_across_chunks_are_found_by_hash() -> None:
    chunks = [pd.Series([1, 2, 3]), pd.Series(["4", None, "2"]), pd.Series([5, 5, 6])]
    repeated = repeated_ids([id_hashes(c) for c in chunks])
    assert len(repeated) == 2  # 2 (as 2 and "2": ids compare as text) and 5; None is no id
    found = [np.isin(id_hashes(c), repeated).tolist() for c in chunks]
    assert found == [[False, True, False], [False, True], [True, True, False]]
    assert repeated_ids([]).size == 0
