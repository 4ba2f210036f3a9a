"""One reading of what kind of source a string names, used by gather, its cache key, DVC and
MLflow alike (nlpflow.config.source_kinds)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nlpflow.config.params import DataParams, parse_params
from nlpflow.config.settings import Settings
from nlpflow.config.source_kinds import dvc_can_track, source_kind
from nlpflow.data.sources import source_fingerprint
from nlpflow.tracking.datasets import dataset_source

KINDS = {
    "https://example.org/t.csv": "http",
    "http://example.org/t.csv?x=1": "http",
    "hf:imdb": "hf",
    "hf:nyu-mll/glue": "hf",
    "postgresql://me@db/shop": "sql",
    "postgres://me@db/shop": "sql",
    "postgresql+psycopg://me@db/shop": "sql",
    "sqlite:///data/x.db": "sql",
    "data/drops/*.csv": "glob",
    "data/tickets.csv": "path",
    "data/folder": "path",
}


@pytest.mark.parametrize(("source", "kind"), KINDS.items())
def test_each_source_has_one_kind(source: str, kind: str) -> None:
    assert source_kind(source) == kind
    # DVC tracks files, folders and plain URLs; not globs, databases, datasets, nor a '?'
    assert dvc_can_track(source) == (kind == "path" or source == "https://example.org/t.csv")


def test_every_kind_fingerprints_and_shows_in_mlflow_as_before(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("text,label\na,x\n")
    settings = Settings(project_dir=tmp_path)
    shown = {}
    for source in ("https://h/t.csv", "hf:imdb", "postgresql://me@db/shop", "t.csv"):
        params = parse_params({"data": {"source": source, "query": "SELECT 1"}})
        shown[source] = dataset_source(params, settings)
    assert shown["https://h/t.csv"] == ("http", json.dumps({"url": "https://h/t.csv"}))
    assert shown["hf:imdb"][0] == "hugging_face"
    assert json.loads(shown["hf:imdb"][1])["path"] == "imdb"
    assert shown["postgresql://me@db/shop"] == (
        "external", json.dumps({"url": "postgresql://me@db/shop", "query": "SELECT 1"})
    )  # fmt: skip
    assert shown["t.csv"] == ("local", json.dumps({"uri": str(tmp_path / "t.csv")}))

    def fingerprint(**data: object) -> str | None:
        return source_fingerprint(DataParams(**data), resolve=settings.resolve_data)

    assert fingerprint(source="https://h/t.csv") is None  # unpinned: only a download can tell
    assert fingerprint(source="https://h/t.csv", sha256="a" * 64) == f"sha256:{'a' * 64}"
    assert fingerprint(source="hf:imdb", hf_revision="abc") == "hf:imdb@abc"
    assert fingerprint(source="postgresql://me@db/shop") is None
    local = fingerprint(source="t.csv")
    assert local is not None and local == fingerprint(source=str(tmp_path / "t.csv"))


def test_postgres_and_postgresql_urls_are_read_alike() -> None:
    from nlpflow.config.naming import dataset_name
    from nlpflow.config.secrets import find_secret, redact, without_secrets
    from nlpflow.data.sources import build_engine

    seen = []
    for scheme in ("postgres", "postgresql"):
        url = f"{scheme}://me:Pw1@db:5432/shop"
        engine = build_engine(f"{scheme}://me@db:5432/shop", password="Pw1")  # one builder
        seen.append((
            source_kind(url), dataset_name(url), find_secret(url),
            redact(url).removeprefix(scheme), without_secrets(url).removeprefix(scheme),
            engine.url.drivername, engine.url.host, engine.url.database, engine.url.password,
        ))  # fmt: skip
    assert seen[0] == seen[1]
    assert seen[0][:3] == ("sql", "shop", "a password")
    assert seen[0][5:] == ("postgresql+psycopg", "db", "shop", "Pw1")
