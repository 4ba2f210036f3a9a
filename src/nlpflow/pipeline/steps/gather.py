"""The gather stage: the data source, read into splits under data/gathered."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from nlpflow.pipeline.context import StageContext
from nlpflow.pipeline.paths import GATHERED, HTTP_CACHE, SQL_SNAPSHOT


def run(ctx: StageContext) -> BaseModel:
    from nlpflow.data.gather import gather

    local, params = _local_source(ctx)
    report = gather(
        source=local, dst=ctx.path(GATHERED), params=params, task=ctx.params.task,
        runtime=ctx.params.runtime,
    )  # fmt: skip
    ctx.log_metrics({f"data/rows_{split}": n for split, n in report.rows.items()})
    if ctx.tracker is not None and ctx.run_id is not None:
        tags = {"data.source_sha256": report.source_sha256}
        if report.sampled is not None:  # a run on a sample says so beside its figures
            import json

            tags["data.sample"] = json.dumps(report.sampled, sort_keys=True)
        ctx.tracker.set_tags(ctx.run_id, tags)
    return report


def _local_source(ctx: StageContext) -> tuple[Path, Any]:
    """The file gather reads: a download, a snapshot of a query's rows or of a Hugging Face
    dataset's splits, or the path itself (nlpflow.data.sources.fetch_source, by the kind)."""
    from nlpflow.data.sources import fetch_source
    from nlpflow.data.streaming.gather import sql_chunk_rows

    return fetch_source(
        ctx.params.data, root=ctx.root, resolve=ctx.settings.resolve_data,
        http_cache=ctx.path(HTTP_CACHE), sql_snapshot=ctx.path(SQL_SNAPSHOT),
        chunk_rows=sql_chunk_rows(ctx.params.runtime),
    )  # fmt: skip
