"""The HTTP app `nlpflow serve` runs: MLflow's scoring server behind a guard.

    NLPFLOW_SERVE_MODEL=/path/to/downloaded/pyfunc \
        python -m uvicorn --factory nlpflow.serving.app:build_app --port 5001

MLflow's scoring server reads the whole body, parses it recursively and converts `inputs`
values with numpy's `str`, so `[null]`, `[3]` and `[true]` reached the model as the texts
"None", "3" and "True" (answered 200), a 100,000-deep JSON array was a 500 RecursionError, and
its error messages echo the request (a 5 MB text came back in the 400). The guard answers
those before MLflow sees the request:

- a body over `max_body_bytes` (from the model's max_batch and max_chars) is a 413, unread;
- JSON nested deeper than MAX_JSON_DEPTH is a 400, found without recursion;
- every text in any of MLflow's JSON payload forms must be a non-blank string within limits
  (the model's own check_texts, on the values as sent, before any conversion); a model
  trained on several fields (data.text_column [title, description]) takes records of them
  (`{"dataframe_records": [{"title": "...", "description": "..."}]}`), joined as gather
  joined them, and a record lacking one is a 400 naming it;
- error bodies from MLflow keep their code and the gist of their message, never the request.

A pure ASGI wrapper, so MLflow's routes, payload formats and timeout stay as they are.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from nlpflow.serving.shaping import InputShape

MODEL_PATH_ENV = "NLPFLOW_SERVE_MODEL"
MAX_JSON_DEPTH = 32  # the deepest payload form (dataframe_split) nests 3 levels
MAX_ERROR_BYTES = 1024
# JSON's worst case per character: \uXXXX, 6 bytes (Python's json.dumps escapes non-ASCII)
BYTES_PER_CHAR = 6
ROW_OVERHEAD = 64  # quotes, commas, a record's {"text": } per row
BODY_SLACK = 64 * 1024

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_MISSING = object()


class RejectedRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Limits:
    max_chars: int
    max_batch: int
    shape: InputShape = field(default_factory=InputShape)  # the fields it was trained on

    @property
    def max_body_bytes(self) -> int:
        """A full batch of the longest texts, each char at JSON's worst, fits; more cannot."""
        per_row = self.max_chars * BYTES_PER_CHAR + ROW_OVERHEAD
        return self.max_batch * per_row + BODY_SLACK


def json_depth(body: bytes) -> int:
    """How deep `body`'s arrays and objects nest, brackets inside strings not counted. Linear,
    no recursion: the strings are cut out by a C regex, then only brackets are walked."""
    brackets = _STRING.sub(b"", body).translate(None, delete=_NOT_BRACKETS)
    depth = deepest = 0
    for byte in brackets:
        depth += 1 if byte in b"[{" else -1
        deepest = max(deepest, depth)
    return deepest


_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def request_texts(payload: Any, shape: InputShape | None = None) -> list[Any] | None:
    """The values a request sends as texts, as parsed from JSON (None: not a shape this reads;
    MLflow then answers with its own message). A model trained on fields (`shape`) takes
    records of them: their texts are the fields joined as gather joined them, and a record
    without `text` that lacks a field is a RejectedRequest naming it."""
    shape = shape or InputShape()
    if not isinstance(payload, dict):
        return None
    for key in ("inputs", "instances"):
        if key in payload:
            return _texts_of(payload[key], shape)
    if isinstance(records := payload.get("dataframe_records"), list):
        return _column_of_records(records, shape)
    split = payload.get("dataframe_split")
    if isinstance(split, dict) and isinstance(split.get("data"), list):
        columns = split.get("columns")
        if not isinstance(columns, list):
            return None
        rows = split["data"]
        if not all(isinstance(row, list) and len(row) >= len(columns) for row in rows):
            return None
        return _column_of_records([dict(zip(columns, row, strict=False)) for row in rows], shape)
    return None


