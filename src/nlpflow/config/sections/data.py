"""data: where the labelled text is and how gather reads and splits it."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from nlpflow.config.sections.base import Section


class SplitParams(Section):
    """How gather splits a source that has no splits of its own (stratified by label)."""

    validation: float = Field(
        default=0.1, ge=0.0, lt=0.5, description="Share of rows for validation."
    )
    test: float = Field(default=0.2, gt=0.0, lt=0.5, description="Share of rows for test.")
    seed: int = Field(default=13, description="Seed of the shuffle; same seed, same split.")
    group_duplicates: bool = Field(
        default=True,
        description="Texts equal up to case, accents, spacing and punctuation land in one split, "
        "so a duplicate can never leak from train into test.",
    )
    group_subphrases: bool = Field(
        default=False,
        description="A text found, whole words after normalisation, inside a longer text "
        "(SST-2's phrases of its sentences) lands in the same split as the first text holding "
        "it, so validation and test do not score phrases of train sentences. A short phrase "
        "inside many sentences follows only the first of them (following all would chain "
        "every sentence sharing 'the film' into one group): validate's leak_subphrase reports "
        "what is left. Off by default: it moves rows of existing splits (runs would no longer "
        "compare), and only data made of phrases needs it.",
    )


Size = int | float  # a row count (a whole number), or a share of the split (0 < share < 1)


class SampleParams(Section):
    """data.sample: a seeded subsample of the splits, stratified by label, for quick
    iteration. Recorded in the gather manifest (and the run's `data.sample` tag)."""

    train: Size | None = Field(
        description="Train rows to keep: a count (2000) or a share (0.1); null = all."
    )
    validation: Size | None = Field(
        default=None,
        description="Validation rows to keep; null (default) = all: it measures the model "
        "(early stopping, sweeps), and a smaller one only makes that noisier.",
    )
    test: Size | None = Field(
        default=None, description="Test rows to keep; null (default) = all, as validation."
    )
    seed: int = Field(default=13, description="Seed of the draw; same seed, same rows.")

    @field_validator("train", "validation", "test", mode="before")
    @classmethod
    def _size(cls, value: object) -> object:
        if isinstance(value, bool):
            raise ValueError("a row count (e.g. 2000) or a share (e.g. 0.1), not true/false")
        if isinstance(value, float) and value.is_integer() and value >= 1:
            return int(value)  # 2000.0 from a YAML or an override: a count
        if isinstance(value, float) and not 0 < value < 1:
            raise ValueError(f"{value} is neither a row count nor a share between 0 and 1")
        if isinstance(value, int) and value < 1:
            raise ValueError(f"{value}: keep at least one row (null keeps them all)")
        return value


class DataParams(Section):
    """gather: where the labelled text is and how to read it."""

    source: str = Field(
        default="data/sample/support_tickets.csv",
        description="File, folder, glob, http(s) URL, database URL, or hf:<dataset id> (a Hugging "
        "Face dataset, e.g. hf:imdb, or hf:<folder> of data files or of save_to_disk output). "
        "Relative paths resolve against NLPFLOW_DATA_ROOT.",
    )
    split_files: dict[str, str] | None = Field(
        default=None,
        description="A folder source's files by split when their names do not say it, e.g. "
        "{train_5500.label: train, TREC_10.label: test}; other files are not read. Each is "
        "read with data.format (auto: by extension); validation is carved from train if absent.",
    )
    test_overlap: Literal["keep", "drop_from_train"] = Field(
        default="keep",
        description="When the source brings its own test split: drop_from_train drops train and "
        "validation rows whose text equals a test text up to case, accents, spacing and "
        "punctuation (the test set stays whole, the count goes in the manifest); keep leaves "
        "them for validate's leakage checks to report.",
    )
    hf_config: str | None = Field(
        default=None,
        description="hf: source: the dataset's config name (e.g. sst2 for hf:nyu-mll/glue); "
        "null for datasets that have one.",
    )
    hf_revision: str | None = Field(
        default=None,
        description="hf: source: the Hub git revision (a commit sha for reproducible runs, or a "
        "branch or tag); null = the newest, which can change between runs.",
    )
    hf_fingerprint: dict[str, str] | None = Field(
        default=None,
        description="Written by gather into the manifest, not set by you: the `datasets` "
        "fingerprint of each loaded split (it names cached files, so differs between machines).",
    )
    format: Literal[
        "auto", "csv", "tsv", "jsonl", "parquet", "folder", "labelled_lines",
        "conll", "spans_jsonl", "label_studio",
    ] = Field(
        default="auto",
        description="auto picks by extension; folder = one text file per label, one text a line, "
        "or a folder holding train/validation/test files; labelled_lines = 'LABEL text' a line. "
        "token-classification: conll (token and tag columns, CoNLL-2003's four too), "
        "spans_jsonl ({text, spans: [{start, end, label}]} a line) or label_studio (its JSON "
        "export).",
    )  # fmt: skip
    tag_scheme: Literal["auto", "iob1", "bio", "bioes", "io"] = Field(
        default="auto",
        description="token-classification: the tag scheme of token files (bio is IOB2; bioes "
        "takes BILOU too); auto detects it. Tags become BIO.",
    )
    query: str | None = Field(
        default=None,
        description="SQL for a database source (data.source a SQLAlchemy URL, e.g. "
        "postgresql+psycopg://user@host/db; the password comes from PGPASSWORD or ~/.pgpass).",
    )
    timestamp_column: str | None = Field(
        default=None, description="Database source: read only rows with this column <= cutoff."
    )
    cutoff: str | None = Field(
        default=None,
        description="ISO time of the cut-off; null = when gather runs (recorded in the manifest, "
        "so the same snapshot can be gathered again).",
    )
    sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="Pin for an http(s) source: the download must have this sha256.",
    )
    decode_errors: Literal["strict", "replace"] = Field(
        default="strict",
        description="strict stops at bytes that are not UTF-8; replace turns them into U+FFFD "
        "and counts them in the gather report.",
    )
    delimiter: str | None = Field(
        default=None,
        min_length=1,
        max_length=1,
        description="Field separator of csv/tsv files; null = the one an Excel `sep=;` first "
        "line names, else ',' for csv and a tab for tsv. A file that does not parse gets the "
        "separator it seems to use suggested.",
    )
    quoting: Literal["minimal", "none"] | None = Field(
        default=None,
        description="Quotes in csv/tsv files: minimal = a field may be wrapped in double quotes "
        "('\"\"' inside is one quote); none = quotes are plain characters of the text; "
        "null = minimal for csv, none for tsv.",
    )
    columns: list[str] | None = Field(
        default=None,
        description="Column names of a csv/tsv file without a header row; null = the file has one.",
    )
    text_column: str | list[str] = Field(
        default="text", description="Column holding the text, or several joined by a space."
    )
    label_column: str | None = Field(
        default="label",
        description="Column holding the label; null = the text has none (topic-modeling only, "
        "whose labels are optional: where given, topics are scored against them).",
    )
    time_column: str | None = Field(
        default=None,
        description="topic-modeling: a column of dates or times (ISO text or numbers); the "
        "evaluation then draws each topic's share over time. null = none.",
    )
    label_pattern: str | None = Field(
        default=None,
        description="Regex applied to each label; its first group (or the match) becomes the "
        "label, e.g. '^([A-Z]+):' keeps TREC's coarse class.",
    )
    label_map: dict[str, str] | None = Field(
        default=None, description="Rename labels, e.g. {'0': neg, '1': pos}; others stay."
    )
    dedupe: Literal["none", "exact", "normalized"] = Field(
        default="none",
        description="Drop repeated texts (keeping the first): exactly equal, or equal up to case, "
        "accents, spacing and punctuation.",
    )
    labels: list[str] | None = Field(
        default=None, description="Allowed labels; null accepts the labels seen in the train split."
    )
    split: SplitParams = SplitParams()
    sample: SampleParams | None = Field(
        default=None,
        description="A seeded subsample, stratified by label, taken after the split, e.g. "
        "{train: 2000} or {train: 0.1, seed: 7}: train only, unless validation or test are "
        "given; each label keeps its share and at least one row. null = all rows.",
    )

    @field_validator("source")
    @classmethod
    def _source_given(cls, value: str) -> str:
        # A blank source resolves to the data root itself (the project folder): gather then
        # reads mlflow.db and the rest as data and reports their bytes, not this.
        if not value.strip():
            raise ValueError(
                "is empty: set it to your data (a file, folder, glob, URL or "
                "hf:<dataset>), e.g. --set data.source=data/tickets.csv"
            )
        return value

    @field_validator("label_pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    @field_validator("labels", mode="before")
    @classmethod
    def _labels_as_text(cls, value: object) -> object:
        # Labels are compared as text (gather reads 0/1 as "0"/"1"), so `[0, 1]` means the same.
        if isinstance(value, list):
            return [
                str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v
                for v in value
            ]
        return value
