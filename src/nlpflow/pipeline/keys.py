"""What a stage's cache key holds beyond its deps, params and code: the stage table names one
of these per stage (Stage.key_parts); None from one means the stage cannot be cached.

    source_parts(ctx)      # gather: the data source's content, or None (only a fetch can tell)
    pretrained_parts(ctx)  # train: the pretrained encoder it starts from
    registry_parts(ctx)    # register: where it registers (the same model elsewhere is new)
"""

from __future__ import annotations

from pathlib import Path

from nlpflow.hashing import digest, hash_path
from nlpflow.pipeline.context import StageContext

KeyParts = dict[str, object]


def source_fingerprint(ctx: StageContext) -> str | None:
    """What gather reads, or None when only fetching it can tell (a query, an unpinned URL or
    dataset): gather then always runs, and the stages after it are keyed on its output."""
    from nlpflow.data.gather import is_glob
    from nlpflow.data.sources import is_database_url, is_hf, is_url

    data = ctx.params.data
    if is_url(data.source):
        return f"sha256:{data.sha256}" if data.sha256 else None
    if is_hf(data.source):
        return f"{data.source}@{data.hf_revision}" if data.hf_revision else None
    if is_database_url(data.source):
        return None
    path = ctx.settings.resolve_data(data.source)
    if is_glob(path):
        return digest({str(p): hash_path(p) for p in sorted(path.parent.glob(path.name))})
    return hash_path(path)


def source_parts(ctx: StageContext) -> KeyParts | None:
    source = source_fingerprint(ctx)
    return None if source is None else {"source": source}


def pretrained_fingerprint(spec: str) -> str:
    """A local encoder folder by content, an installed package by version, a hub id as is."""
    if spec.startswith("pkg:"):
        from importlib.metadata import PackageNotFoundError, version

        name = spec.removeprefix("pkg:")
        try:
            return f"{spec}=={version(name.replace('_', '-'))}"
        except PackageNotFoundError:
            return spec
    path = Path(spec).expanduser()
    return hash_path(path) if path.is_dir() else spec


def pretrained_parts(ctx: StageContext) -> KeyParts:
    return {"pretrained": pretrained_fingerprint(ctx.params.train.pretrained)}


def registry_parts(ctx: StageContext) -> KeyParts:
    return {"registry": [ctx.settings.resolved_tracking_uri, ctx.settings.registered_model]}
