"""Content fingerprints: what a stage's cache key and the data-triggered skip are made of.

    from nlpflow.pipeline.fingerprint import stage_key, hash_path
    stage_key(get_stage("train"), ctx)   # None: the stage cannot be cached (e.g. a SQL source)

A stage's key hashes, in this order of importance:
- the stage's name (two stages reading the same inputs must never share a cache entry);
- the content of every file it reads (its stage-table deps, the data source for gather, the
  behavioural-test file evaluate is pointed at, a local pretrained encoder for train);
- its own params sections, as the stage table lists them (train.lr changes train, not gather);
- the code version: every source file of nlpflow and of its Prefect tasks. Any code change
  re-runs every stage: a stage's behaviour depends on modules it imports indirectly, and a
  stale model is far worse than one extra run.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

from nlpflow.pipeline.stages import BEHAVIOURAL, STAGES, Stage, StageContext

ABSENT = "absent"
# (path, size, mtime_ns, inode) -> sha256: re-hashing an unchanged 90 MB model is the bulk
# of a no-op re-run otherwise. A file rewritten in place keeps its inode but not its mtime.
_FILE_MEMO: dict[tuple[str, int, int, int], str] = {}


def _hash_file(path: Path) -> str:
    stat = path.stat()
    memo_key = (str(path), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    found = _FILE_MEMO.get(memo_key)
    if found is None:
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        found = _FILE_MEMO[memo_key] = digest.hexdigest()
    return found


def hash_path(path: Path) -> str:
    """sha256 of a file, or of a folder's relative file names and contents; ABSENT if missing."""
    if path.is_file():
        return _hash_file(path)
    if not path.is_dir():
        return ABSENT
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        digest.update(_hash_file(file).encode())
    return digest.hexdigest()


def hash_outputs(stage: Stage, root: Path) -> dict[str, str]:
    return {out: hash_path(root / out) for out in stage.outs}


@cache
def code_version() -> str:
    """sha256 of every .py file of the nlpflow package (its Prefect tasks included)."""
    import nlpflow

    digest = hashlib.sha256()
    base = Path(nlpflow.__file__).parent
    for file in sorted(base.rglob("*.py")):
        digest.update(f"nlpflow/{file.relative_to(base).as_posix()}\0".encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


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
        return _digest({str(p): hash_path(p) for p in sorted(path.parent.glob(path.name))})
    return hash_path(path)


def _pretrained_fingerprint(spec: str) -> str:
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


def section_values(ctx: StageContext, sections: tuple[str, ...]) -> dict[str, Any]:
    """The values of dotted params sections ("train", "train.seed") as the stage reads them."""
    tree = ctx.params.to_dict()
    values: dict[str, Any] = {}
    for dotted in sections:
        node: Any = tree
        for part in dotted.split("."):
            node = node[part]
        values[dotted] = node
    return values


def stage_inputs(stage: Stage, ctx: StageContext) -> dict[str, str]:
    """Fingerprint of every file the stage reads."""
    inputs = {}
    for dep in stage.deps:
        if dep == BEHAVIOURAL:  # evaluate reads the file its params name, if any
            chosen = ctx.params.evaluate.behavioural
            inputs[dep] = hash_path(ctx.path(chosen)) if chosen else ABSENT
        else:
            inputs[dep] = hash_path(ctx.path(dep))
    if stage.name == "train":
        inputs["train.pretrained"] = _pretrained_fingerprint(ctx.params.train.pretrained)
    return inputs


def stage_key(stage: Stage, ctx: StageContext) -> str | None:
    """The stage's cache key, or None when it must always run."""
    parts: dict[str, Any] = {
        "stage": stage.name,
        "inputs": stage_inputs(stage, ctx),
        "params": section_values(ctx, stage.params),
        "code": code_version(),
    }
    if stage.name == "gather":
        source = source_fingerprint(ctx)
        if source is None:
            return None
        parts["source"] = source
    if stage.name == "register":  # the same model registered into another registry is new
        parts["registry"] = [ctx.settings.resolved_tracking_uri, ctx.settings.registered_model]
    return f"{stage.name}-{_digest(parts)}"


def params_fingerprint(ctx: StageContext) -> str:
    """sha256 of every params section a stage reads (not schedule, inference or sweep)."""
    sections = sorted({s.split(".")[0] for stage in STAGES for s in stage.params})
    return _digest(section_values(ctx, tuple(sections)))


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
