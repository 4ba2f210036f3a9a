"""gather in chunks (runtime.chunk_rows / max_memory_mb) writes what gather in memory writes:
the same rows, in the same splits and order, and the same manifest, for every local layout;
and it never holds more than a chunk of the source.

    .venv/bin/python -m pytest tests/data/test_streaming_gather.py -q

The contract: streaming changes how much is read at a time, never which rows go where. The
seeded stratified split is reproduced exactly from per-row hashes and label codes, so changing
runtime.max_memory_mb re-splits nothing. Each case plants what crosses chunks: repeats (exact
and up to case), a test text repeated in train, missing texts and labels.
"""

from __future__ import annotations

import gzip
import json
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import nlpflow.data.streaming.gather as streaming
from nlpflow.config.params import DataParams, RuntimeParams
from nlpflow.data.gather import gather
from nlpflow.errors import DataSourceError

CHUNK = 16
SPLITS = ("train", "validation", "test")
LABELS = ("billing", "shipping", "refund", "account")


def tickets(n: int, *, seed: int = 3) -> pd.DataFrame:
    """n tickets with repeats far apart, a near repeat, a missing text and a missing label."""
    rng = np.random.default_rng(seed)
    words = ["parcel", "late", "invoice", "charged", "twice", "card", "box", "address", "login"]
    text = [f"{' '.join(rng.choice(words, 5))} {i}" for i in range(n)]
    label = [LABELS[int(i)] for i in rng.integers(0, len(LABELS), n)]
    frame = pd.DataFrame({"text": text, "label": label}, dtype=object)
    frame.loc[n - 5, "text"] = frame.loc[2, "text"]  # a repeat, many chunks after its first
    frame.loc[n - 9, "text"] = frame.loc[7, "text"].upper() + "!"  # a repeat up to case
    frame.loc[11, "text"] = None
    frame.loc[13, "label"] = None
    return frame


def write_csv(folder: Path, frame: pd.DataFrame, name: str = "tickets.csv") -> Path:
    path = folder / name
    frame.to_csv(path, index=False)
    return path


def _split_source(folder: Path) -> Path:
    frame = tickets(300).assign(split=["train"] * 220 + ["test"] * 80)
    frame.loc[250, "text"] = frame.loc[30, "text"]  # a test text in train: drop_from_train
    frame.loc[260, "text"] = frame.loc[40, "text"].title()
    return write_csv(folder, frame)


def _jsonl(folder: Path) -> Path:
    records = tickets(200).to_dict("records")
    for record in records[:40]:  # two chunks without the label key: NaN, as pandas gives it
        del record["label"]
    path = folder / "tickets.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    return path


def _excel_gz(folder: Path) -> Path:
    path = folder / "tickets.csv.gz"
    body = tickets(150).to_csv(index=False, sep=";")
    path.write_bytes(gzip.compress(("sep=;\r\n" + body).encode()))
    return path


def _labelled_lines(folder: Path) -> Path:
    frame = tickets(200).dropna()
    pairs = zip(frame["text"], frame["label"], strict=True)
    lines = [f"{label.upper()}:x {text}" for text, label in pairs]
    path = folder / "questions.label"
    path.write_text("\n\n".join(lines[:50]) + "\r\n" + "\r\n".join(lines[50:]), encoding="utf-8")
    return path


def _label_files(folder: Path) -> Path:
    root = folder / "polarity"
    root.mkdir()
    frame = tickets(200).dropna()
    for suffix, label in (("pos", "billing"), ("neg", "shipping")):
        texts = frame.loc[frame["label"] != label, "text"].tolist()
        (root / f"rt.{suffix}").write_text("\n".join(texts[:70]) + "\n\n" + "\n".join(texts[70:]))
    return root


def _glob(folder: Path) -> Path:
    root = folder / "drops"
    root.mkdir()
    frame = tickets(240)
    for i in range(3):
        write_csv(root, frame.iloc[80 * i : 80 * (i + 1)], f"day{i}.csv")
    return root / "*.csv"


def _split_folder(folder: Path) -> Path:
    root = folder / "splits"
    root.mkdir()
    frame = tickets(260)
    frame.iloc[:200].to_json(root / "train.jsonl", orient="records", lines=True)
    frame.iloc[200:].to_json(root / "test.jsonl", orient="records", lines=True)
    return root


def _parquet_with_time(folder: Path) -> Path:
    path = folder / "notes.parquet"
    frame = tickets(180).drop(columns="label").assign(year=[2000 + i % 20 for i in range(180)])
    frame.to_parquet(path, index=False, row_group_size=50)
    return path


