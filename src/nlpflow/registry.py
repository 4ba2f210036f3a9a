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
from nlpflow.params import RegisterParams
from nlpflow.tracking import Tracker

CHAMPION, CHALLENGER = "champion", "challenger"
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


def _requirements() -> list[str]:
    pins = []
    for name in _REQUIREMENTS:
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            continue
    return pins


def _log_pyfunc(tracker: Tracker, run_id: str, model_dir: Path) -> str:
    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    from nlpflow.serving import MODEL_ARTIFACT, TextClassifierModel

    manifest = load_manifest(model_dir)
    outputs = [ColSpec("string", "label"), ColSpec("double", "score")]
    outputs += [ColSpec("double", f"proba_{label}") for label in manifest["labels"]]
    signature = ModelSignature(inputs=Schema([ColSpec("string", "text")]), outputs=Schema(outputs))
    mlflow.set_tracking_uri(tracker.uri)
    mlflow.set_registry_uri(tracker.uri)
    # MLflow nags about type hints, input examples and cloudpickle on every log; the signature
    # above is explicit, and the pickled object is our own class.
    with warnings.catch_warnings(), mlflow.start_run(run_id=run_id, log_system_metrics=False):
        warnings.simplefilter("ignore", UserWarning)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=TextClassifierModel(),
            artifacts={MODEL_ARTIFACT: str(model_dir)},
            # Ship nlpflow's own code with the model so it loads where nlpflow isn't installed.
            code_paths=[str(Path(__file__).parent)],
            pip_requirements=_requirements(),  # explicit: inference would re-load the model
            signature=signature,
        )
    return str(info.model_uri)


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
    model_uri = _log_pyfunc(tracker, run_id, model_dir)

    import mlflow

    previous, best = champion_score(tracker, model_name, params.promote_metric)
    registered = mlflow.register_model(
        model_uri, model_name, tags={f"test_{params.promote_metric}": str(score)}
    )
    version_number = int(registered.version)
    client = tracker.client
    client.set_model_version_tag(model_name, registered.version, "run_id", run_id)
    client.set_registered_model_alias(model_name, CHALLENGER, registered.version)
    promoted = best is None or score >= best
    if promoted:
        client.set_registered_model_alias(model_name, CHAMPION, registered.version)
    report = RegistrationReport(
        model_name=model_name, version=version_number, run_id=run_id, model_uri=model_uri,
        score=score, metric=params.promote_metric,
        aliases=[CHALLENGER, CHAMPION] if promoted else [CHALLENGER],
        previous_champion=previous, promoted=promoted,
    )  # fmt: skip
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(json.dumps(report.model_dump(), indent=2))
    return report
