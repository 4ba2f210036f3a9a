"""Settings come from the environment; every library's telemetry is off unless asked for."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from nlpflow.config.settings import TELEMETRY_OFF, Settings

PROBE = """
import json
from nlpflow.config.settings import apply_environment_defaults
apply_environment_defaults()
import dvc.analytics, huggingface_hub.constants as hf, prefect.settings as ps
from mlflow.telemetry.utils import is_telemetry_disabled
print(json.dumps({
    "prefect": ps.get_current_settings().server.analytics_enabled,
    "mlflow_disabled": is_telemetry_disabled(),
    "dvc": dvc.analytics.is_enabled(),
    "hf_disabled": hf.HF_HUB_DISABLE_TELEMETRY,
}))
"""


def _probe(extra_env: dict[str, str]) -> dict[str, bool]:
    env = {
        k: v for k, v in os.environ.items() if k not in TELEMETRY_OFF and k != "NLPFLOW_TELEMETRY"
    }
    env.update(extra_env)
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, check=True
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_telemetry_is_off_by_default_as_each_library_sees_it() -> None:
    assert _probe({}) == {
        "prefect": False,
        "mlflow_disabled": True,
        "dvc": False,
        "hf_disabled": True,
    }


def test_telemetry_opt_in_leaves_library_defaults() -> None:
    seen = _probe({"NLPFLOW_TELEMETRY": "1"})
    assert seen["prefect"] is True and seen["hf_disabled"] is False


def test_settings_resolve_from_environment(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("NLPFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("NLPFLOW_PROJECT_DIR", str(tmp_path))
    monkeypatch.setenv("NLPFLOW_DATA_ROOT", "/srv/data")
    settings = Settings()
    assert settings.resolved_tracking_uri == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert settings.resolved_artifact_root == (tmp_path.resolve() / "mlartifacts").as_uri()
    assert settings.resolve_data("tickets.csv") == Path("/srv/data/tickets.csv")
    assert settings.resolve_data("/abs/file.csv") == Path("/abs/file.csv")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    assert Settings().resolved_tracking_uri == "http://mlflow.internal:5000"
    assert Settings().resolved_artifact_root is None  # a server chooses its own
    monkeypatch.setenv("NLPFLOW_TRACKING_URI", "postgresql://db/mlflow")
    assert Settings().resolved_tracking_uri == "postgresql://db/mlflow"


HOME_PROBE = """
import json, os
from pathlib import Path
from nlpflow.config.settings import apply_prefect_home
home = apply_prefect_home(Path(os.environ["PROJECT"]))
import prefect.settings as ps
print(json.dumps({"set": str(home) if home else None,
                  "prefect_home": str(ps.get_current_settings().home)}))
"""


def _home_probe(tmp_path: Path, **env: str) -> dict[str, str | None]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    clean |= {"HOME": str(tmp_path / "home"), "PROJECT": str(tmp_path / "project")} | env
    done = subprocess.run([sys.executable, "-c", HOME_PROBE], env=clean, capture_output=True,
                          text=True, timeout=120, check=True)  # fmt: skip
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_each_project_gets_its_own_prefect_home_without_a_server(tmp_path: Path) -> None:
    found = _home_probe(tmp_path)
    own = str(tmp_path / "project" / ".nlpflow" / "prefect")
    assert found == {"set": own, "prefect_home": own}  # Prefect itself reads it


def test_a_configured_prefect_server_or_home_is_left_alone(tmp_path: Path) -> None:
    exported = _home_probe(tmp_path, PREFECT_API_URL="http://127.0.0.1:4200/api")
    assert exported["set"] is None
    assert exported["prefect_home"] == str(tmp_path / "home" / ".prefect")
    mine = str(tmp_path / "elsewhere")
    assert _home_probe(tmp_path, PREFECT_HOME=mine) == {"set": None, "prefect_home": mine}
    # a server in the active profile of ~/.prefect/profiles.toml counts as configured
    profiles = tmp_path / "home" / ".prefect" / "profiles.toml"
    profiles.parent.mkdir(parents=True)
    profiles.write_text(
        'active = "team"\n[profiles.team]\nPREFECT_API_URL = "http://prefect.internal/api"\n'
    )
    assert _home_probe(tmp_path)["set"] is None
    profiles.write_text('active = "local"\n[profiles.local]\n')
    assert _home_probe(tmp_path)["set"] == str(tmp_path / "project" / ".nlpflow" / "prefect")
