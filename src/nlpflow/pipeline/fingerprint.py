"""Content fingerprints: what a stage's cache key and the data-triggered skip are made of.

    from nlpflow.pipeline.fingerprint import stage_key
    stage_key(get_stage("train"), ctx)   # None: the stage cannot be cached (e.g. a SQL source)

A stage's key hashes, in this order of importance:
- the stage's name (two stages reading the same inputs must never share a cache entry);
- the content of every file it reads (its stage-table deps, the behavioural-test file its
  params point at);
- its own params sections, as the stage table lists them (train.lr changes train, not gather);
- its code: the nlpflow files its module imports, directly or not (Stage.code_version), the
  same files dvc.yaml lists as its deps, so both runners re-run the same stages on a change;
- what its row's key_parts add (gather's data source, train's pretrained encoder, register's
  registry: nlpflow.pipeline.keys).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nlpflow.hashing import ABSENT, digest, hash_path
from nlpflow.pipeline.keys import source_fingerprint
from nlpflow.pipeline.paths import BEHAVIOURAL
from nlpflow.pipeline.stages import STAGES, Stage, StageContext

__all__ = [
    "ABSENT", "code_version", "hash_outputs", "hash_path", "params_fingerprint",
    "section_values", "source_fingerprint", "stage_inputs", "stage_key",
]  # fmt: skip


def hash_outputs(stage: Stage, root: Path) -> dict[str, str]:
    return {out: hash_path(root / out) for out in stage.outs}


def code_version(code_root: Path | None = None) -> str:
    """sha256 of the pipeline's code: every stage's code files (Stage.code_files)."""
    return digest({stage.name: stage.code_version(code_root) for stage in STAGES})


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
        if dep == BEHAVIOURAL:  # the stage reads the file its params name, if any
            chosen = ctx.params.evaluate.behavioural
            inputs[dep] = hash_path(ctx.path(chosen)) if chosen else ABSENT
        else:
            inputs[dep] = hash_path(ctx.path(dep))
    return inputs


def stage_key(stage: Stage, ctx: StageContext, *, code_root: Path | None = None) -> str | None:
    """The stage's cache key, or None when it must always run. `code_root`: the nlpflow
    package folder whose code is hashed (default: the one that runs)."""
    parts: dict[str, Any] = {
        "stage": stage.name,
        "inputs": stage_inputs(stage, ctx),
        "params": section_values(ctx, stage.params),
        "code": stage.code_version(code_root),
    }
    if stage.key_parts is not None:
        extra = stage.key_parts(ctx)
        if extra is None:
            return None
        parts |= extra
    return f"{stage.name}-{digest(parts)}"


def params_fingerprint(ctx: StageContext) -> str:
    """sha256 of every params section a stage reads (not schedule, inference or sweep)."""
    sections = sorted({s.split(".")[0] for stage in STAGES for s in stage.params})
    return digest(section_values(ctx, tuple(sections)))
