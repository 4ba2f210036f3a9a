"""Batch inference: score a file or a SQL table with one registered model version.

    nlpflow infer --set inference.source=postgresql://me@db/shop --set inference.table=tickets \\
                  --set inference.id_column=id --set inference.output=ticket_predictions

Each step is one function here and one task in `tasks/inference.py`:

1. `plan_inference`: where the rows come from and where predictions go; refuses to write into
   the input (table or file).
2. `resolve_model` + `load_version`: the alias is resolved to a version number once, and that
   version is loaded (`models:/NAME/<version>`), so every row is scored by the same model even
   if the alias moves while the run goes on.
3. `read_rows`: the whole file, or the table / query's rows.
4. `validate_rows`: Great Expectations checks the text column (present, not null, not blank,
   at most the model's max_chars) and the id column (present, not null, unique). Failing rows
   stop the run (`on_invalid: fail`) or are set aside with their reasons (`skip`).
5. `score_rows`: the registered pyfunc, in batches of `batch_size` (at most the model's
   max_batch).
6. `write_outputs`: predictions (a file by extension, or rows appended to a table of the same
   database) and the rejected rows beside them, each with model version, run id and timestamp.
7. `build_report` / `log_report`: counts, to the MLflow experiment `<register.experiment>-inference`.

The input is only ever read.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel

from nlpflow.config.params import Params, flatten
from nlpflow.config.settings import Settings
from nlpflow.data.sources import is_database_url
from nlpflow.errors import (
    DataSourceError,
    DataValidationError,
    ModelError,
    ParamsError,
    SourceUnavailableError,
    TrackingError,
)
from nlpflow.serving.pyfunc import ModelRef
from nlpflow.tracking.tracker import Tracker

ROW = "row"  # the row's position in the input as read (0-based): the join key without an id
OUTPUT_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".parquet": "parquet"}
INPUT_FORMATS = OUTPUT_FORMATS | {".tsv": "tsv"}
META_COLUMNS = ("model_name", "model_version", "scored_at", "run_id")
REJECT_COLUMNS = ("checks", "expectations", "reasons")
RESERVED = {ROW, "label", "score", *META_COLUMNS, *REJECT_COLUMNS}
_GX_ROW = "__nlpflow_row__"  # GX reports offending rows by this column; no user column clashes
# whether the text value as read is a string (or missing): a number or a boolean would pass the
# other checks once turned into text, so the type is checked on this column, then dropped
_GX_IS_STRING = "__nlpflow_text_is_string__"
EXAMPLES = 5  # rows shown per failed check in an on_invalid=fail error


# ------------------------------------------------------------------------------ plan


@dataclass(frozen=True)
class Target:
    """Where predictions (and the rejected rows) go: files, or tables of the source database."""

    kind: Literal["file", "table"]
    predictions: str  # absolute file path, or [schema.]table
    rejected: str

    def describe(self) -> str:
        return self.predictions if self.kind == "file" else f"table {self.predictions}"


@dataclass(frozen=True)
class InferencePlan:
    source: str  # absolute file path, or the database URL
    is_database: bool
    table: str | None
    query: str | None
    text_column: str
    id_column: str | None
    target: Target
    model_name: str
    model_alias: str
    batch_size: int
    on_invalid: Literal["fail", "skip"]
    max_chars: int  # used when the registered version carries no serving limits
    max_batch: int
    experiment: str
    scored_at: datetime = field(default_factory=lambda: datetime.now(UTC))  # one per run

    @property
    def shown_source(self) -> str:
        """The source as it may be logged: a database URL without its password."""
        from nlpflow.config.secrets import redact

        if not self.is_database:
            return redact(self.source)
        return f"{redact(self.source)} {'table ' + self.table if self.table else 'query'}"


def plan_inference(params: Params, settings: Settings) -> InferencePlan:
    """Check the `inference` params against each other and resolve paths; no I/O."""
    p = params.inference
    if not p.source:
        raise ParamsError(
            "inference.source is not set: give the file to score (csv, tsv, jsonl, parquet) "
            "or a database URL, e.g. --set inference.source=postgresql://user@host/db"
        )
    is_db = is_database_url(p.source)
    if is_db and not (p.table or p.query):
        raise ParamsError(
            f"inference.source {p.source!r} is a database: set inference.table (or inference.query)."
        )
    source = p.source if is_db else str(settings.resolve_data(p.source))
    if not is_db and _input_suffix(source) not in INPUT_FORMATS:
        raise ParamsError(
            f"inference.source {p.source!r}: cannot tell its format; give a file ending in "
            f"{', '.join(INPUT_FORMATS)} (or one of those compressed: .gz, .bz2, .zst, .xz), "
            "or a database URL."
        )
    for column, key in ((p.id_column, "id_column"), (p.text_column, "text_column")):
        if column in RESERVED or (column or "").startswith("proba_"):
            raise ParamsError(
                f"inference.{key} {column!r} clashes with a column nlpflow writes "
                f"({', '.join(sorted(RESERVED))}, proba_*): rename it in a query, or use a view."
            )
    target = _target(p.output, is_database=is_db, root=settings.root)
    _refuse_writing_into_input(target, source=source, table=p.table, query=p.query)
    return InferencePlan(
        source=source, is_database=is_db, table=p.table, query=p.query,
        text_column=p.text_column, id_column=p.id_column, target=target,
        model_name=settings.registered_model, model_alias=p.model_alias.strip(),
        batch_size=p.batch_size, on_invalid=p.on_invalid, max_chars=params.serve.max_chars,
        max_batch=params.serve.max_batch, experiment=f"{params.register_.experiment}-inference",
    )  # fmt: skip


def _target(output: str | None, *, is_database: bool, root: Path) -> Target:
    if not output or not output.strip():
        where = "a file path (.csv, .jsonl, .parquet)" + (
            " or a table name of the source database" if is_database else ""
        )
        raise ParamsError(f"inference.output is not set: give {where}.")
    output = output.strip()
    suffix = Path(output).suffix.lower()
    if suffix in OUTPUT_FORMATS or "/" in output or os.sep in output:
        if suffix not in OUTPUT_FORMATS:
            raise ParamsError(
                f"inference.output {output!r}: unknown format; end it in {', '.join(OUTPUT_FORMATS)}."
            )
        path = Path(output).expanduser()
        path = path if path.is_absolute() else root / path
        rejected = path.with_name(f"{path.stem}.rejected{path.suffix}")
        return Target("file", str(path), str(rejected))
    if not is_database:
        raise ParamsError(
            f"inference.output {output!r} is a table name, but inference.source is a file: "
            f"give a file path ending in {', '.join(OUTPUT_FORMATS)}."
        )
    return Target("table", output, f"{output}_rejected")


def _split_table(name: str) -> tuple[str | None, str]:
    schema, dot, table = name.rpartition(".")
    return (schema or None) if dot else None, table


def _refuse_writing_into_input(
    target: Target, *, source: str, table: str | None, query: str | None
) -> None:
    if target.kind == "file":
        for path in (target.predictions, target.rejected):
            if not is_database_url(source) and Path(path).resolve() == Path(source).resolve():
                raise ParamsError(
                    f"inference.output would write {path}, the input file itself: "
                    "choose another inference.output (the input is never written)."
                )
        return
    for name in (target.predictions, target.rejected):
        out_schema, out_table = _split_table(name)
        if table is not None:
            in_schema, in_table = _split_table(table)
            # without a schema on both sides the names alone decide: better refuse a write
            # into another schema's namesake than append predictions to the input
            same_schema = in_schema is None or out_schema is None or in_schema == out_schema
            if in_table == out_table and same_schema:
                raise ParamsError(
                    f"inference.output writes table {name!r}, the input table {table!r}: "
                    "choose another inference.output (the input is never written)."
                )
        if query is not None and re.search(
            rf"(?<![\w$]){re.escape(out_table)}(?![\w$])", query, re.I
        ):
            raise ParamsError(
                f"inference.output writes table {name!r}, which inference.query reads: "
                "choose another inference.output (the input is never written)."
            )


# ------------------------------------------------------------------------------ model


@dataclass
class LoadedModel:
    ref: ModelRef
    pyfunc: Any
    max_chars: int
    max_batch: int
    output_columns: list[str]  # label, score, proba_<label>... as the signature declares


def resolve_model(tracker: Tracker, *, name: str, alias: str) -> ModelRef:
    """The version `alias` names now (a number is a version), checked to exist."""
    from mlflow.exceptions import MlflowException

    client = tracker.client
    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise TrackingError(f"MLflow registry at {tracker.uri} failed: {exc}") from None
        raise ModelError(
            f"no registered model {name!r} in {tracker.uri}: train and register one with "
            "`nlpflow run`, or set NLPFLOW_REGISTERED_MODEL (and NLPFLOW_TRACKING_URI) to "
            "the model to use."
        ) from None
    aliases = dict(getattr(model, "aliases", {}) or {})
    shown = ", ".join(f"{a} -> v{v}" for a, v in sorted(aliases.items())) or "none"
    try:
        if alias.isdigit():
            version = client.get_model_version(name, alias)
        else:
            version = client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code not in {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}:
            raise TrackingError(f"MLflow registry at {tracker.uri} failed: {exc}") from None
        what = f"version {alias}" if alias.isdigit() else f"alias {alias!r}"
        raise ModelError(
            f"registered model {name!r} has no {what} (its aliases: {shown}): set "
            "inference.model_alias to an alias or version number that exists."
        ) from None
    return ModelRef(name=name, version=int(version.version), alias=alias)


def load_version(tracker: Tracker, ref: ModelRef, *, max_chars: int, max_batch: int) -> LoadedModel:
    """Load exactly `ref.version`; its serving limits come from the version's model_config
    (what the registered model enforces), else from the given defaults (params.serve)."""
    from mlflow.exceptions import MlflowException

    from nlpflow.release.registry import load_version_pyfunc

    try:
        model = load_version_pyfunc(tracker, ref.name, ref.version)
    except (MlflowException, OSError) as exc:
        raise ModelError(f"{ref.uri} could not be loaded from {tracker.uri}: {exc}") from None
    config = dict(model.model_config or {})
    schema = model.metadata.get_output_schema()
    columns = list(schema.input_names()) if schema is not None else ["label", "score"]
    return LoadedModel(
        ref=ref, pyfunc=model, max_chars=int(config.get("max_chars") or max_chars),
        max_batch=int(config.get("max_batch") or max_batch), output_columns=[str(c) for c in columns],
    )  # fmt: skip


# ------------------------------------------------------------------------------ read


def _engine(url: str) -> Any:
    from nlpflow.data.sources import build_engine  # gather's too: one reading of database URLs

    return build_engine(url)


def _quoted(engine: Any, name: str) -> str:
    quote = engine.dialect.identifier_preparer.quote
    schema, table = _split_table(name)
    return f"{quote(schema)}.{quote(table)}" if schema else quote(table)


def read_rows(plan: InferencePlan) -> pd.DataFrame:
    """The rows to score, every column as read (SQL values as Python objects)."""
    if not plan.is_database:
        return _read_file(Path(plan.source))
    import sqlalchemy as sa

    engine = _engine(plan.source)
    what = f"inference.table {plan.table!r}" if plan.table else "inference.query"
    try:
        with engine.connect() as connection:
            if plan.table is not None:
                schema, table = _split_table(plan.table)
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


def _input_suffix(source: str) -> str:
    from nlpflow.data.gather import plain_name

    return plain_name(Path(source)).suffix.lower()  # data.csv.gz is read as csv


def _read_file(path: Path) -> pd.DataFrame:
    from nlpflow.config.params import DataParams
    from nlpflow.data.gather import plain_name, read_table  # gather's reader (and messages)

    if not path.exists():  # a FIFO or device exists: read_table refuses it, saying what it is
        raise DataSourceError(f"inference.source {path} does not exist: check the path.")
    return read_table(path, INPUT_FORMATS[plain_name(path).suffix.lower()], DataParams())


# ------------------------------------------------------------------------------ validate


@dataclass(frozen=True)
class RowCheck:
    id: str
    name: str  # plain language, written into the rejected rows' `reasons`
    expectation: Any


@dataclass
class CheckedRows:
    rows_read: int
    valid: pd.DataFrame  # ROW, [id column], text column: the rows to score
    rejected: pd.DataFrame  # ROW, [id column], text column, checks, expectations, reasons
    failed: dict[str, int] = field(default_factory=dict)  # check id -> rows that break it


def build_row_checks(
    text_column: str, id_column: str | None, *, max_chars: int
) -> tuple[list[RowCheck], list[RowCheck]]:
    """(table checks, row checks): a table check failing stops the run whatever on_invalid."""
    import great_expectations.expectations as gxe

    t = text_column
    table = [RowCheck("text_column", f"column {t!r} is present", gxe.ExpectColumnToExist(column=t))]
    rows = [
        RowCheck("text_not_null", "text is not null", gxe.ExpectColumnValuesToNotBeNull(column=t)),
        RowCheck("text_not_blank", "text is not empty or whitespace only",
                 gxe.ExpectColumnValuesToNotMatchRegex(column=t, regex=r"^\s*$")),
        RowCheck("text_is_string", "text is a string (not a number, boolean or other value)",
                 gxe.ExpectColumnValuesToBeInSet(column=_GX_IS_STRING, value_set=[True])),
        # what a missing value becomes when something upstream applied str() to it
        RowCheck("text_not_missing_word", "text is not None, null or nan written as text",
                 gxe.ExpectColumnValuesToNotMatchRegex(
                     column=t, regex=r"^\s*(?i:none|null|nan)\s*$")),
        RowCheck("text_length", f"text is at most {max_chars} characters (the model's max_chars)",
                 gxe.ExpectColumnValueLengthsToBeBetween(column=t, max_value=max_chars)),
    ]  # fmt: skip
    if id_column is not None:
        i = id_column
        table.append(
            RowCheck("id_column", f"column {i!r} is present", gxe.ExpectColumnToExist(column=i))
        )
        rows += [
            RowCheck("id_not_null", "id is not null", gxe.ExpectColumnValuesToNotBeNull(column=i)),
            RowCheck("id_unique", "id is unique (rows sharing it cannot be told apart)",
                     gxe.ExpectColumnValuesToBeUnique(column=i)),
        ]  # fmt: skip
    for check in table + rows:
        check.expectation.meta = {"nlpflow_check": check.id}
    return table, rows


def _gx_validate(frame: pd.DataFrame, checks: list[RowCheck]) -> dict[str, Any]:
    """Run `checks` on `frame` in an in-memory GX context; results by check id."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        progress_bars=ProgressBarsConfig(globally=False),
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    batch = (
        context.data_sources.add_pandas("inference_input")
        .add_dataframe_asset("rows")
        .add_batch_definition_whole_dataframe("all_rows")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    suite = context.suites.add(
        gx.ExpectationSuite(
            name="nlpflow_inference_input", expectations=[c.expectation for c in checks]
        )
    )
    result = batch.validate(
        suite,
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [_GX_ROW]},
    )
    by_check: dict[str, Any] = {}
    for res in result.results:  # GX does not keep suite order
        expected = res.expectation_config
        by_check[str(((expected.meta if expected else None) or {})["nlpflow_check"])] = res
    return by_check


