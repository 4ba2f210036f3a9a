"""A model's input shaped as its training data was: gather's data.columns (the names of a
headerless file's columns), data.text_column (one column, or several joined by a space) and
the label rewriting (data.label_column, label_pattern, label_map).

    shape = InputShape.from_data(params.data)        # at register: into the version's model_config
    shape = InputShape.from_config(model_config)     # batch inference, the served model, predict
    texts = shape.texts(frame)                       # the fields joined as gather joined them

Where it is kept: in the registered version itself (its MLflow model_config, key "input"), not
looked up in the version's run params. The pyfunc then answers records of the trained fields
wherever it is loaded (`nlpflow serve`, `mlflow models serve`, a notebook) with no tracking
server to ask, and a version cannot be scored with the shaping of another run's params. A
version registered before this existed has none recorded: one `text` column, as it was served.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from nlpflow.config.params import DataParams

CONFIG_KEY = "input"  # the key of the shaping in a version's model_config
TEXT = "text"  # the column of plain text every version accepts


@dataclass(frozen=True)
class InputShape:
    text_columns: tuple[str, ...] = (TEXT,)
    columns: tuple[str, ...] | None = None  # a headerless csv/tsv file's columns, in order
    label_column: str | None = None
    label_pattern: str | None = None
    label_map: dict[str, str] | None = field(default=None, hash=False)

    @classmethod
    def from_data(cls, data: DataParams) -> InputShape:
        """The shaping gather applied with `data` (labelled_lines files: text and label)."""
        if data.format == "labelled_lines":
            return cls()
        texts = [data.text_column] if isinstance(data.text_column, str) else data.text_column
        return cls(
            text_columns=tuple(texts), columns=tuple(data.columns) if data.columns else None,
            label_column=data.label_column, label_pattern=data.label_pattern,
            label_map=dict(data.label_map) if data.label_map else None,
        )  # fmt: skip

    def to_config(self) -> dict[str, Any]:
        return {
            "text_columns": list(self.text_columns),
            "columns": list(self.columns) if self.columns is not None else None,
            "label_column": self.label_column,
            "label_pattern": self.label_pattern,
            "label_map": self.label_map,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> InputShape:
        """The shaping a version recorded (`config`: its model_config); plain text if none."""
        recorded = (config or {}).get(CONFIG_KEY)
        if not recorded:
            return cls()
        columns = recorded.get("columns")
        return cls(
            text_columns=tuple(recorded.get("text_columns") or [TEXT]),
            columns=tuple(columns) if columns else None, label_column=recorded.get("label_column"),
            label_pattern=recorded.get("label_pattern"), label_map=recorded.get("label_map"),
        )  # fmt: skip

    def overridden(
        self, *, text_column: str | list[str] | None, columns: list[str] | None
    ) -> InputShape:
        """With inference.text_column / inference.columns where given (None: as trained; an
        empty `columns`: the file has a header row)."""
        shape = self
        if text_column is not None:
            texts = [text_column] if isinstance(text_column, str) else text_column
            shape = replace(shape, text_columns=tuple(texts))
        if columns is not None:
            shape = replace(shape, columns=tuple(columns) or None)
        return shape

    @property
    def fields(self) -> bool:
        """Whether requests may send the trained fields in place of `text`."""
        return self.text_columns != (TEXT,)

    @property
    def text_name(self) -> str:
        """The column the text is checked and kept under: the one text column, or the
        fields' names joined by '+' (title+description) for the joined text."""
        return "+".join(self.text_columns)

    def describe(self) -> str:
        return " ".join(self.text_columns) if len(self.text_columns) == 1 else (
            f"[{', '.join(self.text_columns)}] joined by a space"
        )  # fmt: skip

    def missing(self, columns: Iterable[object]) -> list[str]:
        have = {str(c) for c in columns}
        return [c for c in self.text_columns if c not in have]

    def texts(self, frame: pd.DataFrame) -> list[Any]:
        """Each row's text: the one text column's values as they are (the checks judge their
        type), or the fields joined exactly as gather joined them (nlpflow.data.text)."""
        from nlpflow.data.text import join_fields

        if len(self.text_columns) == 1:
            return list(frame[self.text_columns[0]])
        return [
            join_fields(values)
            for values in zip(*(frame[c] for c in self.text_columns), strict=True)
        ]

    def labels(self, frame: pd.DataFrame) -> pd.Series | None:
        """The input's labels rewritten as gather rewrote them (label_pattern, then label_map),
        when the input has the trained label column; None when it has not."""
        import pandas as pd

        from nlpflow.config.params import DataParams
        from nlpflow.data.nlp.text_classification import rewrite_labels

        if self.label_column is None or self.label_column not in frame.columns:
            return None
        raw = frame[self.label_column].map(lambda v: None if pd.isna(v) else str(v))
        params = DataParams(label_pattern=self.label_pattern, label_map=self.label_map)
        rewritten = rewrite_labels(pd.DataFrame({"label": raw}), params)["label"]
        return rewritten.astype(object)
