"""The registered model: an MLflow pyfunc that takes raw text.

It cleans text with the same TextPreprocessor (and the same params) the training data went
through, then predicts, so training and serving cannot drift apart.

Input: a DataFrame with a `text` column (or a list of strings); a model trained on several
fields (data.text_column [title, description]) takes records of those fields too, joined as
gather joined them (nlpflow.serving.shaping), and refuses a record missing one, naming it.
Output: what the model's NLP task returns (nlpflow.serving.nlp); for text-classification a
DataFrame with `label`, `score` (its probability) and `proba_<label>` per class.

With serve.rules at registration (hybrid serving), a rules file ships beside the model and its
rules override the model's label wherever one fires (nlpflow.training.families.rules_text).

Every request is checked before the model sees it (limits from params `serve`, baked into the
version at registration as its MLflow model_config): no text may be missing, blank or longer than
`max_chars`, and a request holds at most `max_batch` texts. A bad request raises an
MlflowException with error code INVALID_PARAMETER_VALUE, which MLflow's scoring server answers
with HTTP 400 and the message as JSON (any other exception would become a 400 with a generic
"unexpected error" message and a traceback).

This module is what every registered version runs (nlpflow/serving/pyfunc_entry.py declares it):
serving a version (nlpflow.serving.server) and scoring files from the CLI
(nlpflow.serving.predict) live apart from it.

    nlpflow serve --model nlpflow-support-tickets@champion --port 5001
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
from mlflow.pyfunc import PythonModel

from nlpflow.serving.shaping import InputShape

MODEL_ARTIFACT = "model_dir"
RULES_ARTIFACT = "override_rules"  # hybrid serving (params serve.rules): the rules file, if any
TEXT_COLUMN = "text"
MAX_PROBLEMS_LISTED = 5  # a 10,000-row request of blanks gets a readable message, not a book


def default_config() -> dict[str, Any]:
    """What a version registered before model_config existed is served with: today's defaults."""
    from nlpflow.config.params import RegisterParams, ServeParams

    serve = ServeParams()
    return {
        "max_chars": serve.max_chars,
        "max_batch": serve.max_batch,
        "quantize": RegisterParams().quantize,
    }


class InvalidRequest(Exception):
    """A request the model refuses; the message names the rows and the fix."""


def predict_frame(model: Any, cleaner: Any, texts: list[str]) -> pd.DataFrame:
    """The answer to `texts`, as the Output module of the model's NLP task shapes it
    (nlpflow.serving.nlp)."""
    from nlpflow.serving.nlp import output_of_model

    return output_of_model(model).predict_frame(model, cleaner, texts)


def input_texts(model_input: Any, shape: InputShape | None = None) -> list[Any]:
    """The texts of a request, unchecked: a `text` column, or (a model trained on fields,
    data.text_column [title, description]) those fields, joined as gather joined them. A
    DataFrame needs one or the other: guessing another column would answer for the wrong data."""
    shape = shape or InputShape()
    if isinstance(model_input, dict) and not shape.missing(model_input) and shape.fields:
        model_input = pd.DataFrame(
            {c: [v] if isinstance(v, str) else list(v) for c, v in model_input.items()}
        )
    if isinstance(model_input, pd.DataFrame):
        if shape.fields and not shape.missing(model_input.columns):
            return shape.texts(model_input)
        if TEXT_COLUMN not in model_input.columns:
            raise InvalidRequest(_no_text_message(model_input.columns, shape))
        return list(model_input[TEXT_COLUMN])
    if isinstance(model_input, pd.Series):
        return list(model_input)
    if isinstance(model_input, str):
        return [model_input]
    if isinstance(model_input, dict) and TEXT_COLUMN in model_input:
        value = model_input[TEXT_COLUMN]
        return [value] if isinstance(value, str) else list(value)
    if isinstance(model_input, dict):
        raise InvalidRequest(_no_text_message(list(model_input), shape))
    try:
        return list(model_input)
    except TypeError:
        raise InvalidRequest(
            f"cannot read texts from a {type(model_input).__name__}; send a DataFrame with a "
            f"{TEXT_COLUMN!r} column or a list of strings."
        ) from None


def _no_text_message(columns: Any, shape: InputShape) -> str:
    have = ", ".join(map(str, columns)) or "none"
    if shape.fields and have == "none":  # MLflow's schema took a bare list for no column
        return (
            "a bare list of texts cannot be matched to this model's input columns (text, or "
            f"the fields {', '.join(shape.text_columns)}): name them, as "
            '{"inputs": {"text": ["..."]}} or a DataFrame with a `text` column.'
        )
    if shape.fields:
        missing = ", ".join(map(repr, shape.missing(columns)))
        fields = ", ".join(f'"{c}": "..."' for c in shape.text_columns)
        return (
            f"the request lacks field(s) {missing} (it has: {have}); this model was trained "
            f"on {shape.describe()}: send records with every one of them, e.g. "
            f'{{"dataframe_records": [{{{fields}}}]}}, or the joined text as '
            f'{{"inputs": {{"text": ["..."]}}}}.'
        )
    return (
        f"the request has no {TEXT_COLUMN!r} column (columns: {have}); send "
        f'{{"dataframe_split": {{"columns": ["text"], "data": [["..."]]}}}} or '
        f'{{"inputs": {{"text": ["..."]}}}}.'
    )