def _as_text(value: Any) -> str | None:
    """Text as the model will see it: strings kept, missing values None, others as str."""
    if isinstance(value, str):
        return value
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return None
    return str(value)


def validate_rows(
    frame: pd.DataFrame,
    *,
    text_column: str,
    id_column: str | None,
    max_chars: int,
    on_invalid: Literal["fail", "skip"],
) -> CheckedRows:
    """Check the rows with GX; split them into rows to score and rejected rows (skip), or
    raise DataValidationError naming the checks and a few rows (fail)."""
    table_checks, row_checks = build_row_checks(text_column, id_column, max_chars=max_chars)
    present = [c for c in (text_column, id_column) if c is not None and c in frame.columns]
    checked = frame[present].copy()
    if text_column in checked:
        values = checked[text_column]
        checked[_GX_IS_STRING] = [isinstance(v, str) or _as_text(v) is None for v in values]
        checked[text_column] = values.map(_as_text).astype(object)
    else:  # the table check reports the missing column
        checked[_GX_IS_STRING] = True
    checked.insert(0, _GX_ROW, range(len(checked)))
    results = _gx_validate(checked, table_checks + row_checks)
    checked = checked.drop(columns=_GX_IS_STRING)
    missing = [c for c in table_checks if not results[c.id].success]
    if missing:
        columns = ", ".join(map(str, frame.columns))
        names = " and ".join(repr(c.expectation.column) for c in missing)
        raise DataValidationError(
            f"input validation failed: no column {names} in the input (its columns: {columns}). "
            "Set inference.text_column / inference.id_column to the right columns."
        )
    reasons: dict[int, list[RowCheck]] = {}
    for check in row_checks:
        res = results[check.id]
        if not res.success and (res.exception_info or {}).get("raised_exception"):
            raise DataValidationError(
                f"input check {check.id} could not run: {res.exception_info['exception_message']}"
            )
        for found in (res.result or {}).get("unexpected_index_list") or []:
            reasons.setdefault(int(found[_GX_ROW]), []).append(check)
    failed = {
        c.id: int((results[c.id].result or {}).get("unexpected_count") or 0) for c in row_checks
    }
    failed = {k: v for k, v in failed.items() if v}
    checked = checked.rename(columns={_GX_ROW: ROW})
    bad = checked[ROW].isin(reasons)
    if bad.any() and on_invalid == "fail":
        raise DataValidationError(
            _format_invalid(checked, reasons, failed, row_checks, text_column, id_column)
        )
    rejected = checked[bad].copy()
    rejected["checks"] = ["; ".join(c.id for c in reasons[r]) for r in rejected[ROW]]
    rejected["expectations"] = [
        "; ".join(c.expectation.expectation_type for c in reasons[r]) for r in rejected[ROW]
    ]
    rejected["reasons"] = ["; ".join(c.name for c in reasons[r]) for r in rejected[ROW]]
    return CheckedRows(
        rows_read=len(frame), valid=checked[~bad].reset_index(drop=True),
        rejected=rejected.reset_index(drop=True), failed=failed,
    )  # fmt: skip


