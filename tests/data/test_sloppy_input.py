"""Sloppy input files: each gets a message that points at the fix (the right delimiter, the line
a quote opens on, the JSONL line that breaks), compressed files read like plain ones, and a
FIFO or device is refused before anything opens it (reading one blocked gather forever)."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import socket
import threading
from pathlib import Path

import pandas as pd
import pytest
import zstandard

from nlpflow.config.params import DataParams
from nlpflow.data.gather import SPLITS, gather, sniff_delimiter
from nlpflow.data.local_source import load_source
from nlpflow.errors import DataSourceError

ROWS = [(f"my parcel {i}, sent monday, is late", "shipping") for i in range(10)] + [
    (f"refund my card {i}, please", "billing") for i in range(10)
]


def _csv(sep: str = ",") -> str:
    # texts hold commas, so a ';' file read with ',' splits some rows in two
    return f"text{sep}label\n" + "".join(f"{t}{sep}{label}\n" for t, label in ROWS)


def _error(path: Path, **params: object) -> str:
    with pytest.raises(DataSourceError) as info:
        load_source(path, DataParams(**params))
    return str(info.value)


def _write(tmp_path: Path, name: str, data: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def test_semicolon_file_with_commas_in_texts_names_the_delimiter(tmp_path: Path) -> None:
    message = _error(_write(tmp_path, "in.csv", _csv(";")))
    assert "This file looks ';'-separated: set data.delimiter: ';'." in message
    assert "quote texts that contain the delimiter" not in message


@pytest.mark.parametrize(("sep", "name"), [("\t", "in.csv"), ("|", "in.csv"), (";", "in.tsv")])
def test_other_delimiters_are_suggested_too(tmp_path: Path, sep: str, name: str) -> None:
    message = _error(_write(tmp_path, name, _csv(sep).replace(", ", " ")))
    assert f"This file looks {sep!r}-separated: set data.delimiter: {sep!r}." in message


def test_rows_wider_than_the_header_are_an_error_not_an_index(tmp_path: Path) -> None:
    # pandas made the extra leading fields an index: "my parcel 0, sent monday, is late" was
    # read as the text " is late", silently
    message = _error(_write(tmp_path, "in.csv", _csv(",")))
    assert "could not be parsed as csv" in message
    assert "Line 2 has 4 fields, the header 2: quote texts that contain the delimiter." in message


def test_excel_sep_line_is_honoured_and_keeps_line_numbers(tmp_path: Path) -> None:
    frame, fmt = load_source(_write(tmp_path, "in.csv", "sep=;\r\n" + _csv(";")), DataParams())
    assert fmt == "csv"
    assert list(frame["text"]) == [t for t, _ in ROWS]
    assert list(frame["label"]) == [label for _, label in ROWS]
    # a later error still names the file's own line (the sep line counts)
    broken = "sep=;\n" + _csv(";") + "a;b;c;d\n"
    message = _error(_write(tmp_path, "bad.csv", broken))
    assert "Expected 2 fields in line 23, saw 4" in message


def test_unclosed_quote_names_the_line_it_opens_on(tmp_path: Path) -> None:
    lines = _csv().replace(", ", " ").splitlines()
    lines.insert(8, '"a quote that never closes, sent tuesday,shipping')
    lines.insert(4, '"a ""quoted"" text, properly closed",billing')  # "" is a quote, not an end
    message = _error(_write(tmp_path, "in.csv", "\n".join(lines) + "\n"))
    assert "The quote opened on line 10 never closes" in message
    assert "set data.quoting: none" in message


def test_quoting_none_reads_quotes_as_plain_characters(tmp_path: Path) -> None:
    data = 'text\tlabel\n"24" screen is broken\ttechnical\nthe "best\tbilling\n'
    frame, _ = load_source(_write(tmp_path, "in.csv", data), DataParams(delimiter="\t",
                                                                         quoting="none"))  # fmt: skip
    assert list(frame["text"]) == ['"24" screen is broken', 'the "best']


def test_sniff_prefers_the_delimiter_that_splits_every_line_alike() -> None:
    assert sniff_delimiter(_csv(";")) == ";"
    assert sniff_delimiter(_csv("\t")) == "\t"
    assert sniff_delimiter("just one column\nof text\n") is None


def test_broken_jsonl_line_is_named_by_its_line_in_the_file(tmp_path: Path) -> None:
    lines = [json.dumps({"text": t, "label": label}) for t, label in ROWS] * 30
    lines.insert(401, '{"text": "unterminated, "label": "billing"}')
    message = _error(_write(tmp_path, "in.jsonl", "\n".join(lines) + "\n"))
    assert "in.jsonl line 402 is not valid JSON: Expecting ',' delimiter at column" in message


def test_jsonl_line_that_is_not_an_object_is_named(tmp_path: Path) -> None:
    data = json.dumps({"text": "a", "label": "b"}) + "\n\n" + '["a", "b"]\n'
    message = _error(_write(tmp_path, "in.jsonl", data))
    assert "in.jsonl line 3 holds an array, not an object" in message


def test_jsonl_text_holding_a_line_separator_stays_one_row(tmp_path: Path) -> None:
    data = json.dumps({"text": "one\u2028two", "label": "b"}, ensure_ascii=False) + "\n"
    frame, _ = load_source(_write(tmp_path, "in.jsonl", data), DataParams())
    assert list(frame["text"]) == ["one\u2028two"]


def _compress(suffix: str, data: bytes) -> bytes:
    if suffix == ".gz":
        return gzip.compress(data)
    if suffix == ".bz2":
        return bz2.compress(data)
    if suffix == ".xz":
        return lzma.compress(data)
    return zstandard.ZstdCompressor().compress(data)


@pytest.mark.parametrize("suffix", [".gz", ".bz2", ".zst", ".xz"])
@pytest.mark.parametrize("inner", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_compressed_files_read_like_plain_ones(tmp_path: Path, suffix: str, inner: str) -> None:
    table = pd.DataFrame(ROWS, columns=["text", "label"])
    plain = tmp_path / f"plain{inner}"
    if inner == ".parquet":
        table.to_parquet(plain, index=False)
    elif inner == ".jsonl":
        table.to_json(plain, orient="records", lines=True)
    else:
        table.to_csv(plain, sep="\t" if inner == ".tsv" else ",", index=False)
    packed = _write(tmp_path, f"data{inner}{suffix}", _compress(suffix, plain.read_bytes()))
    frame, fmt = load_source(packed, DataParams())
    assert fmt == inner.lstrip(".")
    assert list(frame["text"]) == list(table["text"])
    assert list(frame["label"]) == list(table["label"])


def test_damaged_compressed_file_says_so(tmp_path: Path) -> None:
    packed = gzip.compress(_csv(";").encode())
    message = _error(_write(tmp_path, "in.csv.gz", packed[: len(packed) // 2]))
    assert "in.csv.gz cannot be decompressed as .gz" in message
    assert "damaged or truncated" in message


def test_folder_of_compressed_split_files_is_read_by_split(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    for split in ("train", "test"):
        _write(folder, f"{split}.csv.gz", gzip.compress(_csv(";").encode()))
    frame, fmt = load_source(folder, DataParams(delimiter=";"))
    assert fmt == "folder"
    assert frame["split"].value_counts().to_dict() == {"train": 20, "test": 20}


def test_folder_of_compressed_label_files_takes_labels_from_the_inner_name(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    _write(folder, "billing.txt.gz", gzip.compress(b"refund me\ncharged twice\n"))
    _write(folder, "shipping.txt.xz", lzma.compress(b"parcel late\n"))
    frame, _ = load_source(folder, DataParams())
    assert sorted(zip(frame["label"], frame["text"], strict=True)) == [
        ("billing", "charged twice"), ("billing", "refund me"), ("shipping", "parcel late"),
    ]  # fmt: skip


# ---------------------------------------------------------------- special files


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _gather_in_thread(source: Path, dst: Path) -> tuple[threading.Thread, list[BaseException]]:
    """gather on a thread: if it blocks on the FIFO, the test fails instead of hanging."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            gather(source=source, dst=dst, params=DataParams())
        except BaseException as exc:  # handed to the test
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout=20)
    return thread, errors


