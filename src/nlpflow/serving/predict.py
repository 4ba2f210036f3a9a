"""Scoring texts with a registered version from the command line (`nlpflow predict`): texts
from `--text`, records from `--record` or a file, checked as the served model checks them,
scored in requests of its max_batch. A version trained on several fields (data.text_column
[title, description]) takes records of them, joined as gather joined them.

    nlpflow predict --model nlpflow-support-tickets@champion --input tickets.csv
    nlpflow predict --record '{"title": "Refund", "description": "the parcel never came"}'
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from nlpflow.serving.pyfunc import TEXT_COLUMN, InvalidRequest, check_texts, served_config

if TYPE_CHECKING:
    from nlpflow.config.settings import Settings
    from nlpflow.tracking.refs import ModelRef


def load_registered(ref: ModelRef, settings: Settings, dst: Path) -> Any:
    """The pyfunc of `ref`, downloaded into `dst` (keep it while the model is used: the model's
    code is imported from there). No process-wide tracking URI is set."""
    from nlpflow.tracking.tracker import Tracker

    return Tracker(settings).load_version(ref.name, ref.version, dst)


def read_texts(path: Path) -> list[Any]:
    """Texts to score from a file: .txt one text per non-blank line; .csv, .tsv, .jsonl and
    .parquet a `text` column (values as they are: the model checks them)."""
    from nlpflow.errors import DataSourceError

    frame = read_input(path)
    if TEXT_COLUMN not in frame.columns:
        raise DataSourceError(
            f"--input {path} has no {TEXT_COLUMN!r} column (columns: "
            f"{', '.join(map(str, frame.columns)) or 'none'}); rename the column holding the text."
        )
    return list(frame[TEXT_COLUMN])


def read_input(path: Path) -> pd.DataFrame:
    """The rows of an --input file as they are: .txt a `text` column of its non-blank lines;
    .csv, .tsv, .jsonl and .parquet their columns (a `text` column, or the fields the model was
    trained on: predict_registered tells which)."""
    from nlpflow.errors import DataSourceError

    if not path.is_file():
        raise DataSourceError(f"--input {path}: no such file.")
    suffix = path.suffix.lower()
    try:
        if suffix in {".txt", ""}:
            lines = path.read_text(encoding="utf-8-sig").splitlines()
            return pd.DataFrame({TEXT_COLUMN: [line for line in lines if line.strip()]})
        if suffix in {".csv", ".tsv"}:
            # strings as written: "NA" or "null" is a text, an empty cell stays "" (and is refused)
            frame = pd.read_csv(
                path, sep="\t" if suffix == ".tsv" else ",", dtype=str, keep_default_na=False,
                encoding="utf-8-sig",
            )  # fmt: skip
        elif suffix == ".jsonl":
            frame = pd.read_json(path, lines=True, dtype=False)
        elif suffix == ".parquet":
            frame = pd.read_parquet(path)
        else:
            raise DataSourceError(
                f"--input {path}: unknown file type {suffix!r}; use .txt (one text a line), "
                ".csv, .tsv, .jsonl or .parquet (with a text column)."
            )
    except UnicodeDecodeError as exc:
        raise DataSourceError(f"--input {path} is not UTF-8 ({exc.reason} at byte {exc.start}); "
                              "convert it, e.g. iconv -f cp1252 -t utf-8.") from None  # fmt: skip
    except ValueError as exc:
        raise DataSourceError(f"--input {path} cannot be read as {suffix[1:]}: {exc}") from None
    return frame


def predict_registered(
    ref: ModelRef, settings: Settings, rows: list[Any] | pd.DataFrame
) -> pd.DataFrame:
    """Score any number of texts (or rows: a `text` column, or records of the fields the
    version was trained on, joined as gather joined them) with a registered version, in
    requests of its max_batch, after checking them all (so a bad row is reported by its
    position). The texts scored are in the answer's attrs["texts"]."""
    import tempfile

    from nlpflow.errors import DataSourceError
    from nlpflow.serving.nlp import model_task
    from nlpflow.serving.pyfunc import input_texts
    from nlpflow.serving.shaping import InputShape

    if not len(rows):
        raise DataSourceError("no texts to score: pass --text, or an --input holding some.")
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame({TEXT_COLUMN: list(rows)})
    with tempfile.TemporaryDirectory(prefix="nlpflow-model-") as tmp:
        model = load_registered(ref, settings, Path(tmp))
        config = served_config(model)
        size = int(config["max_batch"])
        try:
            texts = input_texts(frame, InputShape.from_config(config))
            check_texts(texts, max_chars=int(config["max_chars"]), max_batch=len(texts))
        except InvalidRequest as exc:
            raise DataSourceError(str(exc)) from None
        parts = [
            model.predict(pd.DataFrame({TEXT_COLUMN: texts[start : start + size]}))
            for start in range(0, len(texts), size)
        ]
        task = model_task(model.unwrap_python_model().model)
    answer = pd.concat(parts, ignore_index=True)
    answer.attrs["task"] = task  # whose Output shapes the answer (display, json_rows)
    answer.attrs["texts"] = texts
    return answer