def _format_invalid(
    checked: pd.DataFrame,
    reasons: dict[int, list[RowCheck]],
    failed: dict[str, int],
    checks: list[RowCheck],
    text_column: str,
    id_column: str | None,
) -> str:
    lines = [
        f"input validation failed: {len(reasons)} of {len(checked)} rows break "
        f"{len(failed)} check(s), and inference.on_invalid is fail; nothing was written."
    ]
    by_row = checked.set_index(ROW)
    for check in (c for c in checks if c.id in failed):
        lines.append(f"  ✗ {check.name} [{check.id}]: {failed[check.id]} rows")
        rows = [r for r, found in sorted(reasons.items()) if check in found][:EXAMPLES]
        for r in rows:
            ident = f" {id_column}={by_row.at[r, id_column]!r}" if id_column else ""
            text = by_row.at[r, text_column]
            shown = (
                text[:80] + f"… ({len(text)} chars)"
                if isinstance(text, str) and len(text) > 80
                else text
            )
            lines.append(f"      row {r}{ident}: {shown!r}")
    lines.append(
        "  Fix these rows, or set inference.on_invalid=skip to score the others and write "
        "these beside the output with their reasons."
    )
    return "\n".join(lines)


# ------------------------------------------------------------------------------ score


def score_rows(
    model: LoadedModel, valid: pd.DataFrame, *, text_column: str, batch_size: int
) -> pd.DataFrame:
    """label, score, proba_<label>... per valid row, in input order, batch by batch."""
    size = max(1, min(batch_size, model.max_batch))  # a larger request the model would refuse
    texts = valid[text_column].astype(str).tolist()
    parts = []
    for start in range(0, len(texts), size):
        chunk = texts[start : start + size]
        scored = model.pyfunc.predict(pd.DataFrame({"text": chunk}))
        if len(scored) != len(chunk):
            raise ModelError(
                f"{model.ref.uri} returned {len(scored)} predictions for {len(chunk)} texts."
            )
        parts.append(pd.DataFrame(scored).reset_index(drop=True))
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in model.output_columns})
    return pd.concat(parts, ignore_index=True)


