"""A pyfunc model's files in MLflow's format: saved from a spec, downloaded, loaded.

The spec says what nlpflow ships (nlpflow.release.publish builds it); this module is the only
place that turns it into MLflow's model format, so the release code imports no mlflow.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow.models import Model
    from mlflow.pyfunc import PyFuncModel


@dataclass(frozen=True)
class PyfuncSpec:
    """A "models from code" pyfunc: `entry` is the python file MLflow runs to get the model."""

    entry: Path
    artifacts: dict[str, str]  # name -> local path, copied into the model
    code_paths: list[str]  # shipped with the model and put on sys.path when it loads
    requirements: list[str]  # pinned pip requirements
    inputs: dict[str, str]  # input column -> MLflow type ("string", "double", ...)
    outputs: dict[str, str]
    input_example: dict[str, Any] | None = None
    model_config: dict[str, Any] = field(default_factory=dict)
    optional_inputs: tuple[str, ...] = ()  # input columns a request may leave out


def save_pyfunc(path: Path, spec: PyfuncSpec, *, mlflow_model: Model | None = None) -> None:
    """Write the pyfunc of `spec` into the folder `path` (which must not exist)."""
    import mlflow.pyfunc
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    def schema(columns: dict[str, str], optional: tuple[str, ...] = ()) -> Schema:
        specs: list[ColSpec | TensorSpec] = [
            ColSpec(kind, name, required=name not in optional) for name, kind in columns.items()
        ]
        return Schema(specs)

    mlflow.pyfunc.save_model(
        path=path,
        python_model=str(spec.entry),
        artifacts=spec.artifacts,
        code_paths=spec.code_paths,
        pip_requirements=spec.requirements,  # explicit: inference would re-load the model
        signature=ModelSignature(
            inputs=schema(spec.inputs, spec.optional_inputs), outputs=schema(spec.outputs)
        ),
        input_example=spec.input_example,
        model_config=spec.model_config,
        mlflow_model=mlflow_model,
    )


def described_model(*, artifact_location: str, run_id: str, model_id: str) -> Model:
    """The MLflow model metadata of a logged model, for save_pyfunc's `mlflow_model`."""
    from mlflow.models import Model

    return Model(
        artifact_path=artifact_location, run_id=run_id, model_id=model_id, model_uuid=model_id
    )


def download_model(uri: str, *, tracking_uri: str, dst: Path | None = None) -> Path:
    """The files at artifact `uri` (a version's source, a logged model's location), through
    `tracking_uri` (never the process-wide one), into `dst` (None: a new temporary folder)."""
    import mlflow.artifacts

    folder = str(dst) if dst is not None else tempfile.mkdtemp(prefix="nlpflow-version-")
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=uri, tracking_uri=tracking_uri, dst_path=folder
    )
    return Path(local)


def load_pyfunc(path: Path | str) -> PyFuncModel:
    """The pyfunc saved in the local folder `path`."""
    import mlflow.pyfunc

    return mlflow.pyfunc.load_model(str(path))