# name -> (make the source, data params, task)
CASES: dict[str, tuple[Callable[[Path], Path], dict[str, Any], str]] = {
    "csv": (lambda f: write_csv(f, tickets(400)), {"dedupe": "normalized"}, "text-classification"),
    "csv_exact_ungrouped": (
        lambda f: write_csv(f, tickets(400)),
        {"dedupe": "exact", "split": {"group_duplicates": False, "seed": 5}},
        "text-classification",
    ),
    "csv_label_map": (
        lambda f: write_csv(f, tickets(300)),
        {"label_map": {"refund": "billing"}, "label_pattern": "^(\\w+)"},
        "text-classification",
    ),
    "source_splits": (_split_source, {"test_overlap": "drop_from_train"}, "text-classification"),
    "jsonl": (_jsonl, {}, "text-classification"),
    "excel_gz": (_excel_gz, {"dedupe": "exact"}, "text-classification"),
    "labelled_lines": (
        _labelled_lines, {"format": "labelled_lines", "label_pattern": "^([A-Z]+):"},
        "text-classification",
    ),
    "label_files": (_label_files, {"format": "folder"}, "text-classification"),
    "glob": (_glob, {}, "text-classification"),
    "split_folder": (_split_folder, {"split": {"validation": 0.2}}, "text-classification"),
    "parquet_topics": (
        _parquet_with_time, {"label_column": None, "time_column": "year"}, "topic-modeling",
    ),
}  # fmt: skip


def _gather_both(
    folder: Path, make: Callable[[Path], Path], data: dict[str, Any], task: str
) -> tuple[Any, Any]:
    source = make(folder)
    params = DataParams(**data)
    whole = gather(source=source, dst=folder / "whole", params=params, task=task)
    runtime = RuntimeParams(chunk_rows=CHUNK)
    chunked = gather(
        source=source, dst=folder / "chunked", params=params, task=task, runtime=runtime
    )
    return whole, chunked


@pytest.mark.parametrize("case", list(CASES))
def test_chunked_gather_writes_the_same_splits_and_manifest(case: str, tmp_path: Path) -> None:
    whole, chunked = _gather_both(tmp_path, *CASES[case])
    for split in SPLITS:
        expected = pd.read_parquet(tmp_path / "whole" / f"{split}.parquet")
        got = pd.read_parquet(tmp_path / "chunked" / f"{split}.parquet")
        pd.testing.assert_frame_equal(got, expected)
        assert pq.ParquetFile(tmp_path / "chunked" / f"{split}.parquet").metadata.num_row_groups > 1
    assert whole.streamed is None and chunked.streamed["rows_per_chunk"] == CHUNK
    assert chunked.model_dump(exclude={"streamed"}) == whole.model_dump(exclude={"streamed"})
    manifest = json.loads((tmp_path / "chunked" / "manifest.json").read_text())
    assert manifest["streamed"]["chunks"] > 5


def test_the_planted_repeats_and_leaks_were_dropped_across_chunks(tmp_path: Path) -> None:
    whole, chunked = _gather_both(tmp_path, *CASES["source_splits"])
    # rows 30 and 40 planted here, and tickets()'s repeats of rows 2 and 7 (now test rows)
    assert chunked.test_overlap_dropped == whole.test_overlap_dropped == 4
    (tmp_path / "n").mkdir()
    whole, chunked = _gather_both(tmp_path / "n", *CASES["csv"])
    assert chunked.duplicates_dropped == whole.duplicates_dropped == 2  # exact and up to case


def test_source_errors_read_the_same_in_chunks(tmp_path: Path) -> None:
    bad = {
        "empty.csv": b"  \n",
        "nul.csv": b"text,label\nfine,a\nbro\x00ken,b\n",
        "latin1.csv": b"text,label\nfine,a\n" * 3000 + "caf\xe9,b\n".encode("latin-1"),
        "header.csv": b"text,label\n",
        "bad.jsonl": b'{"text": "a", "label": "x"}\n{"text": \n',
        "nolabel.jsonl": b'{"text": "a"}\n{"text": "b"}\n',
    }
    for name, content in bad.items():
        path = tmp_path / name
        path.write_bytes(content)
        messages = []
        for runtime in (None, RuntimeParams(chunk_rows=CHUNK)):
            with pytest.raises(DataSourceError) as info:
                gather(source=path, dst=tmp_path / "out", params=DataParams(), runtime=runtime)
            messages.append(str(info.value))
        assert messages[0] == messages[1], name


def test_no_more_than_a_chunk_is_held_of_a_source_twenty_chunks_long(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows, chunk = 20_000, 1_000
    source = write_csv(tmp_path, tickets(rows).assign(text=lambda f: f["text"] + " " + "x" * 200))
    seen: list[int] = []
    read = streaming.iter_parts

    def spy(*args: Any, **kwargs: Any) -> Any:
        for part, frame in read(*args, **kwargs):
            seen.append(len(frame))
            yield part, frame

    monkeypatch.setattr(streaming, "iter_parts", spy)

    def peak(runtime: RuntimeParams | None, dst: str) -> int:
        tracemalloc.start()
        gather(source=source, dst=tmp_path / dst, params=DataParams(), runtime=runtime)
        top = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return top

    whole = peak(None, "whole")
    chunked = peak(RuntimeParams(chunk_rows=chunk), "chunked")
    assert max(seen) == chunk and sum(seen) == 2 * rows  # two passes, a chunk at a time
    # generous: the chunked peak is a fraction of the whole file's (measured 2.5 MB against
    # 29.9 MB: the per-row arrays and a chunk, against every row's Python strings)
    assert chunked < whole / 3, (chunked, whole)
    for split in SPLITS:
        meta = pq.ParquetFile(tmp_path / "chunked" / f"{split}.parquet").metadata
        assert max(meta.row_group(i).num_rows for i in range(meta.num_row_groups)) <= chunk
