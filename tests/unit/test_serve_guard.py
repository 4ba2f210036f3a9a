"""The request guard in front of MLflow's scoring server: size, depth and texts checked on the
bytes as sent, before anything parses or converts them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import MutableMapping
from typing import Any

import pytest

from nlpflow.serving.app import (
    Limits,
    RejectedRequest,
    RequestGuard,
    _gist,
    check_body,
    json_depth,
    request_texts,
)

DEFAULTS = Limits(max_chars=5000, max_batch=256)


def test_json_depth_counts_brackets_outside_strings_only() -> None:
    assert json_depth(b'{"inputs": ["a", "b"]}') == 2
    assert json_depth(b'{"inputs": ["[[[[{{{", "\\"]]]"]}') == 2  # brackets in texts, escapes
    assert json_depth(b"[" * 100_000 + b"]" * 100_000) == 100_000  # no RecursionError


def test_hundred_thousand_levels_are_a_400_within_default_limits() -> None:
    body = b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert len(body) < DEFAULTS.max_body_bytes  # so the depth check, not the size, refuses it
    with pytest.raises(RejectedRequest) as error:
        check_body(body, DEFAULTS)
    assert error.value.status == 400 and "nests 100,001 levels deep" in str(error.value)


@pytest.mark.parametrize(
    ("payload", "texts"),
    [
        ({"inputs": ["a", None, 3]}, ["a", None, 3]),
        ({"inputs": "a"}, ["a"]),
        ({"inputs": {"text": ["a", True]}}, ["a", True]),
        ({"inputs": [{"text": "a"}, {"text": None}]}, ["a", None]),
        ({"instances": [["x"]]}, [["x"]]),
        ({"dataframe_records": [{"text": 1.5}]}, [1.5]),
        ({"dataframe_split": {"columns": ["id", "text"], "data": [[1, "a"], [2, None]]}},
         ["a", None]),
        # shapes without texts: MLflow answers (missing column, unknown format)
        ({"dataframe_records": [{"body": "a"}]}, None),
        ({"dataframe_split": {"columns": ["body"], "data": [["a"]]}}, None),
        ({"something": []}, None),
        (["a"], None),
    ],
)  # fmt: skip
def test_texts_are_found_in_every_payload_form_as_sent(payload: Any, texts: Any) -> None:
    assert request_texts(payload) == texts


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b'{"inputs": [null]}', "row 0: text is missing"),
        (b'{"inputs": [true]}', "row 0: text is a bool, not a string"),
        (b'{"inputs": ["ok", 12]}', "row 1: text is a int, not a string"),
        (b'{"inputs": ["null"]}', "row 0: text is 'null', a missing value written as text"),
        (b'{"inputs": ["a"', "the body is not valid JSON: Expecting ',' delimiter: line 1"),
        (b'{"inputs": ["\xff"]}', "the body is not UTF-8 (byte 13)"),
    ],
)
def test_bad_bodies_are_refused_with_the_row(body: bytes, fragment: str) -> None:
    with pytest.raises(RejectedRequest) as error:
        check_body(body, DEFAULTS)
    assert error.value.status == 400 and fragment in str(error.value)


def test_body_limit_fits_a_full_batch_of_the_longest_escaped_texts() -> None:
    limits = Limits(max_chars=50, max_batch=4)
    worst = json.dumps({"dataframe_records": [{"text": "\U0001f600" * 25}] * 4}).encode()
    assert len(worst) <= limits.max_body_bytes
    check_body(worst, limits)


def _call(guard: RequestGuard, scope: dict[str, Any], chunks: list[bytes]) -> dict[str, Any]:
    """Run one request through the guard; what it sent, how many chunks it read."""
    sent: list[MutableMapping[str, Any]] = []
    reads = 0

    async def receive() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": chunks[reads - 1],
                "more_body": reads < len(chunks)}  # fmt: skip

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    asyncio.run(guard(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return {"status": sent[0]["status"], "body": body, "reads": reads}


def _scope(length: int | None = None) -> dict[str, Any]:
    headers = [(b"content-type", b"application/json")]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    return {"type": "http", "method": "POST", "path": "/invocations", "headers": headers}


class _App:
    """The app behind the guard: answers 200 with the body it got, or a long MLflow error."""

    def __init__(self, status: int = 200, answer: bytes | None = None) -> None:
        self.status, self.answer = status, answer
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.bodies.append((await receive())["body"])
        await send({"type": "http.response.start", "status": self.status, "headers": []})
        await send({"type": "http.response.body", "body": self.answer or self.bodies[-1]})


def test_an_unannounced_body_stops_being_read_at_the_limit() -> None:
    app = _App()
    guard = RequestGuard(app, Limits(max_chars=10, max_batch=2))  # limit 65,784 bytes
    result = _call(guard, _scope(), [b"x" * 40_000] * 50)  # chunked: 2 MB on its way
    assert result["status"] == 413 and result["reads"] == 2 and app.bodies == []
    assert b"over 80,000 bytes, more than 65,784" in result["body"]
    announced = _call(guard, _scope(2_000_000), [b"x"])
    assert announced["status"] == 413 and announced["reads"] == 0


def test_a_good_body_reaches_the_app_unchanged_in_pieces() -> None:
    app = _App()
    body = json.dumps({"inputs": ["a parcel", "a refund"]}).encode()
    result = _call(RequestGuard(app, DEFAULTS), _scope(len(body)), [body[:7], body[7:]])
    assert result == {"status": 200, "body": body, "reads": 2} and app.bodies == [body]


def test_app_errors_lose_the_request_they_quote() -> None:
    quoted = json.dumps({
        "error_code": "BAD_REQUEST", "stack_trace": "Traceback ... secret",
        "message": "Failed to predict data '" + "secret " * 1000 + "'. \nError: Model is broken",
    }).encode()  # fmt: skip
    body = json.dumps({"inputs": ["a"]}).encode()
    result = _call(RequestGuard(_App(400, quoted), DEFAULTS), _scope(len(body)), [body])
    assert result["status"] == 400
    assert json.loads(result["body"]) == {"error_code": "BAD_REQUEST", "message": "Model is broken"}
    assert _gist(b"x" * 5000).endswith(b"... (cut)") and len(_gist(b"x" * 5000)) <= 1024
    assert _gist(b"Request processing time exceeded limit") == (
        b"Request processing time exceeded limit"
    )
