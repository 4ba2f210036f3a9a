"""What a stage's cache key holds beyond its deps, params and code: the stage table names one
of these per stage (Stage.key_parts); None from one means the stage cannot be cached.

    source_parts(ctx)      # gather: the data source's content, or None (only a fetch can tell)
    train_parts(ctx)       # train: the pretrained encoder it starts from, its rules file
    baseline_parts(ctx)    # baseline: the rules file of a rules baseline
    registry_parts(ctx)    # register: where it registers, the hybrid rules file it ships

A rules file is read by the stage whose family is rules (train.rules.patterns) and by register
for hybrid serving (serve.rules): its content is part of the key, so an edited file re-runs
them. dvc.yaml cannot list such a file, since params choose it (and may leave it null), so
under `dvc repro` an edit without a params change re-runs nothing: docs/training.md says so.
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


def _file_part(ctx: StageContext, name: str, relative: str | None) -> KeyParts:
    """{name: the file's content hash} for a file a param names; {} for none, so keys of
    stages that read no such file stay what they were."""
    return {} if relative is None else {name: hash_path(ctx.path(relative))}


def rules_parts(ctx: StageContext, family: str) -> KeyParts:
    """The rules file of `family` when it is rules (train.rules.patterns)."""
    reads = family == "rules"
    return _file_part(ctx, "rules", ctx.params.train.rules.patterns if reads else None)


def train_parts(ctx: StageContext) -> KeyParts:
    return pretrained_parts(ctx) | rules_parts(ctx, ctx.params.train.family)


def baseline_parts(ctx: StageContext) -> KeyParts:
    return rules_parts(ctx, ctx.params.baseline_family)


def registry_parts(ctx: StageContext) -> KeyParts:
    from nlpflow.config.naming import registered_model_name

    name = registered_model_name(ctx.params, ctx.settings.registered_model).name
    where = {"registry": [ctx.settings.resolved_tracking_uri, name]}
    return where | _file_part(ctx, "serve_rules", ctx.params.serve.rules)
