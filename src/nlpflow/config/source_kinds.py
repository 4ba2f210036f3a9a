"""What kind of source a `data.source` (or `inference.source`) string names: the one dispatch.

    source_kind("https://h/t.csv")        # "http"
    source_kind("hf:imdb")                # "hf"
    source_kind("postgresql://me@db/x")   # "sql"
    source_kind("data/drops/*.csv")       # "glob"
    source_kind("data/tickets.csv")       # "path" (a file or a folder)

Pure string tests, no I/O and no heavy imports, so params validation, gather, the stage
fingerprint, tracking and batch inference all read a source the same way (each used to test
the kinds itself, in its own order).
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlparse

SourceKind = Literal["http", "hf", "sql", "glob", "path"]

HF_PREFIX = "hf:"
DATABASE_SCHEMES = ("postgresql", "postgres", "mysql", "mariadb", "sqlite", "mssql", "oracle")
# The source type MLflow's dataset records show for each kind.
MLFLOW_SOURCE_TYPES: dict[SourceKind, str] = {
    "hf": "hugging_face", "http": "http", "sql": "external", "glob": "local", "path": "local",
}  # fmt: skip


def is_url(source: str) -> bool:
    return urlparse(source).scheme in {"http", "https"}


def is_hf(source: str) -> bool:
    return source.startswith(HF_PREFIX)


def is_database_url(source: str) -> bool:
    return urlparse(source).scheme.split("+")[0] in DATABASE_SCHEMES


def is_glob(source: object) -> bool:
    """A path (str or Path) with a wildcard: it names every file it matches."""
    return any(ch in str(source) for ch in "*?[")


def source_kind(source: str) -> SourceKind:
    """The kind of `source`; the first test that matches wins, in this order."""
    if is_url(source):
        return "http"
    if is_hf(source):
        return "hf"
    if is_database_url(source):
        return "sql"
    if is_glob(source):
        return "glob"
    return "path"


def dvc_can_track(source: str) -> bool:
    """DVC takes files, folders and http(s) URLs as dependencies; not globs, databases or
    Hugging Face ids (DVC would look for a local file named `hf:imdb`)."""
    return source_kind(source) in {"http", "path"} and not is_glob(source)  # a URL with ?query
