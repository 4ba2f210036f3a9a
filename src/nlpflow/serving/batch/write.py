"""Writing the predictions and the rejected rows: files replaced whole (atomically), or rows
appended to tables of the source database in one transaction.

    written = write_outputs(plan, predictions, rejected)   # location -> rows
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd

from nlpflow.data.sources import build_engine
from nlpflow.errors import DataSourceError, SourceUnavailableError
from nlpflow.serving.batch.plan import OUTPUT_FORMATS, InferencePlan, split_table


def write_outputs(
    plan: InferencePlan, predictions: pd.DataFrame, rejected: pd.DataFrame
) -> dict[str, int]:
    """Write the predictions and the rejected rows; rows written per location.

    Files are replaced whole (the rejected file too, even when empty: it says "none" and no
    earlier run's file lingers); tables get the rows appended, both in one transaction.
    """
    target = plan.target
    if target.kind == "file":
        _write_file(predictions, Path(target.predictions))
        _write_file(rejected, Path(target.rejected))
        return {target.predictions: len(predictions), target.rejected: len(rejected)}
    return _append_tables(plan, {target.predictions: predictions, target.rejected: rejected})


def _write_file(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    os.close(handle)
    try:
        fmt = OUTPUT_FORMATS[path.suffix.lower()]
        if fmt == "parquet":
            frame.to_parquet(partial, index=False)
        elif fmt == "jsonl":
            frame.to_json(
                partial, orient="records", lines=True, date_format="iso", force_ascii=False
            )
        else:
            frame.to_csv(partial, index=False)
        os.replace(partial, path)  # a reader never sees half a file
    finally:
        Path(partial).unlink(missing_ok=True)


def _append_tables(plan: InferencePlan, frames: dict[str, pd.DataFrame]) -> dict[str, int]:
    import sqlalchemy as sa

    engine = build_engine(plan.source)
    written: dict[str, int] = {}
    try:
        with engine.begin() as connection:  # both tables or neither
            inspector = sa.inspect(connection)
            for name, frame in frames.items():
                schema, table = split_table(name)
                if inspector.has_table(table, schema=schema):
                    have = {c["name"] for c in inspector.get_columns(table, schema=schema)}
                    extra = [c for c in frame.columns if c not in have]
                    if extra:
                        raise DataSourceError(
                            f"output table {name!r} exists without column(s) {extra} (a model "
                            "with other labels, or another id column?): set inference.output to "
                            "a new table, or add the columns."
                        )
                if len(frame):
                    frame.to_sql(table, connection, schema=schema, if_exists="append",
                                 index=False, chunksize=1000)  # fmt: skip
                written[name] = len(frame)
    except sa.exc.OperationalError as exc:
        raise SourceUnavailableError(
            f"database {plan.shown_source} unavailable: {exc.orig}"
        ) from None
    except sa.exc.DBAPIError as exc:
        raise DataSourceError(
            f"writing predictions to {plan.shown_source} failed: {exc.orig}. Nothing was written."
        ) from None
    finally:
        engine.dispose()
    return written