def build_predictions(
    valid: pd.DataFrame,
    scores: pd.DataFrame,
    *,
    id_column: str | None,
    ref: ModelRef,
    scored_at: datetime,
    run_id: str,
) -> pd.DataFrame:
    keys = [c for c in (id_column, ROW) if c is not None]
    out = pd.concat([valid[keys].reset_index(drop=True), scores.reset_index(drop=True)], axis=1)
    return _with_meta(out, ref=ref, at=scored_at, run_id=run_id)


def _with_meta(frame: pd.DataFrame, *, ref: ModelRef, at: datetime, run_id: str) -> pd.DataFrame:
    out = frame.assign(
        model_name=ref.name, model_version=ref.version,
        scored_at=pd.Timestamp(at).tz_convert("UTC"), run_id=run_id,
    )  # fmt: skip
    out["model_version"] = out["model_version"].astype("int64")
    out["scored_at"] = out["scored_at"].astype("datetime64[us, UTC]")
    return out.infer_objects()


def rejected_rows(
    checked: CheckedRows, *, ref: ModelRef, scored_at: datetime, run_id: str
) -> pd.DataFrame:
    """The rejected rows as written: ROW, [id], text, checks, expectations, reasons, meta."""
    return _with_meta(checked.rejected, ref=ref, at=scored_at, run_id=run_id)


