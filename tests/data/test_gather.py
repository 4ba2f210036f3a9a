"""gather: every supported source layout, the stratified split, and clear source errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from nlpflow.data.gather import gather
from nlpflow.errors import DataSourceError
from nlpflow.config.params import DataParams, SplitParams
from tests.conftest import SHARED_DATASETS

SPLITS = ("train", "validation", "test")


def read_splits(dst: Path) -> dict[str, pd.DataFrame]:
    assert sorted(p.name for p in dst.iterdir()) == [
        "manifest.json", "test.parquet", "train.parquet", "validation.parquet",
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


def test_jsonl_null_label_stays_null_and_others_stay_integer_strings(tmp_path: Path) -> None:
    source = tmp_path / "reviews.jsonl"
    records = [{"text": f"review {i}", "label": i % 2} for i in range(20)]
    records.insert(5, {"text": "no label here", "label": None})
    source.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")

    report = gather(source=source, dst=tmp_path / "out", params=DataParams())

    assert report.format == "jsonl"
    assert report.labels["0"] == 10
    assert report.labels["1"] == 10
    assert sum(report.labels.values()) == 21
    # the null row is a class of one: round(0.2) = round(0.1) = 0, so it stays in train
    assert report.rows == {"train": 15, "validation": 2, "test": 4}
    rows = all_rows(read_splits(tmp_path / "out")).sort_values("source_row")
    assert rows["source_row"].tolist() == list(range(21))
    labels = rows["label"].tolist()
    assert pd.isna(labels[5])
    assert rows["text"].tolist()[5] == "no label here"
    expected = [str(i % 2) for i in range(20)]
    assert labels[:5] + labels[6:] == expected  # "0"/"1", never "0.0"/"1.0"
    assert all(type(label) is str for label in labels[:5] + labels[6:])


def test_parquet_with_custom_columns_ignores_extra_columns(tmp_path: Path) -> None:
    source = tmp_path / "tickets.parquet"
    pd.DataFrame(
        {
            "ticket_id": list(range(100, 120)),
            "body": [f"message number {i}" for i in range(20)],
            "text": [f"WRONG COLUMN {i}" for i in range(20)],
            "category": ["billing"] * 10 + ["shipping"] * 10,
            "label": ["wrong"] * 20,
        }
    ).to_parquet(source, index=False)

    report = gather(
        source=source,
        dst=tmp_path / "out",
        params=DataParams(text_column="body", label_column="category"),
    )

    assert report.format == "parquet"
    assert report.labels == {"billing": 10, "shipping": 10}
    assert report.rows == {"train": 14, "validation": 2, "test": 4}
    parts = read_splits(tmp_path / "out")
    for split in SPLITS:
        assert list(parts[split].columns) == ["text", "label", "source_row"]
    rows = all_rows(parts).sort_values("source_row")
    assert rows["source_row"].tolist() == list(range(20))
    assert rows["text"].tolist() == [f"message number {i}" for i in range(20)]
    assert rows["label"].tolist() == ["billing"] * 10 + ["shipping"] * 10


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


# ---------------------------------------------------------------- folders


def test_folder_one_text_file_per_label(tmp_path: Path) -> None:
    folder = tmp_path / "tickets"
    folder.mkdir()
    billing = [f"charged twice for order {i}" for i in range(12)]
    shipping = [f"parcel {i} never arrived" for i in range(10)]
    # a blank line (and a whitespace-only one) inside each file: skipped, but still counted
    # by source_row, which is the line index in the file
    (folder / "billing.txt").write_text(
        "\n".join([*billing[:4], "", *billing[4:]]) + "\n", encoding="utf-8"
    )
    (folder / "shipping.txt").write_text(
        "\n".join([*shipping[:2], "   ", *shipping[2:]]) + "\n", encoding="utf-8"
    )

    report = gather(source=folder, dst=tmp_path / "out", params=DataParams())

    assert report.format == "folder"
    assert report.split_from_source is False
    assert report.labels == {"billing": 12, "shipping": 10}
    # billing: test round(2.4) = 2, validation round(1.2) = 1; shipping: 2 and 1
    assert report.rows == {"train": 16, "validation": 2, "test": 4}
    rows = all_rows(read_splits(tmp_path / "out"))
    got_billing = rows[rows["label"] == "billing"].sort_values("source_row")
    got_shipping = rows[rows["label"] == "shipping"].sort_values("source_row")
    assert got_billing["text"].tolist() == billing
    assert got_billing["source_row"].tolist() == [0, 1, 2, 3, *range(5, 13)]
    assert got_shipping["text"].tolist() == shipping
    assert got_shipping["source_row"].tolist() == [0, 1, *range(3, 11)]
    assert "" not in set(rows["text"])


def test_mr_like_folder_labels_by_suffix_and_ignores_readme(tmp_path: Path) -> None:
    folder = tmp_path / "mr"
    folder.mkdir()
    pos = [f"a warm and funny film {i}" for i in range(10)]
    neg = [f"a dull and tedious film {i}" for i in range(10)]
    (folder / "rt-polarity.pos").write_text("\n".join(pos) + "\n", encoding="utf-8")
    (folder / "rt-polarity.neg").write_text("\n".join(neg) + "\n", encoding="utf-8")
    (folder / "README.md").write_text("# Movie reviews\n\nOne review a line.\n", encoding="utf-8")

    report = gather(source=folder, dst=tmp_path / "out", params=DataParams())

    assert report.format == "folder"
    assert report.labels == {"neg": 10, "pos": 10}
    assert report.rows == {"train": 14, "validation": 2, "test": 4}
    rows = all_rows(read_splits(tmp_path / "out"))
    assert sorted(rows[rows["label"] == "pos"]["text"]) == sorted(pos)
    assert sorted(rows[rows["label"] == "neg"]["text"]) == sorted(neg)
    assert not rows["text"].str.contains("Movie reviews|One review", regex=True).any()


def test_folder_with_split_files_keeps_them(tmp_path: Path) -> None:
    folder = tmp_path / "splits"
    folder.mkdir()
    texts = {
        "train": [f"train text {i}" for i in range(6)],
        "dev": [f"dev text {i}" for i in range(3)],
        "test": [f"test text {i}" for i in range(4)],
    }
    for name, items in texts.items():
        (folder / f"{name}.jsonl").write_text(
            "".join(
                json.dumps({"text": t, "label": ["a", "b"][i % 2]}) + "\n"
                for i, t in enumerate(items)
            ),
            encoding="utf-8",
        )

    report = gather(source=folder, dst=tmp_path / "out", params=DataParams())

    assert report.format == "folder"
    assert report.split_from_source is True
    assert report.rows == {"train": 6, "validation": 3, "test": 4}
    assert report.labels == {"a": 7, "b": 6}
    parts = read_splits(tmp_path / "out")
    for split, name in (("train", "train"), ("validation", "dev"), ("test", "test")):
        part = parts[split].sort_values("source_row")
        assert part["text"].tolist() == texts[name]
        assert part["label"].tolist() == [["a", "b"][i % 2] for i in range(len(texts[name]))]
        assert part["source_row"].tolist() == list(range(len(texts[name])))


def test_folder_splits_only_on_real_line_breaks(tmp_path: Path) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    odd = ["left\u2028right", "page\x0cbreak", "next\x85line"]
    # 3 lines ended by \r\n, \r and \n; str.splitlines would make 6 texts of them
    (folder / "odd.txt").write_text(
        f"{odd[0]}\r\n{odd[1]}\r{odd[2]}\n", encoding="utf-8", newline=""
    )
    (folder / "plain.txt").write_text("first plain\r\nsecond plain\n", encoding="utf-8", newline="")
    assert (folder / "odd.txt").read_bytes().count(b"\r") == 2

    report = gather(source=folder, dst=tmp_path / "out", params=DataParams())

    assert report.labels == {"odd": 3, "plain": 2}
    assert sum(report.rows.values()) == 5
    rows = all_rows(read_splits(tmp_path / "out"))
    got_odd = rows[rows["label"] == "odd"].sort_values("source_row")
    assert got_odd["text"].tolist() == odd
    assert got_odd["source_row"].tolist() == [0, 1, 2]
    got_plain = rows[rows["label"] == "plain"].sort_values("source_row")
    assert got_plain["text"].tolist() == ["first plain", "second plain"]


# ---------------------------------------------------------------- splits


def test_split_column_with_train_and_test_carves_validation_from_train(tmp_path: Path) -> None:
    source = tmp_path / "tickets.csv"
    lines = ["text,label,split"]
    lines += [f"bill {i},billing,train" for i in range(20)]
    lines += [f"ship {i},shipping,train" for i in range(30)]
    lines += [f"bill test {i},billing,test" for i in range(5)]
    lines += [f"ship test {i},shipping,Test" for i in range(3)]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")

    report = gather(source=source, dst=tmp_path / "out", params=DataParams())

    assert report.split_from_source is True
    # validation per class: billing round(20 * 0.1) = 2, shipping round(30 * 0.1) = 3
    assert report.rows == {"train": 45, "validation": 5, "test": 8}
    assert report.labels == {"billing": 25, "shipping": 33}
    parts = read_splits(tmp_path / "out")
    assert parts["validation"]["label"].value_counts().to_dict() == {"billing": 2, "shipping": 3}
    assert parts["train"]["label"].value_counts().to_dict() == {"billing": 18, "shipping": 27}
    assert all(
        t.startswith(("bill ", "ship ")) and " test " not in t for t in parts["validation"]["text"]
    )
    test = parts["test"].sort_values("source_row")
    assert test["text"].tolist() == [f"bill test {i}" for i in range(5)] + [
        f"ship test {i}" for i in range(3)
    ]
    assert test["source_row"].tolist() == list(range(50, 58))
    assert test["label"].tolist() == ["billing"] * 5 + ["shipping"] * 3


def _write_three_classes(source: Path) -> None:
    lines = ["text,label"]
    lines += [
        f"{label} text {i},{label}" for label in ("alpha", "beta", "gamma") for i in range(100)
    ]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _assignment(dst: Path) -> dict[int, str]:
    parts = read_splits(dst)
    out: dict[int, str] = {}
    for split in SPLITS:
        for row in parts[split]["source_row"]:
            assert int(row) not in out, f"source_row {row} is in two splits"
            out[int(row)] = split
    return out


def test_stratified_split_exact_counts_and_seeded(tmp_path: Path) -> None:
    source = tmp_path / "three.csv"
    _write_three_classes(source)
    params = DataParams(split=SplitParams(validation=0.1, test=0.2, seed=7))

    report = gather(source=source, dst=tmp_path / "a", params=params)

    assert report.rows == {"train": 210, "validation": 30, "test": 60}
    assert report.labels == {"alpha": 100, "beta": 100, "gamma": 100}
    parts = read_splits(tmp_path / "a")
    for split, n in (("train", 70), ("validation", 10), ("test", 20)):
        assert parts[split]["label"].value_counts().to_dict() == {"alpha": n, "beta": n, "gamma": n}
    first = _assignment(tmp_path / "a")
    assert sorted(first) == list(range(300))  # every row in exactly one split

    gather(source=source, dst=tmp_path / "b", params=params)
    assert _assignment(tmp_path / "b") == first

    other = DataParams(split=SplitParams(validation=0.1, test=0.2, seed=8))
    gather(source=source, dst=tmp_path / "c", params=other)
    second = _assignment(tmp_path / "c")
    assert sorted(second) == list(range(300))
    assert second != first
    assert sorted(second.values()) == sorted(first.values())  # same counts, other rows


# ---------------------------------------------------------------- errors


def test_missing_source(tmp_path: Path) -> None:
    message = gather_errors(tmp_path / "nope.csv", tmp_path)
    assert "nope.csv does not exist" in message
    assert "[NLP002]" in message
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("content", [b"", b"  \n\t\r\n  \n"], ids=["zero-bytes", "whitespace"])
def test_empty_source(tmp_path: Path, content: bytes) -> None:
    source = tmp_path / "tickets.csv"
    source.write_bytes(content)
    message = gather_errors(source, tmp_path)
    assert "tickets.csv is empty" in message


def test_header_only_csv(tmp_path: Path) -> None:
    source = tmp_path / "tickets.csv"
    source.write_text("text,label\n", encoding="utf-8")
    message = gather_errors(source, tmp_path)
    assert "tickets.csv has a header but no rows" in message


def test_non_utf8_without_bom_reports_byte_offset_and_line(tmp_path: Path) -> None:
    source = tmp_path / "latin1.csv"
    source.write_bytes(b"text,label\ncaf\xe9,billing\n")
    message = gather_errors(source, tmp_path)
    assert "not valid UTF-8" in message
    assert "0xe9" in message
    assert "offset 14" in message  # len(b"text,label\ncaf") == 14
    assert "line 2" in message
    assert "byte 0xe9 at offset 14 (line 2)" in message


def test_unknown_extension_with_auto_format(tmp_path: Path) -> None:
    source = tmp_path / "tickets.xlsx"
    source.write_text("text,label\nhello,billing\n", encoding="utf-8")
    message = gather_errors(source, tmp_path)
    assert "cannot tell the format of tickets.xlsx" in message
    assert "data.format" in message


def test_folder_format_pointing_at_a_file(tmp_path: Path) -> None:
    source = tmp_path / "tickets.csv"
    source.write_text("text,label\nhello,billing\n", encoding="utf-8")
    message = gather_errors(source, tmp_path, format="folder")
    assert "data.format is folder" in message
    assert "tickets.csv is a file" in message


# ---------------------------------------------------------------- provenance


def test_source_file_is_not_modified(tmp_path: Path) -> None:
    source = tmp_path / "tickets.csv"
    # BOM, CRLF line ends and no final newline: a rewrite that normalised any of them shows
    lines = ["text,label"] + [f"ticket {i},{'billing' if i % 2 else 'shipping'}" for i in range(20)]
    raw = b"\xef\xbb\xbf" + "\r\n".join(lines).encode("utf-8")
    source.write_bytes(raw)
    before = hashlib.sha256(raw).hexdigest()

    report = gather(source=source, dst=tmp_path / "out", params=DataParams())

    assert report.labels == {"billing": 10, "shipping": 10}
    assert hashlib.sha256(source.read_bytes()).hexdigest() == before
    assert source.read_bytes() == raw
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "tickets.csv"]


def test_source_sha256_changes_with_one_byte(tmp_path: Path) -> None:
    source = tmp_path / "tickets.csv"
    body = "text,label\n" + "".join(
        f"ticket {i},{'billing' if i % 2 else 'shipping'}\n" for i in range(20)
    )
    source.write_text(body, encoding="utf-8")
    first = gather(source=source, dst=tmp_path / "a", params=DataParams()).source_sha256
    again = gather(source=source, dst=tmp_path / "b", params=DataParams()).source_sha256
    assert again == first
    assert first == hashlib.sha256(b"tickets.csv" + body.encode()).hexdigest()

    changed = bytearray(body.encode())
    index = changed.index(b"ticket 7")
    changed[index] = ord("T")  # one byte: "ticket 7" -> "Ticket 7"
    source.write_bytes(bytes(changed))
    second = gather(source=source, dst=tmp_path / "c", params=DataParams()).source_sha256

    assert second != first
    assert second == hashlib.sha256(b"tickets.csv" + bytes(changed)).hexdigest()


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
