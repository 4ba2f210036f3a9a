"""gather: every supported source layout, the stratified split, and clear source errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from nlpflow.data import gather
from nlpflow.errors import DataSourceError
from nlpflow.params import DataParams, SplitParams
from tests.conftest import SHARED_DATASETS

SPLITS = ("train", "validation", "test")


def read_splits(dst: Path) -> dict[str, pd.DataFrame]:
    assert sorted(p.name for p in dst.iterdir()) == [
        "test.parquet", "train.parquet", "validation.parquet",
    ]  # fmt: skip
    return {s: pd.read_parquet(dst / f"{s}.parquet") for s in SPLITS}


def all_rows(parts: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(parts.values(), ignore_index=True)


def sha256(path: Path) -> str:
    if path.is_dir():
        return hashlib.sha256(
            b"".join(
                p.name.encode() + p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()
            )
        ).hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def gather_errors(source: Path, tmp_path: Path, **data: object) -> str:
    with pytest.raises(DataSourceError) as info:
        gather(source=source, dst=tmp_path / "out", params=DataParams(**data))
    return str(info.value)


# ---------------------------------------------------------------- formats


def test_csv_with_quoted_commas(tmp_path: Path) -> None:
    source = tmp_path / "tickets.csv"
    lines = ["id,text,label"]
    lines += [f'{i},"Invoice {i}, charged twice",billing' for i in range(10)]
    lines += [f'{10 + i},"Parcel {i} is late, again",shipping' for i in range(10)]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    before = sha256(source)

    report = gather(source=source, dst=tmp_path / "out", params=DataParams())

    assert report.format == "csv"
    assert report.split_from_source is False
    # per class: test round(10 * 0.2) = 2, validation round(10 * 0.1) = 1, train 7
    assert report.rows == {"train": 14, "validation": 2, "test": 4}
    assert report.labels == {"billing": 10, "shipping": 10}
    assert report.source_sha256 == hashlib.sha256(b"tickets.csv" + source.read_bytes()).hexdigest()
    parts = read_splits(tmp_path / "out")
    for split in SPLITS:
        assert list(parts[split].columns) == ["text", "label", "source_row"]
    rows = all_rows(parts).sort_values("source_row")
    assert rows["source_row"].tolist() == list(range(20))
    assert rows["text"].tolist()[:2] == ["Invoice 0, charged twice", "Invoice 1, charged twice"]
    assert rows["text"].tolist()[10] == "Parcel 0 is late, again"
    assert rows["label"].tolist() == ["billing"] * 10 + ["shipping"] * 10
    assert sha256(source) == before


def test_tsv_keeps_unbalanced_quotes_literally(tmp_path: Path) -> None:
    source = tmp_path / "sms.tsv"
    texts = [f'He said "call me {i}' for i in range(5)] + [
        f'5" screen {i} broke"' for i in range(5)
    ]
    body = "text\tlabel\n" + "".join(
        f"{t}\t{'ham' if i < 5 else 'spam'}\n" for i, t in enumerate(texts)
    )
    source.write_text(body, encoding="utf-8")
    before = sha256(source)

    report = gather(source=source, dst=tmp_path / "out", params=DataParams())

    assert report.format == "tsv"
    assert report.labels == {"ham": 5, "spam": 5}
    # per class: test round(5 * 0.2) = 1, validation round(5 * 0.1) = round(0.5) = 0
    assert report.rows == {"train": 8, "validation": 0, "test": 2}
    rows = all_rows(read_splits(tmp_path / "out")).sort_values("source_row")
    assert rows["text"].tolist() == texts
    assert rows["label"].tolist() == ["ham"] * 5 + ["spam"] * 5
    assert sha256(source) == before


def test_jsonl_integer_labels_become_strings(tmp_path: Path) -> None:
    source = tmp_path / "reviews.jsonl"
    records = [{"text": f"review {i}", "label": i % 2, "stars": i} for i in range(20)]
    source.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")

    report = gather(source=source, dst=tmp_path / "out", params=DataParams())

    assert report.format == "jsonl"
    assert report.labels == {"0": 10, "1": 10}
    assert report.rows == {"train": 14, "validation": 2, "test": 4}
    rows = all_rows(read_splits(tmp_path / "out")).sort_values("source_row")
    assert rows["label"].tolist() == [str(i % 2) for i in range(20)]
    assert all(type(label) is str for label in rows["label"])
    assert rows["text"].tolist() == [f"review {i}" for i in range(20)]


def test_non_utf8_bytes_report_the_offset_after_a_bom(tmp_path: Path) -> None:
    source = tmp_path / "bom.csv"
    source.write_bytes(b"\xef\xbb\xbftext,label\ncaf\xe9 au lait,billing\n")
    message = gather_errors(source, tmp_path)
    assert "byte 0xe9 at offset 17 (line 2)" in message


def test_missing_text_column_names_it_and_the_available_columns(tmp_path: Path) -> None:
    source = tmp_path / "tickets.csv"
    source.write_text("body,label\nhello,billing\n", encoding="utf-8")
    message = gather_errors(source, tmp_path)
    assert "column(s) ['text'] not found" in message
    assert "columns are ['body', 'label']" in message
    assert "data.text_column" in message


def test_unknown_split_value(tmp_path: Path) -> None:
    source = tmp_path / "tickets.csv"
    source.write_text(
        "text,label,split\nhello,billing,train\nbye,billing,holdout\n", encoding="utf-8"
    )
    message = gather_errors(source, tmp_path)
    assert "split value 'holdout' is not one of train/validation/test" in message


def test_split_column_without_test_split(tmp_path: Path) -> None:
    source = tmp_path / "tickets.csv"
    source.write_text("text,label,split\nhello,billing,train\nbye,billing,dev\n", encoding="utf-8")
    message = gather_errors(source, tmp_path)
    assert "the source's splits are ['train', 'validation']" in message
    assert "at least train and test" in message


# ---------------------------------------------------------------- real data


MR = SHARED_DATASETS / "mr"


@pytest.mark.skipif(not MR.is_dir(), reason=f"shared dataset folder {MR} is absent")
def test_gather_real_mr_folder(tmp_path: Path) -> None:
    before = sha256(MR)
    report = gather(source=MR, dst=tmp_path / "out", params=DataParams())

    assert report.format == "folder"
    assert report.split_from_source is False  # the splits/ subfolder is not read
    assert report.labels == {"neg": 5331, "pos": 5331}
    # per class: test round(5331 * 0.2) = 1066, validation round(533.1) = 533, train 3732
    assert report.rows == {"train": 7464, "validation": 1066, "test": 2132}
    parts = read_splits(tmp_path / "out")
    assert parts["test"]["label"].value_counts().to_dict() == {"neg": 1066, "pos": 1066}
    assert sha256(MR) == before