# ------------------------------------------------------------------------------ write


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

    engine = _engine(plan.source)
    written: dict[str, int] = {}
    try:
        with engine.begin() as connection:  # both tables or neither
            inspector = sa.inspect(connection)
            for name, frame in frames.items():
                schema, table = _split_table(name)
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


# ------------------------------------------------------------------------------ report


class InferenceReport(BaseModel):
    model_name: str
    model_version: int
    model_alias: str
    source: str
    output: str
    rejected_output: str
    rows_read: int
    rows_valid: int
    rows_rejected: int
    rows_scored: int
    labels: dict[str, int]  # predicted label -> rows
    rejected_by_check: dict[str, int]  # check id -> rows breaking it (a row may break several)
    max_chars: int
    batch_size: int
    scored_at: str
    run_id: str


def build_report(
    plan: InferencePlan,
    model: LoadedModel,
    checked: CheckedRows,
    predictions: pd.DataFrame,
    *,
    run_id: str,
) -> InferenceReport:
    labels = predictions["label"].astype(str).value_counts().sort_index()
    rejected = plan.target.rejected
    return InferenceReport(
        model_name=model.ref.name, model_version=model.ref.version, model_alias=model.ref.alias or str(model.ref.version),
        source=plan.shown_source, output=plan.target.describe(),
        rejected_output=rejected if plan.target.kind == "file" else f"table {rejected}",
        rows_read=checked.rows_read, rows_valid=len(checked.valid),
        rows_rejected=len(checked.rejected), rows_scored=len(predictions),
        labels={str(k): int(v) for k, v in labels.items()}, rejected_by_check=checked.failed,
        max_chars=model.max_chars, batch_size=max(1, min(plan.batch_size, model.max_batch)),
        scored_at=plan.scored_at.isoformat(), run_id=run_id,
    )  # fmt: skip


