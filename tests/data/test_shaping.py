"""Gather's shaping: label rewriting, joined text fields, dedupe, duplicate-grouped splits,
labelled lines, tolerant decoding, and the manifest every snapshot carries."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from nlpflow.data.gather import SPLITS, gather
from nlpflow.errors import ParamsError
from nlpflow.config.params import DataParams, SplitParams, parse_params
from nlpflow.data.text import normalize_text


def _rows(dst: Path) -> pd.DataFrame:
    parts = [pd.read_parquet(dst / f"{s}.parquet").assign(split=s) for s in SPLITS]
    return pd.concat(parts).sort_values("source_row").reset_index(drop=True)


def test_label_pattern_then_map(tmp_path: Path) -> None:
    source = tmp_path / "q.csv"
    source.write_text(
        "text,label\n" + "".join(f"q{i},{('DESC:manner', 'NUM:date')[i % 2]}\n" for i in range(20))
    )
    params = DataParams(label_pattern=r"^([A-Z]+):", label_map={"NUM": "number"})
    report = gather(source=source, dst=tmp_path / "out", params=params)
    assert report.labels == {"DESC": 10, "number": 10}


def test_numeric_labels_mapped_to_names(tmp_path: Path) -> None:
    source = tmp_path / "r.jsonl"
    source.write_text(
        "".join(json.dumps({"text": f"r{i}", "label": i % 2}) + "\n" for i in range(10))
    )
    report = gather(
        source=source, dst=tmp_path / "out", params=DataParams(label_map={"0": "neg", "1": "pos"})
    )
    assert report.labels == {"neg": 5, "pos": 5}


def test_several_text_columns_are_joined_skipping_blanks(tmp_path: Path) -> None:
    source = tmp_path / "t.csv"
    source.write_text(
        "subject,body,label\nRefund,card charged twice,billing\n,parcel lost,shipping\n" * 5
    )
    gather(source=source, dst=tmp_path / "out", params=DataParams(text_column=["subject", "body"]))
    texts = _rows(tmp_path / "out")["text"].tolist()
    assert texts[:2] == ["Refund card charged twice", "parcel lost"]


DUPES = "text,label\n" + "".join(
    f"Where is order {i}?,shipping\nwhere is ORDER {i} ,shipping\nWhere is order {i}?,shipping\n"
    f"refund {i} please,billing\n"
    for i in range(10)
)


def test_exact_and_normalized_dedupe(tmp_path: Path) -> None:
    source = tmp_path / "d.csv"
    source.write_text(DUPES)
    exact = gather(source=source, dst=tmp_path / "a", params=DataParams(dedupe="exact"))
    assert exact.duplicates_dropped == 10 and sum(exact.rows.values()) == 30
    norm = gather(source=source, dst=tmp_path / "b", params=DataParams(dedupe="normalized"))
    assert norm.duplicates_dropped == 20 and norm.labels == {"billing": 10, "shipping": 10}
    # the first spelling is the one kept
    assert "Where is order 0?" in set(_rows(tmp_path / "b")["text"])


def test_duplicates_never_straddle_splits(tmp_path: Path) -> None:
    source = tmp_path / "d.csv"
    source.write_text(DUPES)

    def straddling(group: bool) -> int:
        split = SplitParams(validation=0.2, test=0.3, seed=3, group_duplicates=group)
        gather(source=source, dst=tmp_path / str(group), params=DataParams(split=split))
        rows = _rows(tmp_path / str(group))
        per_key = rows.groupby(rows["text"].map(normalize_text))["split"].nunique()
        return int((per_key > 1).sum())

    assert straddling(True) == 0
    assert straddling(False) > 0  # without grouping, this data does leak


def test_labelled_lines_and_replaced_bytes(tmp_path: Path) -> None:
    source = tmp_path / "trec.label"
    lines = [f"{('LOC:city', 'HUM:ind')[i % 2]} Who or where is thing {i} ?" for i in range(20)]
    source.write_bytes(
        ("\n".join(lines) + "\nLOC:other caf\xe9 ?\n").encode("utf-8").replace(b"\xc3\xa9", b"\xe9")
    )
    params = DataParams(
        format="labelled_lines", decode_errors="replace", label_pattern=r"^([A-Z]+):"
    )
    report = gather(source=source, dst=tmp_path / "out", params=params)
    assert report.labels == {"HUM": 10, "LOC": 11}
    assert report.replaced_characters == 1
    rows = _rows(tmp_path / "out")
    assert rows["text"].iloc[0] == "Who or where is thing 0 ?"
    assert rows["text"].iloc[-1] == "caf\ufffd ?"


def test_manifest_records_counts_hash_and_params(tmp_path: Path) -> None:
    source = tmp_path / "d.csv"
    source.write_text(DUPES)
    report = gather(source=source, dst=tmp_path / "out", params=DataParams(dedupe="exact"))
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["rows"] == report.rows and sum(manifest["rows"].values()) == 30
    assert manifest["source_sha256"] == report.source_sha256
    assert manifest["params"]["dedupe"] == "exact"
    assert manifest["duplicates_dropped"] == 10


def test_bad_label_pattern_is_a_params_error() -> None:
    with pytest.raises(
        ParamsError, match=r"data.label_pattern: not a valid regular expression"
    ):
        parse_params({"data": {"label_pattern": "([A-Z"}})


def test_drop_folder_glob_reads_every_file_with_provenance(tmp_path: Path) -> None:
    drops = tmp_path / "drops"
    drops.mkdir()
    (drops / "2026-11-01.csv").write_text(
        "text,label\n" + "".join(f"late parcel {i},shipping\n" for i in range(10))
    )
    (drops / "2026-11-08.csv").write_text(
        "text,label\n" + "".join(f"refund {i},billing\n" for i in range(10))
    )
    (drops / "notes.txt").write_text("not data")
    source = drops / "*.csv"
    first = gather(source=source, dst=tmp_path / "a", params=DataParams())
    assert [f["path"] for f in first.files] == ["2026-11-01.csv", "2026-11-08.csv"]
    assert [f["rows"] for f in first.files] == [10, 10]
    rows = _rows(tmp_path / "a")
    assert set(rows.loc[rows["label"] == "billing", "source_file"]) == {"2026-11-08.csv"}
    # a new file arrives before the next scheduled run
    (drops / "2026-11-15.csv").write_text(
        "text,label\n" + "".join(f"refund again {i},billing\n" for i in range(5))
    )
    second = gather(source=source, dst=tmp_path / "b", params=DataParams())
    assert sum(second.rows.values()) == 25 and len(second.files) == 3
    assert second.source_sha256 != first.source_sha256
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["files"][2] == {
        "path": "2026-11-15.csv",
        "sha256": hashlib.sha256(
            b"2026-11-15.csv" + (drops / "2026-11-15.csv").read_bytes()
        ).hexdigest(),
        "rows": 5,
    }


def test_glob_errors(tmp_path: Path) -> None:
    from nlpflow.errors import DataSourceError

    with pytest.raises(DataSourceError, match="no file matches data.source"):
        gather(source=tmp_path / "*.csv", dst=tmp_path / "out", params=DataParams())
    (tmp_path / "a.csv").write_text("text,label\nhi,x\n")
    (tmp_path / "b.jsonl").write_text('{"text": "hi", "label": "x"}\n')
    with pytest.raises(DataSourceError, match=r"different formats \['csv', 'jsonl'\]"):
        gather(source=tmp_path / "*.*", dst=tmp_path / "out", params=DataParams())
