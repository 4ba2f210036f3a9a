"""Remote sources gather reads from: http(s) downloads with a sha256 pin and a local cache.

A download goes to `<cache>/<sha256 of the URL>/<file name>`. With a pin, a cached file that
matches is used without touching the network; a download that does not match is an error (the
server's file changed). Server failures (5xx, timeouts) raise SourceUnavailableError, which the
Prefect gather task retries with backoff; 4xx answers are the user's to fix and are not retried.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from nlpflow.errors import DataSourceError, SourceUnavailableError

TIMEOUT_S = 60


def is_url(source: str) -> bool:
    return urlparse(source).scheme in {"http", "https"}


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_http(url: str, *, cache: Path, sha256: str | None = None) -> Path:
    """The local copy of `url`, downloaded unless a pinned copy is already cached."""
    name = PurePosixPath(urlparse(url).path).name or "download"
    target = cache / hashlib.sha256(url.encode()).hexdigest()[:16] / name
    if sha256 is not None and target.exists() and _digest(target) == sha256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=target.parent, prefix=".partial-")
    try:
        with (
            os.fdopen(handle, "wb") as out,
            urllib.request.urlopen(url, timeout=TIMEOUT_S) as answer,
        ):
            for block in iter(lambda: answer.read(1 << 20), b""):
                out.write(block)
        got = _digest(Path(partial))
        if sha256 is not None and got != sha256:
            raise DataSourceError(
                f"{url} has sha256 {got}, but data.sha256 pins {sha256}: the server's file "
                "changed. Check it, then update the pin (or remove it to accept any content)."
            )
        os.replace(partial, target)  # a reader never sees half a file
    except urllib.error.HTTPError as exc:
        if exc.code >= 500:
            raise SourceUnavailableError(
                f"{url} answered {exc.code} {exc.reason}; will retry."
            ) from None
        raise DataSourceError(
            f"{url} answered {exc.code} {exc.reason}: check data.source."
        ) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SourceUnavailableError(
            f"{url} could not be reached ({reason}); will retry."
        ) from None
    finally:
        Path(partial).unlink(missing_ok=True)
    return target
