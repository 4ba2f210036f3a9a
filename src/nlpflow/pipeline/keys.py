"""What a stage's cache key holds beyond its deps, params and code: the stage table names one
of these per stage (Stage.key_parts); None from one means the stage cannot be cached.

    source_parts(ctx)      # gather: the data source's content, or None (only a fetch can tell)
    pretrained_parts(ctx)  # train: the pretrained encoder it starts from
    registry_parts(ctx)    # register: where it registers (the same model elsewhere is new)
"""

from __future__ import annotations

from pathlib import Path

from nlpflow.hashing import hash_path
from nlpflow.pipeline.context import StageContext

KeyParts = dict[str, object]


def source_fingerprint(ctx: StageContext) -> str | None:
    """What gather reads, or None when only fetching it can tell (a query, an unpinned URL or
    dataset): gather then always runs, and the stages after it are keyed on its output."""
    from nlpflow.data.sources import source_fingerprint as fingerprint

    return fingerprint(ctx.params.data, resolve=ctx.settings.resolve_data)


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