# A missing value written as text. MLflow's scoring server turns `{"inputs": [null]}` into the
# string "None" (numpy's str) before the model sees it, and str() in a client does the same: no
# one means to classify these words, so they are refused as the missing values they stand for.
MISSING_WORDS = frozenset({"none", "null", "nan"})


def _problem(text: Any, max_chars: int) -> str | None:
    """What is wrong with one text (None: nothing). Types first, before any str()."""
    if text is None or (isinstance(text, float) and text != text):  # None or NaN
        return "text is missing"
    if not isinstance(text, str):
        return f"text is a {type(text).__name__}, not a string"
    if not text.strip():
        return "text is empty" if not text else "text is blank (whitespace only)"
    if text.strip().lower() in MISSING_WORDS:
        return f"text is {text.strip()!r}, a missing value written as text"
    if len(text) > max_chars:
        return f"text has {len(text):,} characters, more than serve.max_chars={max_chars:,}"
    return None


def check_texts(texts: list[Any], *, max_chars: int, max_batch: int) -> list[str]:
    """`texts` if every one is acceptable, else InvalidRequest listing the first problems."""
    if len(texts) > max_batch:
        raise InvalidRequest(
            f"{len(texts):,} texts in one request, more than serve.max_batch={max_batch:,}; "
            f"send at most {max_batch:,} texts per request."
        )
    problems = [
        f"row {i}: {problem}"
        for i, text in enumerate(texts)
        if (problem := _problem(text, max_chars)) is not None
    ]
    if problems:
        shown = "; ".join(problems[:MAX_PROBLEMS_LISTED])
        more = len(problems) - MAX_PROBLEMS_LISTED
        raise InvalidRequest(
            f"{len(problems)} of {len(texts)} texts rejected (rows count from 0): {shown}"
            + (f"; and {more} more" if more > 0 else "")
            + f". Send non-blank strings of at most {max_chars:,} characters (split longer "
            "documents); the limit is params serve.max_chars, set when the model was registered."
        )
    return list(texts)


T = TypeVar("T")
_RUNNER: Any = None  # the process's one prediction thread (see in_predict_thread)


def in_predict_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run `fn(*args)` in the process's one prediction thread and wait for it.

    torch's intra-op (OpenMP) thread team belongs to the thread that calls it. MLflow's scoring
    server calls predict from whichever asyncio worker thread is free, so teams multiplied and
    their idle threads spun against the working ones: one-text MiniLM requests took 25 ms
    through asyncio.to_thread against 14-16 ms from one fixed thread (2 cores, timed with the
    scoring server's own `invocations`). One thread per process, not per model, so several
    models in one process share one team too.
    """
    global _RUNNER
    if _RUNNER is None:
        from concurrent.futures import ThreadPoolExecutor

        _RUNNER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nlpflow-predict")
    return _RUNNER.submit(fn, *args).result()


class TextClassifierModel(PythonModel):
    def load_context(self, context: Any) -> None:
        from nlpflow.config.params import PreprocessParams
        from nlpflow.data.preprocess import TextPreprocessor
        from nlpflow.serving.quantize import apply_quantization
        from nlpflow.training.families import load_manifest, load_model

        folder = Path(context.artifacts[MODEL_ARTIFACT])
        # Versions registered before serving limits existed have no model_config: defaults.
        self.config = default_config() | dict(getattr(context, "model_config", None) or {})
        self.shape = InputShape.from_config(self.config)  # the fields it was trained on
        self.model: Any = load_model(folder)  # with serve.rules: a RulesOverride of it
        self.quantized = apply_quantization(self.model, str(self.config["quantize"]))
        rules = (getattr(context, "artifacts", None) or {}).get(RULES_ARTIFACT)
        if rules:  # hybrid: the rules decide where one fires, the model elsewhere
            from nlpflow.training.families.rules_text import RulesOverride

            self.model = RulesOverride.from_file(self.model, Path(rules))
        self.cleaner = TextPreprocessor(PreprocessParams(**load_manifest(folder)["preprocess"]))

    # model_input's hint is DataFrame on purpose: MLflow infers no schema from it (the
    # registered signature is the schema) and stops warning that type hints are missing.
    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

        try:
            texts = check_texts(
                input_texts(model_input, getattr(self, "shape", None)),
                max_chars=int(self.config["max_chars"]),
                max_batch=int(self.config["max_batch"]),
            )
        except InvalidRequest as exc:
            # The scoring server turns this error code into HTTP 400 with the message as JSON.
            raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from None
        answer = in_predict_thread(predict_frame, self.model, self.cleaner, texts)
        if self.cleaner.grown():  # a server's (or a batch's) texts would fill memory with
            # spaCy's vocabulary; a fresh cleaner changes no answer (nlpflow.data.preprocess)
            self.cleaner = type(self.cleaner)(self.cleaner.params)
        return answer


def served_config(pyfunc_model: Any) -> dict[str, Any]:
    """The limits and quantization a loaded pyfunc enforces (defaults for older versions)."""
    return default_config() | dict(getattr(pyfunc_model, "model_config", None) or {})
