"""The registered model: an MLflow pyfunc that takes raw text.

It cleans text with the same TextPreprocessor (and the same params) the training data went
through, then predicts, so training and serving cannot drift apart.

Input: a DataFrame with a `text` column (or a list of strings).
Output: a DataFrame with `label`, `score` (its probability) and `proba_<label>` per class.

Every request is checked before the model sees it (limits from params `serve`, baked into the
version at registration as its MLflow model_config): no text may be missing, blank or longer than
`max_chars`, and a request holds at most `max_batch` texts. A bad request raises an
MlflowException with error code INVALID_PARAMETER_VALUE, which MLflow's scoring server answers
with HTTP 400 and the message as JSON (any other exception would become a 400 with a generic
"unexpected error" message and a traceback).

    nlpflow serve --model nlpflow-classifier@champion --port 5001
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pandas as pd
from mlflow.pyfunc import PythonModel

from nlpflow.errors import ModelError

if TYPE_CHECKING:
    from nlpflow.config.settings import Settings

MODEL_ARTIFACT = "model_dir"
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
    import numpy as np

    from nlpflow.training.families import predict_labels

    if texts:
        labels, proba = predict_labels(model, cleaner.transform(texts))
    else:  # an empty request gets an empty answer (scikit-learn refuses 0 rows)
        labels, proba = [], np.zeros((0, len(model.labels)))
    frame = pd.DataFrame({"label": labels, "score": proba.max(axis=1).astype(float)})
    for i, name in enumerate(model.labels):
        frame[f"proba_{name}"] = proba[:, i].astype(float)
    return frame


def _texts(model_input: Any) -> list[Any]:
    """The texts of a request, unchecked. A DataFrame needs a `text` column: guessing another
    column would answer for the wrong data."""
    if isinstance(model_input, pd.DataFrame):
        if TEXT_COLUMN not in model_input.columns:
            columns = ", ".join(map(str, model_input.columns)) or "none"
            raise InvalidRequest(
                f"the request has no {TEXT_COLUMN!r} column (columns: {columns}); send "
                f'{{"dataframe_split": {{"columns": ["text"], "data": [["..."]]}}}} or '
                f'{{"inputs": {{"text": ["..."]}}}}.'
            )
        return list(model_input[TEXT_COLUMN])
    if isinstance(model_input, pd.Series):
        return list(model_input)
    if isinstance(model_input, str):
        return [model_input]
    if isinstance(model_input, dict) and TEXT_COLUMN in model_input:
        value = model_input[TEXT_COLUMN]
        return [value] if isinstance(value, str) else list(value)
    try:
        return list(model_input)
    except TypeError:
        raise InvalidRequest(
            f"cannot read texts from a {type(model_input).__name__}; send a DataFrame with a "
            f"{TEXT_COLUMN!r} column or a list of strings."
        ) from None


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
        self.model = load_model(folder)
        self.quantized = apply_quantization(self.model, str(self.config["quantize"]))
        self.cleaner = TextPreprocessor(PreprocessParams(**load_manifest(folder)["preprocess"]))

    # model_input's hint is DataFrame on purpose: MLflow infers no schema from it (the
    # registered signature is the schema) and stops warning that type hints are missing.
    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

        try:
            texts = check_texts(
                _texts(model_input),
                max_chars=int(self.config["max_chars"]),
                max_batch=int(self.config["max_batch"]),
            )
        except InvalidRequest as exc:
            # The scoring server turns this error code into HTTP 400 with the message as JSON.
            raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from None
        return in_predict_thread(predict_frame, self.model, self.cleaner, texts)


# --- Registered versions and the server process (used by `nlpflow serve` and `nlpflow predict`)

CHAMPION = "champion"


@dataclass(frozen=True)
class ModelRef:
    """One registered version, found in the registry (an alias resolved to its version)."""

    name: str
    version: int
    alias: str | None = None

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    def __str__(self) -> str:
        return f"{self.name} version {self.version}" + (f" (@{self.alias})" if self.alias else "")


def parse_model_spec(spec: str | None, default_name: str) -> tuple[str, str | None, int | None]:
    """`NAME@ALIAS`, `NAME/VERSION`, `NAME` (its champion) or None (the default model's champion),
    with or without `models:/` -> (name, alias, version)."""
    text = (spec or default_name).strip().removeprefix("models:/")
    name, at, alias = text.rpartition("@")
    if at:
        if not name or not alias:
            raise ModelError(f"--model {spec!r}: write NAME@ALIAS, e.g. {default_name}@champion.")
        return name, alias, None
    name, slash, version = text.rpartition("/")
    if slash:
        if not name or not version.isdigit():
            raise ModelError(f"--model {spec!r}: write NAME/VERSION with a number, e.g. {name}/3.")
        return name, None, int(version)
    if not text:
        raise ModelError("--model is empty: write NAME@ALIAS or NAME/VERSION.")
    return text, CHAMPION, None


def resolve_model(spec: str | None, settings: Settings) -> ModelRef:
    """The registered version `spec` names, or ModelError saying what the registry holds."""
    from mlflow.exceptions import MlflowException

    from nlpflow.tracking.tracker import Tracker

    name, alias, version = parse_model_spec(spec, settings.registered_model)
    uri = settings.resolved_tracking_uri
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        # MLflow would create an empty store here and then report the model missing.
        raise ModelError(
            f"no MLflow store at {uri}: train and register a model first (nlpflow run), or "
            "point NLPFLOW_TRACKING_URI (or NLPFLOW_PROJECT_DIR) at the store that holds it."
        )
    client = Tracker(settings).client
    try:
        registered = client.get_registered_model(name)
    except MlflowException:
        names = [m.name for m in client.search_registered_models(max_results=20)]
        raise ModelError(
            f"no registered model {name!r} in {uri} (registered: {', '.join(names) or 'none'}). "
            "Pass --model NAME@ALIAS, or set NLPFLOW_REGISTERED_MODEL / NLPFLOW_TRACKING_URI."
        ) from None
    aliases = dict(registered.aliases or {})  # alias -> version
    if alias is not None:
        if alias not in aliases:
            known = ", ".join(f"@{a} -> version {v}" for a, v in sorted(aliases.items()))
            raise ModelError(
                f"model {name!r} has no alias {alias!r} (aliases: {known or 'none'}). Use one of "
                f"those, or --model {name}/VERSION, or promote a version to {alias!r}."
            )
        return ModelRef(name, int(aliases[alias]), alias)
    try:
        client.get_model_version(name, str(version))
    except MlflowException:
        versions = sorted(int(v.version) for v in client.search_model_versions(f"name='{name}'"))
        raise ModelError(
            f"model {name!r} has no version {version} (versions: "
            f"{', '.join(map(str, versions)) or 'none'}); pass one of those."
        ) from None
    return ModelRef(name, int(version or 0))


def serve_command(*, host: str, port: int, workers: int) -> list[str]:
    """uvicorn running nlpflow.serving.app: MLflow's scoring server behind nlpflow's request
    guard (`mlflow models serve` offers no hook for one), in this environment: never a new one."""
    import sys

    return [
        sys.executable, "-m", "uvicorn", "--factory", "nlpflow.serving.app:build_app",
        "--host", host, "--port", str(port), "--workers", str(workers),
    ]  # fmt: skip


def download_version(ref: ModelRef, settings: Settings, dst: Path) -> Path:
    """The pyfunc files of `ref`, downloaded into `dst` through the settings' store (not its
    models:/ URI, which MLflow resolves with the process-wide registry URI)."""
    import mlflow.artifacts

    from nlpflow.tracking.tracker import Tracker

    tracker = Tracker(settings)
    source = tracker.client.get_model_version_download_uri(ref.name, str(ref.version))
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=source, tracking_uri=tracker.uri, dst_path=str(dst)
    )
    return Path(local)


def serve_registered(
    ref: ModelRef, settings: Settings, *, host: str, port: int, workers: int,
    threads: int | None = None,
) -> int:  # fmt: skip
    """Serve the pinned version (the alias was resolved once, at start, so the version
    announced is the version served) until a signal; returns the server's exit code."""
    import tempfile

    from nlpflow.serving.app import MODEL_PATH_ENV

    with tempfile.TemporaryDirectory(prefix="nlpflow-serve-") as tmp:
        env = serve_environment(settings, threads=threads, workers=workers)
        env[MODEL_PATH_ENV] = str(download_version(ref, settings, Path(tmp)))
        return run_server(serve_command(host=host, port=port, workers=workers), env)


