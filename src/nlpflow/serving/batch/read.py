"""Reading the rows to score: the whole file, or the table's (or query's) rows. The input is
only ever read.

    frame = read_rows(plan)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from nlpflow.data.sources import build_engine
from nlpflow.errors import DataSourceError, SourceUnavailableError
from nlpflow.serving.batch.plan import INPUT_FORMATS, InferencePlan, split_table


def _quoted(engine: Any, name: str) -> str:
    quote = engine.dialect.identifier_preparer.quote
    schema, table = split_table(name)
    return f"{quote(schema)}.{quote(table)}" if schema else quote(table)


def read_rows(plan: InferencePlan) -> pd.DataFrame:
    """The rows to score, every column as read (SQL values as Python objects)."""
    if not plan.is_database:
        return _read_file(Path(plan.source))
    import sqlalchemy as sa

    engine = build_engine(plan.source)  # gather's too: one reading of database URLs
    what = f"inference.table {plan.table!r}" if plan.table else "inference.query"
    try:
        with engine.connect() as connection:
            if plan.table is not None:
                schema, table = split_table(plan.table)
                if not sa.inspect(connection).has_table(table, schema=schema):
                    raise DataSourceError(
                        f"{what} does not exist in {plan.shown_source.split(' ')[0]}: "
                        "check the name (schema.table for another schema)."
                    )
                sql = f"SELECT * FROM {_quoted(engine, plan.table)}"
            else:
                sql = str(plan.query)
            return pd.read_sql_query(sa.text(sql), connection, dtype=object)
    except sa.exc.OperationalError as exc:  # cannot connect, server gone: worth a retry
        raise SourceUnavailableError(
            f"database {plan.shown_source} unavailable: {exc.orig}"
        ) from None
    except (sa.exc.DBAPIError, pd.errors.DatabaseError) as exc:  # the SQL is wrong
        detail = getattr(exc, "orig", None) or getattr(exc.__cause__, "orig", None) or exc
        raise DataSourceError(f"{what} failed on {plan.shown_source}: {detail}") from None
    finally:
        engine.dispose()


def _read_file(path: Path) -> pd.DataFrame:
    from nlpflow.config.params import DataParams
    from nlpflow.data.reading import plain_name, read_table  # gather's reader (and messages)

    if not path.exists():  # a FIFO or device exists: read_table refuses it, saying what it is
        raise DataSourceError(f"inference.source {path} does not exist: check the path.")
    return read_table(path, INPUT_FORMATS[plain_name(path).suffix.lower()], DataParams())
