"""Batch inference's plan: where the rows come from and where predictions go, checked against
each other with no I/O; it refuses to write into the input (table or file), and input columns
that an output column would overwrite: nlpflow's own (RESERVED) and the answer's, as the Output
module of params `task` names them (nlpflow.serving.nlp; the model is not loaded yet).

    plan = plan_inference(params, settings)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from nlpflow.config.naming import registered_model_name
from nlpflow.config.params import Params
from nlpflow.config.settings import Settings
from nlpflow.config.source_kinds import is_database_url
from nlpflow.errors import ParamsError

if TYPE_CHECKING:
    from nlpflow.serving.shaping import InputShape

ROW = "row"  # the row's position in the input as read (0-based): the join key without an id
OUTPUT_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".parquet": "parquet"}
INPUT_FORMATS = OUTPUT_FORMATS | {".tsv": "tsv"}
META_COLUMNS = ("model_name", "model_version", "scored_at", "run_id")
REJECT_COLUMNS = ("checks", "expectations", "reasons")
# the input's label, rewritten as gather rewrote it (data.label_pattern, label_map), when the
# input has the model's label column: to compare with the predicted one
INPUT_LABEL = "input_label"
RESERVED = {ROW, INPUT_LABEL, *META_COLUMNS, *REJECT_COLUMNS}  # and the answer's columns


@dataclass(frozen=True)
class Target:
    """Where predictions (and the rejected rows) go: files, or tables of the source database."""

    kind: Literal["file", "table"]
    predictions: str  # absolute file path, or [schema.]table
    rejected: str
    # where the committed chunks are noted (nlpflow.serving.batch.progress): the folder
    # `<predictions>.parts`, or the table `<predictions>_progress`
    progress: str

    def describe(self) -> str:
        return self.predictions if self.kind == "file" else f"table {self.predictions}"


@dataclass(frozen=True)
class InferencePlan:
    source: str  # absolute file path, or the database URL
    is_database: bool
    table: str | None
    query: str | None
    text_columns: tuple[str, ...] | None  # inference.text_column; None: as trained
    columns: tuple[str, ...] | None  # inference.columns; None: as trained, (): a header row
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
    # how rows become texts: the version's recorded shaping with the overrides above
    # (`shaped`, once the version is known); None before that
    shape: InputShape | None = None

    def shaped(self, recorded: dict[str, Any] | None) -> InferencePlan:
        """This plan with the input shaped as the version's training data was (`recorded`:
        its model_config), inference.text_column / inference.columns overriding it."""
        from nlpflow.serving.shaping import InputShape

        shape = InputShape.from_config(recorded).overridden(
            text_column=list(self.text_columns) if self.text_columns is not None else None,
            columns=list(self.columns) if self.columns is not None else None,
        )
        return replace(self, shape=shape)

    @property
    def input_shape(self) -> InputShape:
        """The shaping rows get: `shape`, or before the version is known the overrides over
        plain text (what a version that recorded none is scored with)."""
        return self.shape if self.shape is not None else self.shaped(None).input_shape

    @property
    def text_column(self) -> str:
        """The column the (joined) text is checked and kept under."""
        return self.input_shape.text_name

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
    if not is_db and input_suffix(source) not in INPUT_FORMATS:
        raise ParamsError(
            f"inference.source {p.source!r}: cannot tell its format; give a file ending in "
            f"{', '.join(INPUT_FORMATS)} (or one of those compressed: .gz, .bz2, .zst, .xz), "
            "or a database URL."
        )
    texts = [p.text_column] if isinstance(p.text_column, str) else p.text_column
    _refuse_reserved(params, id_column=p.id_column, text_columns=texts or [])
    target = _target(p.output, is_database=is_db, root=settings.root)
    _refuse_writing_into_input(target, source=source, table=p.table, query=p.query)
    return InferencePlan(
        source=source, is_database=is_db, table=p.table, query=p.query,
        text_columns=tuple(texts) if texts is not None else None,
        columns=tuple(p.columns) if p.columns is not None else None,
        id_column=p.id_column, target=target,
        model_name=registered_model_name(params, settings.registered_model).name,
        model_alias=p.model_alias.strip(),
        batch_size=p.batch_size, on_invalid=p.on_invalid, max_chars=params.serve.max_chars,
        max_batch=params.serve.max_batch, experiment=f"{params.register_.experiment}-inference",
    )  # fmt: skip


def _refuse_reserved(params: Params, *, id_column: str | None, text_columns: list[str]) -> None:
    """An input column named as an output column would be overwritten in the predictions."""
    from nlpflow.serving.nlp import output

    answer = output(params.task)
    named = [(id_column, "id_column"), *((c, "text_column") for c in text_columns)]
    for column, key in named:
        if column is not None and (column in RESERVED or answer.is_output_column(column)):
            # the answer's columns for a stand-in label: label, score, proba_<label> for
            # text-classification
            written = [*sorted(RESERVED), *answer.output_schema(["<label>"])]
            raise ParamsError(
                f"inference.{key} {column!r} clashes with a column nlpflow writes "
                f"({', '.join(written)}; task {params.task}): rename it in a query, or use a view."
            )


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
        return Target("file", str(path), str(rejected), f"{path}.parts")
    if not is_database:
        raise ParamsError(
            f"inference.output {output!r} is a table name, but inference.source is a file: "
            f"give a file path ending in {', '.join(OUTPUT_FORMATS)}."
        )
    return Target("table", output, f"{output}_rejected", f"{output}_progress")


def split_table(name: str) -> tuple[str | None, str]:
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
    for name in (target.predictions, target.rejected, target.progress):
        out_schema, out_table = split_table(name)
        if table is not None:
            in_schema, in_table = split_table(table)
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


def input_suffix(source: str) -> str:
    from nlpflow.data.reading import plain_name

    return plain_name(Path(source)).suffix.lower()  # data.csv.gz is read as csv