def default_threads(workers: int) -> int:
    """torch threads per server worker: the physical cores shared out. More would oversubscribe
    them; on a busy 2-core machine two threads per request made MiniLM's one-text p50 5x worse
    than one (82 against 16 ms: a parallel region waits for its slowest thread)."""
    import os

    try:
        import psutil

        cores = psutil.cpu_count(logical=False) or os.cpu_count() or 1
    except ImportError:
        cores = os.cpu_count() or 1
    return max(1, cores // workers)


def serve_environment(
    settings: Settings, *, threads: int | None = None, workers: int = 1
) -> dict[str, str]:
    """The server's environment: this one, plus the store, offline switches and no installs,
    and `threads` torch threads per worker (None: OMP_NUM_THREADS if set, else
    default_threads)."""
    import os
    import sys

    env = dict(os.environ)
    if threads is None and not env.get("OMP_NUM_THREADS"):
        threads = default_threads(workers)
    if threads is not None:
        env.update({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)})
    uri = settings.resolved_tracking_uri
    env.update({
        "MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri,
        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
        # Anything run by name is this interpreter's, even when the venv isn't activated.
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        # Belt and braces: the server runs in this interpreter and builds no environment; these
        # make sure nothing in it could install a package if a code path tried.
        "MLFLOW_DISABLE_ENV_CREATION": "true", "PIP_NO_INDEX": "1",
    })  # fmt: skip
    return env