def report_markdown(report: InferenceReport) -> str:
    rows = [
        ("model", f"{report.model_name} v{report.model_version} ({report.model_alias})"),
        ("source", report.source), ("output", report.output),
        ("rejected rows to", report.rejected_output), ("rows read", report.rows_read),
        ("rows valid", report.rows_valid), ("rows rejected", report.rows_rejected),
        ("rows scored", report.rows_scored), ("scored at (UTC)", report.scored_at),
        ("MLflow run", report.run_id),
    ]  # fmt: skip
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    labels = "\n".join(f"| {k} | {v} |" for k, v in report.labels.items()) or "| (none) | 0 |"
    checks = "\n".join(f"| {k} | {v} |" for k, v in report.rejected_by_check.items())
    text = f"## Batch inference\n\n| | |\n|---|---|\n{table}\n\n### Predicted labels\n\n"
    text += f"| label | rows |\n|---|---|\n{labels}\n"
    if checks:
        text += f"\n### Rejected rows by check\n\n| check | rows |\n|---|---|\n{checks}\n"
    return text


def _metric_key(name: str) -> str:
    return re.sub(r"[^\w\-./ ]", "_", name)


def start_inference_run(
    tracker: Tracker, plan: InferencePlan, ref: ModelRef, params: Params, *, tags: dict[str, str]
) -> str:
    """Open the MLflow run of this inference (experiment `<register.experiment>-inference`)."""
    run_id = tracker.start_run(
        plan.experiment, run_name=None,
        tags={"nlpflow.runner": "prefect", "model.name": ref.name, "model.version": str(ref.version),
              "model.alias": ref.alias or str(ref.version), "inference.source": plan.shown_source,
              "inference.output": plan.target.describe()} | tags,
    )  # fmt: skip
    shown = params.inference.model_copy(update={"source": plan.shown_source})
    tracker.log_params(run_id, flatten({"inference": shown.model_dump(mode="json")}))
    return run_id


def log_report(tracker: Tracker, report: InferenceReport) -> None:
    metrics: dict[str, float] = {
        "rows_read": report.rows_read, "rows_valid": report.rows_valid,
        "rows_rejected": report.rows_rejected, "rows_scored": report.rows_scored,
    }  # fmt: skip
    metrics |= {_metric_key(f"label_{k}"): v for k, v in report.labels.items()}
    metrics |= {_metric_key(f"rejected_{k}"): v for k, v in report.rejected_by_check.items()}
    tracker.log_metrics(report.run_id, metrics)
    tracker.set_tags(report.run_id, {"inference.rejected_output": report.rejected_output})
    with tempfile.TemporaryDirectory(prefix="nlpflow-inference-") as tmp:
        path = Path(tmp) / "inference_report.json"
        path.write_text(json.dumps(report.model_dump(mode="json"), indent=2))
        tracker.log_artifact(report.run_id, path)