@pytest.mark.parametrize("name", ["input.csv", "input", "input.csv.gz"])
def test_fifo_source_is_refused_without_blocking(tmp_path: Path, name: str) -> None:
    fifo = _fifo(tmp_path / name)
    thread, errors = _gather_in_thread(fifo, tmp_path / "out")
    if thread.is_alive():  # unblock the reader so the test process can end
        with open(fifo, "wb"):
            pass
        pytest.fail("gather blocked on a FIFO")
    assert len(errors) == 1 and isinstance(errors[0], DataSourceError), errors
    assert f"{fifo} is a named pipe (FIFO), not a regular file" in str(errors[0])
    assert f"`cat {fifo} > data.csv`" in str(errors[0])


def test_fifo_inside_a_folder_or_a_glob_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    _write(folder, "billing.txt", "refund me\n")
    fifo = _fifo(folder / "shipping.txt")
    for source in (folder, folder / "*.txt"):
        thread, errors = _gather_in_thread(source, tmp_path / "out")
        if thread.is_alive():
            with open(fifo, "wb"):
                pass
            pytest.fail(f"gather blocked on a FIFO inside {source}")
        assert f"{fifo} is a named pipe (FIFO)" in str(errors[0])


def test_socket_and_device_sources_are_refused(tmp_path: Path) -> None:
    with socket.socket(socket.AF_UNIX) as server:
        path = tmp_path / "s.csv"
        server.bind(str(path))
        assert f"{path} is a socket, not a regular file" in _error(path)
    assert "/dev/zero is a character device, not a regular file" in _error(
        Path("/dev/zero"), format="csv"
    )


