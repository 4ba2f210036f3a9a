"""`nlpflow predict --input FILE`: values read as they are, then checked by the model's rules
before any is turned into text, so a null or a number is a rejected row, never "None" or "3"."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from nlpflow.serving.predict import read_texts
from nlpflow.serving.pyfunc import InvalidRequest, check_texts


def _problems(texts: list[object]) -> str:
    with pytest.raises(InvalidRequest) as error:
        check_texts(texts, max_chars=100, max_batch=len(texts))
    return str(error.value)


def test_jsonl_nulls_numbers_and_blanks_are_rejected_by_row(tmp_path: Path) -> None:
    rows = [{"text": "a parcel"}, {"text": None}, {"text": 3}, {"text": " "}, {"text": True}]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    texts = read_texts(path)
    assert texts[0] == "a parcel"
    message = _problems(texts)
    assert message.startswith("4 of 5 texts rejected (rows count from 0): row 1: text is missing")
    assert "row 2: text is a int, not a string" in message
    assert "row 3: text is blank" in message and "row 4: text is a bool, not a string" in message


def test_csv_and_txt_missing_words_are_rejected(tmp_path: Path) -> None:
    pd.DataFrame({"text": ["ok", "None", "NULL", "NaN", ""]}).to_csv(tmp_path / "in.csv")
    message = _problems(read_texts(tmp_path / "in.csv"))
    assert "row 1: text is 'None', a missing value written as text" in message
    assert "row 2: text is 'NULL'" in message and "row 3: text is 'NaN'" in message
    assert "row 4: text is empty" in message
    (tmp_path / "in.txt").write_text("a refund\nnull\n")
    assert "row 1: text is 'null'" in _problems(read_texts(tmp_path / "in.txt"))


def test_parquet_keeps_types(tmp_path: Path) -> None:
    pd.DataFrame({"text": ["ok", None]}).to_parquet(tmp_path / "in.parquet")
    assert "row 1: text is missing" in _problems(read_texts(tmp_path / "in.parquet"))
