"""inference: batch scoring of a file or a SQL table with a registered model."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from nlpflow.config.sections.base import Section
from nlpflow.config.source_kinds import is_database_url


class InferenceParams(Section):
    """inference: batch scoring of a file or a SQL table with a registered model."""

    source: str | None = Field(
        default=None,
        description="File (csv, tsv, jsonl, parquet) or database URL of the rows to score.",
    )
    table: str | None = Field(
        default=None, description="Database source: the table to score (or give query)."
    )
    query: str | None = Field(
        default=None, description="Database source: the SELECT whose rows are scored."
    )
    text_column: str | list[str] | None = Field(
        default=None,
        description="Column holding the raw text, or several joined by a space (as gather "
        "joins data.text_column); null = the columns the model was trained on (recorded in "
        "the registered version; `text` for a version registered before that).",
    )
    columns: list[str] | None = Field(
        default=None,
        description="Column names of a csv/tsv input without a header row; null = as the model "
        "was trained (its data.columns); [] = the input has a header row.",
    )
    id_column: str | None = Field(
        default=None, description="Column copied into the predictions to join them back."
    )
    output: str | None = Field(
        default=None,
        description="Predictions: a file path (csv, jsonl, parquet; replaced), or for a database "
        "source a table name in the same database (rows appended). Rejected rows go beside it: "
        "<stem>.rejected.<ext>, or table <output>_rejected.",
    )
    model_alias: str = Field(
        default="champion", description="Registry alias (or version number) of the model used."
    )
    batch_size: int = Field(default=256, ge=1, description="Texts per predict call.")
    chunk_rows: int = Field(
        default=20_000,
        ge=1,
        description="Rows read, checked, scored and committed as one unit; chunks are scored "
        "in parallel on the workers of NLPFLOW_ENGINE. Memory grows with it (per worker), "
        "and a run killed midway resumes from its last committed chunk.",
    )
    resume: bool = Field(
        default=True,
        description="A run with the same input, output, columns and chunk_rows as an "
        "unfinished one (killed, or failed) continues it: committed chunks are not scored "
        "again, and the model version it began with scores the rest. false: start over (a "
        "file output's parts are dropped; rows already appended to a table stay).",
    )
    on_invalid: Literal["fail", "skip"] = Field(
        default="skip",
        description="Rows failing input validation (null, blank, too long): fail stops the run; "
        "skip leaves them out and writes them beside the output with the reason.",
    )

    @model_validator(mode="after")
    def _one_selection(self) -> InferenceParams:
        # Required fields (source, output) are checked when inference runs: a training run
        # loads this section too, and leaves it unset.
        if self.source is not None and not self.source.strip():
            raise ValueError("source is empty: give the file or database URL to score, or null")
        if self.table is not None and self.query is not None:
            raise ValueError("give table or query, not both")
        if (
            self.source is not None
            and (self.table or self.query)
            and not is_database_url(self.source)
        ):
            raise ValueError(
                "table and query apply to a database source; a file source is read whole "
                "(unset table/query, or set source to a database URL)"
            )
        texts = [self.text_column] if isinstance(self.text_column, str) else self.text_column
        if texts is not None and (not texts or not all(c.strip() for c in texts)):
            raise ValueError(
                "text_column is empty: name the input's text column(s), or null for the "
                "columns the model was trained on"
            )
        if self.id_column is not None and self.id_column in (texts or []):
            raise ValueError("id_column and text_column name the same column")
        if self.columns and self.source is not None and is_database_url(self.source):
            raise ValueError(
                "columns names the columns of a headerless csv/tsv file; a database source "
                "has its own (unset inference.columns)"
            )
        if not self.model_alias.strip():
            raise ValueError("model_alias is blank: give an alias (champion) or a version number")
        return self