def _texts_of(value: Any, shape: InputShape) -> list[Any] | None:
    if isinstance(value, dict):  # {"text": [...]} (columnar) or {"text": "..."}
        if "text" not in value and shape.fields and not shape.missing(value):
            columns = {c: v if isinstance(v, list) else [v] for c, v in value.items()}
            if len({len(columns[c]) for c in shape.text_columns}) != 1:
                return None  # columns of unequal lengths: MLflow refuses them itself
            return _column_of_records(
                [dict(zip(shape.text_columns, row, strict=True))
                 for row in zip(*(columns[c] for c in shape.text_columns), strict=True)],
                shape,
            )  # fmt: skip
        if "text" not in value:
            if shape.fields:
                raise RejectedRequest(400, _lacks(shape, value, None))
            return None
        column = value["text"]
        return column if isinstance(column, list) else [column]
    if isinstance(value, list):
        if value and all(isinstance(item, dict) for item in value):
            return _column_of_records(value, shape)
        return value
    return [value]


def _column_of_records(records: list[Any], shape: InputShape) -> list[Any] | None:
    from nlpflow.data.text import join_fields

    if not all(isinstance(r, dict) for r in records):
        return None
    if all("text" in r for r in records) or not shape.fields:
        texts = [r.get("text", _MISSING) for r in records]
        return None if any(t is _MISSING for t in texts) else texts
    for number, record in enumerate(records):
        if "text" not in record and shape.missing(record):
            raise RejectedRequest(400, _lacks(shape, record, number))
    return [
        r["text"] if "text" in r else join_fields(r[c] for c in shape.text_columns) for r in records
    ]


def _lacks(shape: InputShape, record: dict[str, Any], number: int | None) -> str:
    where = f"record {number} (counting from 0)" if number is not None else "the request"
    missing = ", ".join(map(repr, shape.missing(record)))
    fields = ", ".join(f'"{c}": "..."' for c in shape.text_columns)
    return (
        f"{where} lacks field(s) {missing}: this model was trained on {shape.describe()}; "
        f'send every field, e.g. {{"dataframe_records": [{{{fields}}}]}}, or the joined text '
        'as {"inputs": {"text": ["..."]}}.'
    )


def check_body(body: bytes, limits: Limits) -> bytes:
    """RejectedRequest unless `body` is JSON, not too deep, whose texts check_texts accepts;
    the body to hand to MLflow: `body`, or for a model trained on fields a bare list of texts
    named as the `text` column (MLflow cannot tell which of several optional columns a bare
    list fills, and gave the model an empty frame)."""
    from nlpflow.serving.pyfunc import InvalidRequest, check_texts

    if (depth := json_depth(body)) > MAX_JSON_DEPTH:
        raise RejectedRequest(
            400,
            f"the JSON nests {depth:,} levels deep, more than {MAX_JSON_DEPTH}; send "
            '{"inputs": ["text", ...]}.',
        )
    try:
        payload = json.loads(body)
    except UnicodeDecodeError as exc:
        raise RejectedRequest(400, f"the body is not UTF-8 (byte {exc.start}).") from None
    except json.JSONDecodeError as exc:  # its message quotes no input, only where
        raise RejectedRequest(400, f"the body is not valid JSON: {exc}.") from None
    texts = request_texts(payload, limits.shape)
    if texts is None:
        return body
    try:
        check_texts(texts, max_chars=limits.max_chars, max_batch=limits.max_batch)
    except InvalidRequest as exc:
        raise RejectedRequest(400, str(exc)) from None
    for key in ("inputs", "instances"):
        listed = payload.get(key)
        bare = isinstance(listed, list) and not any(isinstance(i, dict) for i in listed)
        if limits.shape.fields and bare:
            return json.dumps({**payload, key: {"text": listed}}).encode()
    return body


