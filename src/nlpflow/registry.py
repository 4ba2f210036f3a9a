"""register: log the model to MLflow as a raw-text pyfunc, register a version, move aliases.

The new version gets alias `challenger`. It takes `champion` when its test score (params
`register.promote_metric`) is at least the current champion's.

    nlpflow stage register
"""

from __future__ import annotations

import json
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from nlpflow.errors import StageInputError
from nlpflow.models import load_manifest
from nlpflow.params import Params, RegisterParams
from nlpflow.tracking import Tracker

CHAMPION, CHALLENGER = "champion", "challenger"
MODEL_PATH = "model"  # artifact folder of the pyfunc inside the run
_REQUIREMENTS = ("mlflow", "pandas", "numpy", "scikit-learn", "spacy", "spacy-lookups-data",
                 "torch", "transformers", "pydantic", "joblib")  # fmt: skip


class RegistrationReport(BaseModel):
    model_name: str
    version: int
    run_id: str
    model_uri: str
    score: float
    metric: str
    aliases: list[str]
    previous_champion: int | None
    promoted: bool


def _requirements(manifest: dict[str, Any]) -> list[str]:
    """The packages serving needs, pinned to the versions trained with; the NER pipeline
    only when the model's text was entity-masked (its package name is the pipeline's)."""
    names = list(_REQUIREMENTS)
    preprocess = manifest.get("preprocess") or {}
    if preprocess.get("mask_entities"):
        names.append(str(preprocess.get("ner_pipeline", "")).replace("_", "-"))
    pins = []
    for name in names:
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            continue
    return pins


def _log_pyfunc(
    tracker: Tracker, run_id: str, model_dir: Path, model_config: dict[str, Any]
) -> str:
    """Save the pyfunc locally, upload it into the run; return its artifact location.

    Through the explicit client, not mlflow.start_run/log_model: those set the process-wide
    tracking URI (and MLFLOW_TRACKING_URI for every child process), which would leak into
    other pipelines that share a worker.
    """
    import tempfile

    import mlflow.pyfunc
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    from nlpflow.serving import MODEL_ARTIFACT, TextClassifierModel

    manifest = load_manifest(model_dir)
    outputs: list[ColSpec | TensorSpec] = [ColSpec("string", "label"), ColSpec("double", "score")]
    outputs += [ColSpec("double", f"proba_{label}") for label in manifest["labels"]]
    signature = ModelSignature(inputs=Schema([ColSpec("string", "text")]), outputs=Schema(outputs))
    with tempfile.TemporaryDirectory(prefix="nlpflow-pyfunc-") as tmp, warnings.catch_warnings():
        # MLflow warns about type hints, input examples and cloudpickle on every save; the
        # signature above is explicit and the pickled object is our own class.
        warnings.simplefilter("ignore", UserWarning)
        mlflow.pyfunc.save_model(
            path=Path(tmp) / MODEL_PATH,
            python_model=TextClassifierModel(),
            artifacts={MODEL_ARTIFACT: str(model_dir)},
            # Ship nlpflow's own code with the model so it loads where nlpflow isn't installed.
            code_paths=[str(Path(__file__).parent)],
            pip_requirements=_requirements(manifest),  # explicit: inference would re-load the model
            signature=signature,
            model_config=model_config,  # serving limits and quantization, read by load_context
        )
        tracker.client.log_artifacts(run_id, str(Path(tmp) / MODEL_PATH), MODEL_PATH)
    return f"{tracker.client.get_run(run_id).info.artifact_uri}/{MODEL_PATH}"


def serving_config(params: Params) -> dict[str, Any]:
    """What the served model enforces and how it runs, baked into the registered version."""
    return {
        "max_chars": params.serve.max_chars,
        "max_batch": params.serve.max_batch,
        "quantize": params.register_.quantize,
    }


def publish_model(
    tracker: Tracker,
    *,
    run_id: str,
    model_dir: Path,
    model_name: str,
    params: Params,
    tags: dict[str, str] | None = None,
) -> int:
    """Log `model_dir` as the raw-text pyfunc into `run_id` and register it as a new version
    of `model_name` (no aliases moved). Returns the version number."""
    source = _log_pyfunc(tracker, run_id, model_dir, serving_config(params))
    return _new_version(
        tracker, model_name, source=source, run_id=run_id, tags={"run_id": run_id} | (tags or {})
    )


def _new_version(
    tracker: Tracker, name: str, *, source: str, run_id: str, tags: dict[str, str]
) -> int:
    from mlflow.exceptions import MlflowException

    try:
        tracker.client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    version = tracker.client.create_model_version(name, source, run_id=run_id, tags=tags)
    return int(version.version)


def champion_score(tracker: Tracker, name: str, metric: str) -> tuple[int | None, float | None]:
    from mlflow.exceptions import MlflowException

    try:
        current = tracker.client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None, None
    score = current.tags.get(f"test_{metric}")
    return int(current.version), float(score) if score is not None else None


def register(
    *,
    model_dir: Path,
    metrics_path: Path,
    dst: Path,
    params: RegisterParams,
    tracker: Tracker,
    run_id: str,
    model_name: str,
) -> RegistrationReport:
    """Log `model_dir` as a pyfunc in `run_id`, register it under `model_name`, set aliases."""
    if not metrics_path.exists():
        raise StageInputError(f"{metrics_path} is missing: run evaluate before register.")
    metrics: dict[str, Any] = json.loads(metrics_path.read_text())
    score = float(metrics[params.promote_metric])
    source = _log_pyfunc(tracker, run_id, model_dir)
    previous, best = champion_score(tracker, model_name, params.promote_metric)
    version_number = _new_version(
        tracker, model_name, source=source, run_id=run_id,
        tags={f"test_{params.promote_metric}": str(score), "run_id": run_id},
    )  # fmt: skip
    client = tracker.client
    client.set_registered_model_alias(model_name, CHALLENGER, str(version_number))
    promoted = best is None or score >= best
    if promoted:
        client.set_registered_model_alias(model_name, CHAMPION, str(version_number))
    model_uri = f"models:/{model_name}/{version_number}"
    report = RegistrationReport(
        model_name=model_name, version=version_number, run_id=run_id, model_uri=model_uri,
        score=score, metric=params.promote_metric,
        aliases=[CHALLENGER, CHAMPION] if promoted else [CHALLENGER],
        previous_champion=previous, promoted=promoted,
    )  # fmt: skip
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(json.dumps(report.model_dump(), indent=2))
    return report
