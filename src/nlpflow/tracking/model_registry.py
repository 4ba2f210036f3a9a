"""The model registry and logged models, as named operations.

Versions come back as `VersionView`s (plain data). Reads follow one policy: "not found" is the
only answer read as absent (None); any other failure raises (nlpflow.tracking.connection.failure),
so a registry that did not answer never passes for a model without a champion.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nlpflow.tracking.connection import ALREADY_EXISTS, Connection, error_code, failure

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.pyfunc import PyFuncModel

    from nlpflow.tracking.model_files import PyfuncSpec

MODEL_VERSIONS = "mlflow.modelVersions"  # a logged model's tag that lists its registered versions


@dataclass(frozen=True)
class VersionView:
    name: str
    version: int
    run_id: str | None
    model_id: str | None  # the logged model it was registered from
    created: int | None  # milliseconds since the epoch
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LoggedModelView:
    model_id: str
    artifact_location: str


def version_view(found: ModelVersion) -> VersionView:
    tags = dict(found.tags or {})
    return VersionView(
        name=str(found.name), version=int(found.version), run_id=found.run_id or None,
        model_id=getattr(found, "model_id", None) or tags.get("model_id"),
        created=found.creation_timestamp, tags=tags,
    )  # fmt: skip


class ModelRegistry(Connection):
    # ------------------------------------------------------------------ reads

    def aliases(self, name: str, *, doing: str | None = None) -> dict[str, int] | None:
        """Alias -> version of registered model `name`; None when there is no such model.
        `doing`: what the caller was doing, for the message should the registry fail.

        The model's aliases, not get_model_version_by_alias: that reports a missing alias as
        INVALID_PARAMETER_VALUE, the same code as a malformed request."""
        doing = doing or f"reading the aliases of {name!r}"
        model = self._lookup(doing, partial(self.client.get_registered_model, name))
        return None if model is None else {a: int(v) for a, v in (model.aliases or {}).items()}

    def find_version(self, name: str, version: int) -> VersionView | None:
        """Version `version` of `name`; None when the registry has no such version (or model)."""
        read = partial(self.client.get_model_version, name, str(version))
        found = self._lookup(f"reading version {version} of {name!r}", read)
        return None if found is None else version_view(found)

    def search_versions(self, filter_string: str) -> list[VersionView]:
        """Versions matching MLflow's `filter_string` (`name = 'x'`, `run_id = '...'`)."""
        search = partial(self.client.search_model_versions, filter_string)
        return [version_view(v) for v in self._read("searching model versions", search)]

    def versions(self, name: str) -> list[int]:
        return sorted(v.version for v in self.search_versions(f"name = '{name}'"))

    def registered_names(self, limit: int = 20) -> list[str]:
        listed = self._read(
            "listing registered models",
            partial(self.client.search_registered_models, max_results=limit),
        )
        return [str(m.name) for m in listed]

    def version_source(self, name: str, version: int) -> str:
        """Where the version's files are (its own artifact location, not its models:/ URI:
        MLflow resolves those with the process-wide registry URI, which nlpflow never sets)."""
        read = partial(self.client.get_model_version_download_uri, name, str(version))
        return str(self._read(f"locating version {version} of {name!r}", read))

    def download_version(self, name: str, version: int, dst: Path) -> Path:
        """The pyfunc files of one registered version, downloaded into `dst`."""
        from nlpflow.tracking.model_files import download_model

        return download_model(self.version_source(name, version), tracking_uri=self.uri, dst=dst)

    def load_version(self, name: str, version: int, dst: Path | None = None) -> PyFuncModel:
        """The pyfunc of one registered version, downloaded into `dst` (a new temporary folder
        when None; keep it while the model is used: its code is imported from there)."""
        source = self.version_source(name, version)
        return self.load_model_at(source, dst, shown=f"models:/{name}/{version}")

    def load_model_at(
        self, uri: str, dst: Path | None = None, *, shown: str | None = None
    ) -> PyFuncModel:
        """The pyfunc stored at artifact `uri`, downloaded through this tracking URI; a
        ModelError when its files cannot be read or loaded (RegistryUnavailableError when the
        server did not answer)."""
        from mlflow.exceptions import MlflowException

        from nlpflow.errors import ModelError
        from nlpflow.tracking.connection import is_unreachable
        from nlpflow.tracking.model_files import download_model, load_pyfunc

        try:
            return load_pyfunc(download_model(uri, tracking_uri=self.uri, dst=dst))
        except (MlflowException, OSError) as exc:
            if is_unreachable(exc):
                raise failure(self.uri, f"downloading {shown or uri}", exc) from None
            raise ModelError(f"{shown or uri} could not be loaded from {self.uri}: {exc}") from None

    # ------------------------------------------------------------------ writes

    def ensure_registered_model(self, name: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self._call("registering the model", partial(self.client.create_registered_model, name))
        except MlflowException as exc:
            if error_code(exc) != ALREADY_EXISTS:
                raise

    def create_version(
        self, name: str, source: str, *, run_id: str, model_id: str, tags: dict[str, str]
    ) -> int:
        create = partial(
            self.client.create_model_version, name, source, run_id=run_id, model_id=model_id,
            tags=tags,
        )  # fmt: skip
        return int(self._call(f"registering a version of {name!r}", create).version)

    def set_version_tags(self, name: str, version: int, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            tag = partial(self.client.set_model_version_tag, name, str(version), key, value)
            self._call(f"tagging version {version} of {name!r}", tag)

    def describe_version(self, name: str, version: int, description: str) -> None:
        update = partial(
            self.client.update_model_version, name, str(version), description=description
        )
        self._call(f"describing version {version} of {name!r}", update)

    def set_alias(self, name: str, alias: str, version: int) -> None:
        move = partial(self.client.set_registered_model_alias, name, alias, str(version))
        self._call(f"pointing {alias} of {name!r} at version {version}", move)

    def delete_alias(self, name: str, alias: str) -> None:
        remove = partial(self.client.delete_registered_model_alias, name, alias)
        self._call(f"removing alias {alias} of {name!r}", remove)

    def delete_version(self, name: str, version: int) -> None:
        remove = partial(self.client.delete_model_version, name, str(version))
        self._call(f"deleting version {version} of {name!r}", remove)

    # ------------------------------------------------------------------ logged models

    def log_pyfunc(
        self, run_id: str, spec: PyfuncSpec, *, name: str, model_type: str,
        tags: dict[str, str],
    ) -> LoggedModelView:  # fmt: skip
        """Log `spec` as an MLflow 3 logged model of run `run_id` (the run's params copied onto
        it), READY; returns it.

        Through the explicit client, not mlflow.start_run/log_model: those set the process-wide
        tracking URI (and MLFLOW_TRACKING_URI for every child process), which would leak into
        other pipelines that share a worker. So this does what mlflow.pyfunc.log_model does,
        step by step: create the logged model, list it among the run's outputs (the runs
        table's Models column), upload the files into its own artifact location, finalize it.
        Each call makes a new logged model, so a retry never overwrites files a version serves.
        """
        from mlflow.entities import LoggedModelOutput

        from nlpflow.tracking.model_files import described_model, save_pyfunc

        client = self.client
        run = self._call("reading the run", partial(client.get_run, run_id))
        logged = self._call("creating the logged model", partial(
            client.create_logged_model, run.info.experiment_id, name=name, source_run_id=run_id,
            model_type=model_type, params=dict(run.data.params), tags=tags,
        ))  # fmt: skip
        try:
            client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
            described = described_model(artifact_location=logged.artifact_location,
                                         run_id=run_id, model_id=logged.model_id)  # fmt: skip
            with tempfile.TemporaryDirectory(prefix="nlpflow-pyfunc-") as tmp:
                local = Path(tmp) / "model"
                save_pyfunc(local, spec, mlflow_model=described)
                self._call("uploading the model",
                           partial(client.log_model_artifacts, logged.model_id, str(local)))  # fmt: skip
        except BaseException:
            client.finalize_logged_model(logged.model_id, "FAILED")
            raise
        client.finalize_logged_model(logged.model_id, "READY")
        return LoggedModelView(str(logged.model_id), str(logged.artifact_location))

    def logged_model_tags(self, model_id: str) -> dict[str, str]:
        found = self._read(
            "reading the logged model", partial(self.client.get_logged_model, model_id)
        )
        return dict(found.tags or {})

    def set_logged_model_tags(self, model_id: str, tags: dict[str, Any]) -> None:
        tag = partial(self.client.set_logged_model_tags, model_id, tags)
        self._call("tagging the logged model", tag)

    def register_logged_model(
        self, name: str, logged: LoggedModelView, *, run_id: str, tags: dict[str, str]
    ) -> int:
        """A new version of `name` from a logged model. Its source is the logged model's own
        artifact location, not `models:/<model_id>`: MLflow's SQL registry resolves that URI
        with the process-wide tracking URI, whatever this client's is. The SQL registry also
        keeps no model_id on a version, so the link is recorded both ways as MLflow's UI reads
        it (the logged model's `mlflow.modelVersions` tag) and as a `model_id` version tag."""
        self.ensure_registered_model(name)
        version = self.create_version(
            name, logged.artifact_location, run_id=run_id, model_id=logged.model_id,
            tags=tags | {"model_id": logged.model_id},
        )  # fmt: skip
        listed = json.loads(self.logged_model_tags(logged.model_id).get(MODEL_VERSIONS, "[]"))
        listed.append({"name": name, "version": str(version)})
        self.set_logged_model_tags(logged.model_id, {MODEL_VERSIONS: json.dumps(listed)})
        return version