class RequestGuard:
    """Checks POST /invocations bodies (see the module docstring), and shortens long error
    bodies of whatever answers; every other request goes straight to `app`."""

    def __init__(self, app: ASGIApp, limits: Limits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].rstrip("/") != "/invocations":
            await self.app(scope, receive, send)
            return
        try:
            body = await self._read_body(scope, receive)
            if scope["method"] == "POST" and _is_json(scope):
                body = check_body(body, self.limits)
        except RejectedRequest as exc:
            await _answer(send, exc.status, str(exc))
            return
        await self.app(scope, _replay(body), _short_errors(send))

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        limit = self.limits.max_body_bytes
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise self._too_large(int(declared))
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            size += len(chunk := message.get("body", b""))
            if size > limit:  # chunked, or a lying Content-Length: stop reading here
                raise self._too_large(size, at_least=True)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    def _too_large(self, size: int, *, at_least: bool = False) -> RejectedRequest:
        limits = self.limits
        return RejectedRequest(
            413,
            f"the request body has {'over ' if at_least else ''}{size:,} bytes, more than "
            f"{limits.max_body_bytes:,} (serve.max_batch={limits.max_batch:,} texts of "
            f"serve.max_chars={limits.max_chars:,}); send fewer or shorter texts per request.",
        )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1")).strip()
    return None


def _is_json(scope: Scope) -> bool:
    return (_header(scope, b"content-type") or "").split(";")[0].strip() == "application/json"


def _replay(body: bytes) -> Receive:
    """A receive that hands the app the body already read, then waits as uvicorn's would."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


def _short_errors(send: Send) -> Send:
    """`send`, except that an error's body is rewritten to its error code and the gist of its
    message: MLflow's messages quote the request ("Failed to predict data '<all of it>'") and
    some carry a traceback."""
    start: Message | None = None
    chunks: list[bytes] = []

    async def wrapped(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start" and message["status"] >= 400:
            start = message
            return
        if start is None or message["type"] != "http.response.body":
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            body = _gist(b"".join(chunks))
            headers = [(k, v) for k, v in start.get("headers", []) if k != b"content-length"]
            await send({**start, "headers": [*headers, (b"content-length", b"%d" % len(body))]})
            await send({"type": "http.response.body", "body": body})

    return wrapped


def _gist(body: bytes) -> bytes:
    """An error body without the request in it, at most about MAX_ERROR_BYTES."""
    try:
        error = json.loads(body)
    except ValueError:
        error = None
    if not isinstance(error, dict):  # e.g. MLflow's plain-text 415 and 504 bodies
        return body if len(body) <= MAX_ERROR_BYTES else body[: MAX_ERROR_BYTES - 16] + b"... (cut)"
    # MLflow's "Failed to predict data '<the request>'. \nError: <why>" and "Failed to enforce
    # schema of data '<the request>' with schema '...'. Error: <why>": the why, after the last.
    # An HTTP body has no exception type to read: its wording, as of MLflow 3.17, is all there is
    # (a body without "Error: " keeps its whole message, cut at 400 characters).
    message = str(error.get("message", "")).rpartition("Error: ")[2]
    if len(message) > 400:
        message = message[:400] + f"... ({len(message):,} characters, cut)"
    return json.dumps({"error_code": error.get("error_code"), "message": message}).encode()


async def _answer(send: Send, status: int, message: str) -> None:
    code = "INVALID_PARAMETER_VALUE" if status == 400 else "REQUEST_TOO_LARGE"
    body = json.dumps({"error_code": code, "message": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if status == 413:  # the rest of the body is unread: the connection cannot be reused
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def build_app() -> ASGIApp:
    """uvicorn's app factory: the pyfunc at $NLPFLOW_SERVE_MODEL in MLflow's scoring server,
    behind the guard with the limits the version was registered with."""
    import mlflow.pyfunc
    from mlflow.pyfunc import scoring_server

    from nlpflow.serving.pyfunc import served_config

    model = mlflow.pyfunc.load_model(os.environ[MODEL_PATH_ENV])
    config = served_config(model)
    limits = Limits(
        max_chars=int(config["max_chars"]), max_batch=int(config["max_batch"]),
        shape=InputShape.from_config(config),
    )  # fmt: skip
    app: ASGIApp = scoring_server.init(model)
    return RequestGuard(app, limits)
