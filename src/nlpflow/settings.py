"""Where things are: read from the environment (never from params.yaml).

| variable                      | default                          | meaning                              |
|-------------------------------|----------------------------------|--------------------------------------|
| NLPFLOW_PROJECT_DIR           | current directory                | folder with params.yaml and dvc.yaml |
| NLPFLOW_DATA_ROOT             | the project dir                  | relative `data.source` paths resolve here |
| NLPFLOW_TRACKING_URI          | MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the project |
| NLPFLOW_ARTIFACT_ROOT         | `mlartifacts/` beside the SQLite file (local stores only) |
| NLPFLOW_REGISTERED_MODEL      | nlpflow-classifier               | registry model name                  |
| NLPFLOW_TELEMETRY             | 0                                | 1 leaves the libraries' telemetry as they default |
| NLPFLOW_DVC_REMOTE            | the project's default DVC remote, else ~/.local/share/nlpflow/dvc-remote | where the flow pushes data and models: a folder or s3:// URL (nlpflow.remote) |
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# Telemetry switches of every library we drive. Set before those libraries are imported.
TELEMETRY_OFF = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DVC_NO_ANALYTICS": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "GX_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
}

# Prefect's temporary server migrates a fresh SQLite database on first use; on a slow 2-core
# machine that takes longer than Prefect's 20 s default start-up timeout.
PREFECT_DEFAULTS = {
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "600",
    # Progress bars of libraries are noise in scheduled, non-interactive runs.
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TOKENIZERS_PARALLELISM": "false",
}


class Settings(BaseSettings):
    """Locations and names, from `NLPFLOW_*` environment variables."""

    model_config = SettingsConfigDict(env_prefix="NLPFLOW_", extra="ignore")

    project_dir: Path = Field(default_factory=Path.cwd)
    data_root: Path | None = None
    tracking_uri: str | None = Field(
        default=None, validation_alias=AliasChoices("NLPFLOW_TRACKING_URI", "MLFLOW_TRACKING_URI")
    )
    artifact_root: str | None = None
    registered_model: str = "nlpflow-classifier"
    telemetry: bool = False
    dvc_remote: str | None = None  # a folder or s3:// URL; None: see nlpflow.remote

    @property
    def root(self) -> Path:
        return self.project_dir.resolve()

    @property
    def resolved_tracking_uri(self) -> str:
        return self.tracking_uri or f"sqlite:///{self.root / 'mlflow.db'}"

    @property
    def resolved_artifact_root(self) -> str | None:
        """Artifacts sit beside a local SQLite store; servers choose their own."""
        if self.artifact_root:
            return self.artifact_root
        uri = self.resolved_tracking_uri
        if uri.startswith("sqlite:///"):
            return (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").as_uri()
        return None

    def resolve_data(self, source: str | Path) -> Path:
        path = Path(source).expanduser()
        if path.is_absolute():
            return path
        return (self.data_root or self.root) / path


def apply_environment_defaults() -> None:
    """Turn telemetry off (unless NLPFLOW_TELEMETRY=1) and set safe Prefect defaults.

    Values the user already exported win: we only fill in what is unset.
    """
    defaults = dict(PREFECT_DEFAULTS)
    if os.environ.get("NLPFLOW_TELEMETRY", "0").lower() not in {"1", "true", "yes"}:
        defaults.update(TELEMETRY_OFF)
    for key, value in defaults.items():
        os.environ.setdefault(key, value)


def load_settings() -> Settings:
    return Settings()
