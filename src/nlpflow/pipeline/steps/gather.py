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
    report = gather(source=local, dst=ctx.path(GATHERED), params=params)
    ctx.log_metrics({f"data/rows_{split}": n for split, n in report.rows.items()})
    if ctx.tracker is not None and ctx.run_id is not None:
        ctx.tracker.set_tags(ctx.run_id, {"data.source_sha256": report.source_sha256})
    return report


def _local_source(ctx: StageContext) -> tuple[Path, Any]:
    """The file gather reads: a download, a snapshot of a query's rows or of a Hugging Face
    dataset's splits, or the path itself."""
    from nlpflow.data.sources import (
        fetch_http,
        is_database_url,
        is_hf,
        is_url,
        read_sql,
        snapshot_hf,
    )
    from nlpflow.errors import DataSourceError

    data = ctx.params.data
    if is_url(data.source):
        return fetch_http(data.source, cache=ctx.path(HTTP_CACHE), sha256=data.sha256), data
    if is_hf(data.source):
        snapshot, fingerprints = snapshot_hf(
            data.source, root=ctx.root, resolve=ctx.settings.resolve_data,
            config=data.hf_config, revision=data.hf_revision,
        )  # fmt: skip
        return snapshot, data.model_copy(
            update={"format": "parquet", "hf_fingerprint": fingerprints}
        )
    if not is_database_url(data.source):
        return ctx.settings.resolve_data(data.source), data
    frame, cutoff = read_sql(
        data.source, query=data.query, timestamp_column=data.timestamp_column, cutoff=data.cutoff
    )
    if frame.empty:
        raise DataSourceError(
            f"data.query returned no rows (cut-off {cutoff}): nothing to train on."
        )
    snapshot = ctx.path(SQL_SNAPSHOT)
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(snapshot, index=False)
    # the manifest records the cut-off actually used, so the snapshot can be gathered again
    return snapshot, data.model_copy(update={"cutoff": cutoff, "format": "parquet"})
