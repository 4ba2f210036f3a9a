"""Reading the rows to score, in chunks of bounded size: a file as a stream
(nlpflow.data.chunked), a table or query through a server-side cursor. The input is only ever
read.

    for frame in iter_chunks(plan, rows=50_000):
        ...
    frame = read_rows(plan)     # all of it at once (small inputs, tests)

A table is read in the order of its id column (inference.id_column) when it has one, so that
the chunks of a rerun are the chunks of the run it resumes; a query in its own order (give it
an ORDER BY for a resumable run).
"""

from __future__ import annotations

from collections.abc import Iterator
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
    parts = list(iter_chunks(plan, rows=1 << 62))
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def iter_chunks(
    plan: InferencePlan, *, rows: int, columns: list[str] | None = None
) -> Iterator[pd.DataFrame]:
    """The rows to score, `rows` at a time, in input order; at least one (maybe empty) frame.
    `columns`: only these (when the source can leave the others unread)."""
    if not plan.is_database:
        names = plan.input_shape.columns  # a headerless file's, as the model was trained
        yield from _file_chunks(
            Path(plan.source), rows=rows, columns=columns, names=list(names) if names else None
        )
        return
    yield from _sql_chunks(plan, rows=rows, columns=columns)


def _sql_chunks(
    plan: InferencePlan, *, rows: int, columns: list[str] | None
) -> Iterator[pd.DataFrame]:
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
                have = [c["name"] for c in sa.inspect(connection).get_columns(table, schema)]
                quote = engine.dialect.identifier_preparer.quote
                wanted = [c for c in columns if c in have] if columns is not None else have
                # no column at all: the checks report the missing one, naming the table's
                sql = f"SELECT {', '.join(map(quote, wanted or have))} FROM {_quoted(engine, plan.table)}"
                if plan.id_column in have:  # the same chunks in every run: a rerun resumes
                    sql += f" ORDER BY {quote(plan.id_column)}"
            else:
                sql = str(plan.query)
            # a server-side cursor: the database hands over `rows` rows at a time
            streaming = connection.execution_options(stream_results=True, max_row_buffer=rows)
            empty = True
            for frame in pd.read_sql_query(sa.text(sql), streaming, dtype=object, chunksize=rows):
                empty = False
                yield frame if columns is None else frame[[c for c in columns if c in frame]]
            if empty:  # no rows: the columns, for the checks to see
                result = connection.execute(sa.text(f"SELECT * FROM ({sql}) AS q WHERE 1 = 0"))
                yield pd.DataFrame(columns=list(result.keys()), dtype=object)
    except sa.exc.OperationalError as exc:  # cannot connect, server gone: worth a retry
        raise SourceUnavailableError(
            f"database {plan.shown_source} unavailable: {exc.orig}"
        ) from None
    except (sa.exc.DBAPIError, pd.errors.DatabaseError) as exc:  # the SQL is wrong
        detail = getattr(exc, "orig", None) or getattr(exc.__cause__, "orig", None) or exc
        raise DataSourceError(f"{what} failed on {plan.shown_source}: {detail}") from None
    finally:
        engine.dispose()


def _file_chunks(
    path: Path, *, rows: int, columns: list[str] | None, names: list[str] | None = None
) -> Iterator[pd.DataFrame]:
    """gather's readers: a small file read whole (read_table, with its detailed messages) and
    cut, a larger one streamed (nlpflow.data.streaming.reading.iter_table, the same values).
    `names`: the columns of a csv/tsv file without a header row (gather's data.columns)."""
    from nlpflow.config.params import DataParams
    from nlpflow.data.reading import plain_name, read_table, refuse_special
    from nlpflow.data.streaming.reading import iter_table

    if not path.exists():  # a FIFO or device exists: the reader refuses it, saying what it is
        raise DataSourceError(f"inference.source {path} does not exist: check the path.")
    refuse_special(path)
    fmt = INPUT_FORMATS[plain_name(path).suffix.lower()]
    params = DataParams(columns=names)
    if path.stat().st_size < WHOLE_BELOW_BYTES:
        whole = read_table(path, fmt, params)
        frames: Iterator[pd.DataFrame] = (
            whole.iloc[start : start + rows].reset_index(drop=True)
            for start in range(0, max(len(whole), 1), rows)
        )
    else:
        frames = iter_table(path, fmt, params, rows)
    empty = True
    for frame in frames:
        empty = False
        yield frame if columns is None else frame[[c for c in columns if c in frame.columns]]
    if empty:
        yield pd.DataFrame(dtype=object)


# A file this small is read whole (by gather's reader, with its detailed messages), then cut
# into chunks; a larger one is streamed. A module global so that tests can stream small files.
WHOLE_BELOW_BYTES = 32 * 1024 * 1024
