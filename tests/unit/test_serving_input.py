"""What the served model accepts, and how `--model` names a registered version."""

from __future__ import annotations

import pandas as pd
import pytest

from nlpflow.errors import ModelError
from nlpflow.serving.pyfunc import InvalidRequest, check_texts, input_texts
from nlpflow.tracking.refs import parse_model_spec


def test_good_texts_pass_unchanged() -> None:
    texts = ["a parcel", "é" * 10, "  padded  "]
    assert check_texts(texts, max_chars=10, max_batch=3) == texts


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        (["ok", ""], "1 of 2 texts rejected (rows count from 0): row 1: text is empty"),
        ([" \n\t"], "row 0: text is blank (whitespace only)"),
        (["x" * 11], "row 0: text has 11 characters, more than serve.max_chars=10"),
        (["ok", None], "row 1: text is missing"),
        ([float("nan")], "row 0: text is missing"),
        ([42], "row 0: text is a int, not a string"),
        (["None"], "row 0: text is 'None', a missing value written as text"),
        ([True], "row 0: text is a bool, not a string"),
        (["a"] * 4, "4 texts in one request, more than serve.max_batch=3; send at most 3"),
    ],
)
def test_bad_texts_are_named_with_the_fix(texts: list[object], message: str) -> None:
    with pytest.raises(InvalidRequest) as error:
        check_texts(texts, max_chars=10, max_batch=3)
    assert message in str(error.value)
    if "max_batch" not in message:
        assert "Send non-blank strings of at most 10 characters" in str(error.value)


def test_many_bad_rows_are_summarised() -> None:
    with pytest.raises(InvalidRequest) as error:
        check_texts([""] * 9, max_chars=10, max_batch=100)
    message = str(error.value)
    assert message.startswith("9 of 9 texts rejected")
    assert "row 4: text is empty; and 4 more." in message and "row 5" not in message


def test_request_shapes() -> None:
    assert input_texts(pd.DataFrame({"id": [1], "text": ["a"]})) == ["a"]
    assert input_texts(pd.Series(["a", "b"])) == ["a", "b"]
    assert input_texts("one") == ["one"]
    assert input_texts({"text": ["a", "b"]}) == ["a", "b"]
    with pytest.raises(InvalidRequest, match="no 'text' column \\(columns: body\\)"):
        input_texts(pd.DataFrame({"body": ["a"]}))
    with pytest.raises(InvalidRequest, match="cannot read texts from a int"):
        input_texts(3)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (None, ("default", "champion", None)),
        ("clf", ("clf", "champion", None)),
        ("clf@challenger", ("clf", "challenger", None)),
        ("clf/12", ("clf", None, 12)),
        ("models:/clf@champion", ("clf", "champion", None)),
        ("models:/clf/3", ("clf", None, 3)),
    ],
)
def test_model_specs(spec: str | None, expected: tuple[str, str | None, int | None]) -> None:
    assert parse_model_spec(spec, "default") == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [("clf@", "write NAME@ALIAS"), ("@x", "write NAME@ALIAS"), ("clf/v2", "NAME/VERSION"),
     ("  ", "--model is empty")],
)  # fmt: skip
def test_bad_model_specs(spec: str, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        parse_model_spec(spec, "default")


def test_predictions_run_in_one_thread_whoever_calls() -> None:
    """torch's OpenMP team belongs to the calling thread: every caller must share one."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from nlpflow.serving.pyfunc import in_predict_thread

    def ident() -> int:
        return threading.get_ident()

    with ThreadPoolExecutor(4) as callers:
        seen = set(callers.map(lambda _: in_predict_thread(ident), range(16)))
    seen.add(in_predict_thread(ident))
    assert len(seen) == 1 and threading.get_ident() not in seen
    assert in_predict_thread(pow, 2, 10) == 1024