def test_gathered_splits_of_a_compressed_source_hold_every_row(tmp_path: Path) -> None:
    data = _csv().replace(", ", " ").encode()
    source = _write(tmp_path, "in.csv.zst", zstandard.ZstdCompressor().compress(data))
    report = gather(source=source, dst=tmp_path / "out", params=DataParams())
    assert report.format == "csv"
    assert sum(report.rows.values()) == 20
    rows = pd.concat(pd.read_parquet(tmp_path / "out" / f"{s}.parquet") for s in SPLITS)
    assert sorted(rows["text"]) == sorted(t.replace(", ", " ") for t, _ in ROWS)


def test_batch_inference_reads_compressed_input_and_refuses_a_fifo(tmp_path: Path) -> None:
    from nlpflow.config.params import parse_params
    from nlpflow.config.settings import Settings
    from nlpflow.serving.batch import plan_inference, read_rows

    def rows(source: str) -> pd.DataFrame:
        params = parse_params({"inference": {"source": source, "output": "out/preds.csv"}})
        return read_rows(plan_inference(params, Settings(project_dir=tmp_path)))

    lines = "".join(json.dumps({"id": i, "text": t}) + "\n" for i, (t, _) in enumerate(ROWS))
    _write(tmp_path, "new.jsonl.gz", gzip.compress(lines.encode()))
    frame = rows(str(tmp_path / "new.jsonl.gz"))
    assert list(frame["text"]) == [t for t, _ in ROWS]
    assert list(frame["id"]) == list(range(len(ROWS)))
    _write(tmp_path, "bad.jsonl", lines + '{"id": 99, "text": oops}\n')
    with pytest.raises(DataSourceError, match=r"bad\.jsonl line 21 is not valid JSON"):
        rows(str(tmp_path / "bad.jsonl"))
    fifo = _fifo(tmp_path / "pipe.csv")
    with pytest.raises(DataSourceError, match=r"pipe\.csv is a named pipe \(FIFO\)"):
        rows(str(fifo))