def check_port_free(host: str, port: int, *, option: str = "--port") -> None:
    """uvicorn would fail after the model loaded (a minute for a transformer): fail first."""
    import socket

    with socket.socket() as probe:
        # as uvicorn binds: connections of a server that just stopped (TIME_WAIT) don't count
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ModelError(
                f"cannot listen on {host}:{port} ({exc.strerror}); pick another {option} or stop "
                "what uses it."
            ) from None


def run_server(command: list[str], env: dict[str, str]) -> int:
    """Run the server until it exits; SIGINT/SIGTERM/SIGHUP go to it and its workers. Returns its
    exit code (128 + N when a signal N ended it, as a shell reports it)."""
    import contextlib
    import os
    import signal
    import subprocess

    from nlpflow.shutdown import parent_death_signal

    # Its own process group: MLflow starts uvicorn (and uvicorn its workers) as children, and a
    # signal must reach them all, once (a terminal's Ctrl-C would also hit a shared group).
    child = subprocess.Popen(
        command, env=env, start_new_session=True, preexec_fn=parent_death_signal()
    )

    def forward(signum: int, _frame: Any) -> None:
        with contextlib.suppress(ProcessLookupError):  # already gone
            os.killpg(child.pid, signum)

    forwarded = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, forward) for sig in forwarded}
    try:
        code = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 - code if code < 0 else code


def load_registered(ref: ModelRef, settings: Settings, dst: Path) -> Any:
    """The pyfunc of `ref`, downloaded into `dst` (keep it while the model is used: the model's
    code is imported from there). No process-wide tracking URI is set."""
    from nlpflow.release.registry import load_version_pyfunc
    from nlpflow.tracking.tracker import Tracker

    return load_version_pyfunc(Tracker(settings), ref.name, ref.version, dst)


def served_config(pyfunc_model: Any) -> dict[str, Any]:
    """The limits and quantization a loaded pyfunc enforces (defaults for older versions)."""
    return default_config() | dict(getattr(pyfunc_model, "model_config", None) or {})


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
    return pd.concat(parts, ignore_index=True)
