"""Batch inference's row checks on values as read (JSONL, parquet, SQL keep their types): a
number or a boolean is not a text, and neither is a missing value written as a word."""

from __future__ import annotations

import pandas as pd

from nlpflow.serving.batch import validate_rows


def test_non_strings_and_missing_words_are_rejected_by_row() -> None:
    texts = ["a parcel", 3, True, "None", " null ", 2.5, None, "nan", "nonetheless fine"]
    frame = pd.DataFrame({"text": texts}, dtype=object)
    checked = validate_rows(
        frame, text_column="text", id_column=None, max_chars=100, on_invalid="skip"
    )
    assert checked.valid["row"].tolist() == [0, 8]
    assert checked.rejected["row"].tolist() == [1, 2, 3, 4, 5, 6, 7]
    assert checked.rejected["checks"].tolist() == [
        "text_is_string", "text_is_string", "text_not_missing_word", "text_not_missing_word",
        "text_is_string", "text_not_null", "text_not_missing_word",
    ]  # fmt: skip
    assert checked.rejected["text"].tolist()[:3] == ["3", "True", "None"]  # as sent, for the file
    assert checked.failed == {"text_not_null": 1, "text_is_string": 3, "text_not_missing_word": 3}
    assert "__nlpflow_text_is_string__" not in checked.rejected.columns
    assert list(checked.valid.columns) == ["row", "text"]
