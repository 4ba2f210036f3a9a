"""Hostile input, one case each: a clear message (or clean data), never a traceback, and the
user's file byte-for-byte unchanged."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from nlpflow.data.gather import SPLITS, gather
from nlpflow.errors import DataSourceError, DataValidationError
from nlpflow.config.params import DataParams, ValidateParams
from nlpflow.data.validation import validate
from tests.conftest import SHARED_DATASETS

ROWS = "".join(f"my parcel {i} is late,shipping\nrefund my card {i},billing\n" for i in range(10))

# name -> (file bytes, data params, words the error message must contain)
FAILING = {
    "truncated_csv": (
        f'text,label\n{ROWS}"this quote never clo,billing\n'.encode(),
        {},
        ["could not be parsed as csv", "may be truncated"],
    ),
    "wrong_delimiter": (
        ("text;label\n" + ROWS.replace(",", ";")).encode(),
        {},
        ["columns are ['text;label']", "set data.delimiter"],
    ),
    "windows_1252": (
        f"text,label\n{ROWS}caf\xe9 \u201cnoir\u201d,billing\n".encode("cp1252"),
        {},
        ["not valid UTF-8", "byte 0xe9 at offset 554 (line 22)", "iconv -f cp1252"],
    ),
    "nul_bytes": (
        f"text,label\n{ROWS}bad\x00byte,billing\n".encode(),
        {},
        ["NUL byte at offset 554 (line 22)"],
    ),
    "utf16": ("text,label\nhello,billing\n".encode("utf-16"), {}, ["UTF-16", "iconv -f utf-16"]),
    "empty_file": (b"", {}, ["is empty"]),
    "header_only": (b"text,label\n", {}, ["has a header but no rows"]),
    "duplicated_header": (
        ("text,text,label\n" + "".join(f"a{i},b{i},billing\n" for i in range(20))).encode(),
        {},
        ["names column(s) ['text'] more than once"],
    ),
}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("case", list(FAILING))
def test_hostile_file_gives_a_clear_error_and_stays_untouched(case: str, tmp_path: Path) -> None:
    data, params, words = FAILING[case]
    source = tmp_path / "input.csv"
    source.write_bytes(data)
    with pytest.raises(DataSourceError) as info:
        gather(source=source, dst=tmp_path / "out", params=DataParams(**params))
    for word in words:
        assert word in str(info.value), (word, str(info.value))
    assert source.read_bytes() == data
    assert not (tmp_path / "out" / "train.parquet").exists()


@pytest.mark.parametrize("case", ["truncated_csv", "nul_bytes", "duplicated_header"])
def test_cli_shows_the_message_not_a_traceback(case: str, tmp_path: Path, venv_env) -> None:
    data, _, words = FAILING[case]
    (tmp_path / "input.csv").write_bytes(data)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"data": {"source": "input.csv"}}))
    env = venv_env | {"NLPFLOW_PROJECT_DIR": str(tmp_path)}
    env.pop("NLPFLOW_TRACKING_URI", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run(
        ["nlpflow", "stage", "gather"], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert done.returncode == 2
    assert words[0] in done.stderr
    assert "Traceback" not in done.stderr


def _gathered(tmp_path: Path, data: bytes, **params: object) -> pd.DataFrame:
    source = tmp_path / "input.csv"
    source.write_bytes(data)
    gather(source=source, dst=tmp_path / "out", params=DataParams(**params))
    assert source.read_bytes() == data
    frames = [pd.read_parquet(tmp_path / "out" / f"{s}.parquet") for s in SPLITS]
    return pd.concat(frames).sort_values("source_row").reset_index(drop=True)


def test_semicolon_file_reads_once_the_delimiter_is_set(tmp_path: Path) -> None:
    rows = _gathered(tmp_path, ("text;label\n" + ROWS.replace(",", ";")).encode(), delimiter=";")
    assert len(rows) == 20 and set(rows["label"]) == {"shipping", "billing"}


def test_utf8_bom_is_not_part_of_the_first_column_name(tmp_path: Path) -> None:
    rows = _gathered(tmp_path, ("\ufefftext,label\n" + ROWS).encode())
    assert rows["text"].iloc[0] == "my parcel 0 is late"


def test_mixed_newline_styles_give_the_same_rows(tmp_path: Path) -> None:
    lines = ["text,label", *ROWS.splitlines()]
    mixed = "".join(line + ("\r\n", "\n", "\r")[i % 3] for i, line in enumerate(lines))
    rows = _gathered(tmp_path, mixed.encode())
    assert len(rows) == 20
    assert not rows["text"].str.contains("\r").any()
    assert not rows["label"].str.contains("\r").any()


def _validated(tmp_path: Path, data: bytes, validate_params: dict, **data_params: object) -> str:
    _gathered(tmp_path, data, **data_params)
    with pytest.raises(DataValidationError) as info:
        validate(
            src=tmp_path / "out", dst=tmp_path / "report",
            params=ValidateParams(**validate_params), data=DataParams(**data_params),
        )  # fmt: skip
    return str(info.value)


def test_a_10mb_single_line_is_reported_not_loaded_into_the_model(tmp_path: Path) -> None:
    huge = "x" * 10_000_000
    message = _validated(tmp_path, f"text,label\n{ROWS}{huge},billing\n".encode(), {})
    assert "text length is 1..5000 characters" in message
    assert "x" * 80 + "…" in message  # the offending row, shortened
    assert len(message) < 2000


def test_label_typos_and_numeric_labels_are_named(tmp_path: Path) -> None:
    rows = ROWS + "where is my parcle,shiping\nrefund now,1\n"
    message = _validated(
        tmp_path, f"text,label\n{rows}".encode(), {"min_examples_per_class": 1},
        labels=["shipping", "billing"],
    )  # fmt: skip
    assert "labels are in the allowed set ['shipping', 'billing']" in message
    assert "label='shiping'" in message and "label='1'" in message


def test_label_typos_and_a_10mb_line_can_be_quarantined_instead(tmp_path: Path) -> None:
    huge = "x" * 10_000_000
    rows = ROWS + f"where is my parcle,shiping\nrefund now,1\n{huge},billing\n"
    _gathered(tmp_path, f"text,label\n{rows}".encode(), labels=["shipping", "billing"])
    policy = {"label_in_set": "quarantine", "text_length": "quarantine", "p95_chars": "quarantine"}
    report = validate(
        src=tmp_path / "out", dst=tmp_path / "report", quarantine=tmp_path / "quarantine",
        params=ValidateParams(min_examples_per_class=1, policy=policy),
        data=DataParams(labels=["shipping", "billing"]), accepted=tmp_path / "validated",
    )  # fmt: skip
    assert report.success and report.quarantined == {
        "label_in_set": 2, "text_length": 1, "p95_chars": 1,
    }  # fmt: skip
    moved = pd.read_json(tmp_path / "quarantine" / "quarantined.jsonl", lines=True)
    assert sorted(moved["label"].astype(str)) == ["1", "billing", "shiping"]
    by_label = dict(zip(moved["label"].astype(str), moved["checks"], strict=True))
    assert by_label["billing"] == ["text_length", "p95_chars"]  # the 10 MB line, both reasons
    kept = pd.concat(pd.read_parquet(tmp_path / "validated" / f"{s}.parquet") for s in SPLITS)
    assert len(kept) == 20 and set(kept["label"]) == {"shipping", "billing"}


TREC = SHARED_DATASETS / "trec" / "train_5500.label"
SMS = SHARED_DATASETS / "sms_spam" / "SMSSpamCollection"


@pytest.mark.skipif(not TREC.exists(), reason=f"{TREC} is absent")
def test_trec_stray_byte_is_located(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match=r"byte 0xf0 at offset 3695 \(line 66\)"):
        gather(source=TREC, dst=tmp_path / "out", params=DataParams(format="tsv"))


@pytest.mark.skipif(not SMS.exists(), reason=f"{SMS} is absent")
def test_sms_spam_quotes_are_literal_and_duplicates_are_reported(tmp_path: Path) -> None:
    before = _sha(SMS)
    params = DataParams(format="tsv", columns=["label", "text"])
    report = gather(source=SMS, dst=tmp_path / "out", params=params)
    assert report.labels == {"ham": 4827, "spam": 747}
    rows = pd.concat([pd.read_parquet(tmp_path / "out" / f"{s}.parquet") for s in SPLITS])
    assert rows["text"].str.contains('"').sum() == 145  # quotes kept as characters
    assert rows["text"].nunique() == 5171
    with pytest.raises(DataValidationError) as info:
        validate(
            src=tmp_path / "out", dst=tmp_path / "report", params=ValidateParams(), data=params
        )
    assert "at most 5.0% of texts repeat an earlier text [duplicates]" in str(info.value)
    assert _sha(SMS) == before
