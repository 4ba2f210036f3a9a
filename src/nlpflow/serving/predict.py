"""Scoring texts with a registered version from the command line (`nlpflow predict`): texts
from `--text` or a file, checked as the served model checks them, scored in requests of its
max_batch.

    nlpflow predict --model nlpflow-support-tickets@champion --input tickets.csv
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

    if not path.is_file():
        raise DataSourceError(f"--input {path}: no such file.")
    suffix = path.suffix.lower()
    try:
        if suffix in {".txt", ""}:
            return [
                line for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()
            ]
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
    if TEXT_COLUMN not in frame.columns:
        raise DataSourceError(
            f"--input {path} has no {TEXT_COLUMN!r} column (columns: "
            f"{', '.join(map(str, frame.columns)) or 'none'}); rename the column holding the text."
        )
    return list(frame[TEXT_COLUMN])


def predict_registered(ref: ModelRef, settings: Settings, texts: list[Any]) -> pd.DataFrame:
    """Score any number of texts with a registered version, in requests of its max_batch, after
    checking them all (so a bad row is reported by its position in `texts`)."""
    import tempfile

    from nlpflow.errors import DataSourceError
    from nlpflow.serving.nlp import model_task

    if not texts:
        raise DataSourceError("no texts to score: pass --text, or an --input holding some.")
    with tempfile.TemporaryDirectory(prefix="nlpflow-model-") as tmp:
        model = load_registered(ref, settings, Path(tmp))
        config = served_config(model)
        size = int(config["max_batch"])
        try:
            check_texts(texts, max_chars=int(config["max_chars"]), max_batch=len(texts))
        except InvalidRequest as exc:
            raise DataSourceError(str(exc)) from None
        parts = [
            model.predict(pd.DataFrame({TEXT_COLUMN: texts[start : start + size]}))
            for start in range(0, len(texts), size)
        ]
        task = model_task(model.unwrap_python_model().model)
    frame = pd.concat(parts, ignore_index=True)
    frame.attrs["task"] = task  # whose Output shapes the answer (display, json_rows)
    return frame
