"""The promotion gate against a real MLflow registry (SQLite), through the real stages.

A first model becomes champion; a deliberately degraded one never does, and the reasons name
the failed checks. Decisions land as version tags, in the promotion log and in the model card;
`nlpflow registry` moves the champion by hand and records who and why.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import (
    fast_params,
    make_project,
    mlflow_client,
    project_environment,
    run_cli_pipeline,
)

pytestmark = pytest.mark.slow
MODEL = "gate-test-classifier"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    root = make_project(
        tmp_path_factory.mktemp("gate") / "project", fast_params(family="tfidf_logreg")
    )
    with project_environment(root, MODEL):
        first = run_cli_pipeline(root, [])
        # 3 features for 4 classes: a model that has to guess most of the time
        degraded = run_cli_pipeline(root, ["train.tfidf.max_features=3"])
        yield root, first, degraded


def _cli(root: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = env | {"NLPFLOW_PROJECT_DIR": str(root), "NLPFLOW_REGISTERED_MODEL": MODEL}
    return subprocess.run(
        ["nlpflow", *args], cwd=root, capture_output=True, text=True, env=env, timeout=300
    )


def _champion(root: Path) -> int:
    return int(mlflow_client(root).get_model_version_by_alias(MODEL, "champion").version)


def test_first_version_passes_its_own_checks_and_becomes_champion(project) -> None:
    root, first, _ = project
    reg = first["register"]
    assert reg["version"] == 1 and reg["promoted"] is True
    checks = {c["name"]: c for c in reg["checks"]}
    assert not checks["margin"]["applicable"]  # nothing to compare with yet
    assert checks["serving"]["passed"]  # the registered pyfunc predicts what evaluate measured
    assert not checks["baseline"]["applicable"]  # tfidf_logreg is the baseline itself
    version = mlflow_client(root).get_model_version(MODEL, "1")
    assert version.tags["gate.decision"] == "promoted"
    assert len(version.tags["test_set_sha256"]) == 64
    assert "Model card: artifact registration/model_card.md" in version.description


def test_degraded_model_never_becomes_champion_and_reasons_name_the_checks(project) -> None:
    root, first, degraded = project
    reg = degraded["register"]
    assert reg["version"] == 2 and reg["promoted"] is False and reg["previous_champion"] == 1
    assert reg["score"] < first["register"]["score"] - 0.2  # it really is worse
    failed = {c["name"] for c in reg["checks"] if c["applicable"] and not c["passed"]}
    assert {"margin", "significance"} <= failed
    assert reg["reasons"].startswith("margin: macro_f1")
    assert _champion(root) == 1
    client = mlflow_client(root)
    assert int(client.get_model_version_by_alias(MODEL, "challenger").version) == 2
    tags = client.get_model_version(MODEL, "2").tags
    assert tags["gate.decision"] == "rejected"
    assert tags["gate.compared_version"] == "1"
    assert "margin:" in tags["gate.reasons"] and "significance:" in tags["gate.reasons"]
    values = json.loads(tags["gate.metrics"])
    assert values["champion"] == pytest.approx(first["register"]["score"])
    assert values["p_value"] > 0.05  # McNemar: the degraded model is not significantly better


def test_model_card_states_data_hash_metrics_slices_behaviour_and_decision(project) -> None:
    root, _, degraded = project
    card = (root / "reports/model_card.md").read_text()
    manifest = json.loads((root / "data/gathered/manifest.json").read_text())
    metrics = json.loads((root / "reports/metrics.json").read_text())
    assert f"Model card: {MODEL} version 2" in card
    assert manifest["source_sha256"] in card
    ci = metrics["ci"]
    assert f"{ci['low']:.4f} to {ci['high']:.4f}" in card
    assert "## Slices" in card and "negation" in card
    assert "## Behavioural tests" in card
    assert "This version was **not promoted**" in card and "| margin | FAIL |" in card
    # register.card.intended_use is null in params.yaml: the card asks for it, claims nothing
    assert "## Intended use\nNot stated: set `register.card.intended_use`" in card
    run = degraded["register"]["run_id"]
    logged = {a.path for a in mlflow_client(root).list_artifacts(run, "registration")}
    assert "registration/model_card.md" in logged


def test_registry_cli_moves_the_champion_and_records_who_and_why(project, venv_env) -> None:
    root, _, _ = project
    done = _cli(root, "registry", "promote", "2", "--reason", "hotfix", "--by", "alice",
                env=venv_env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert _champion(root) == 2
    done = _cli(root, "registry", "rollback", "--reason", "v2 misroutes refunds", env=venv_env)
    assert done.returncode == 0, done.stderr
    assert _champion(root) == 1  # the champion before v2 took over
    tags = mlflow_client(root).get_model_version(MODEL, "1").tags
    assert tags["champion.rollback.reason"] == "v2 misroutes refunds"
    history = _cli(root, "registry", "history", env=venv_env | {"COLUMNS": "250"})
    assert history.returncode == 0, history.stderr
    assert "champion v1, challenger v2" in history.stdout
    lines = [line for line in history.stdout.splitlines() if " v" in line and "│" in line]
    # newest first: rollback, promote, gate rejection of v2, gate promotion of v1
    assert [line.split("│")[2].strip() for line in lines] == [
        "rollback", "promote", "gate", "gate"
    ]  # fmt: skip
    assert "alice" in history.stdout and "hotfix" in history.stdout


def test_registry_cli_refuses_unknown_versions_and_missing_reasons(project, venv_env) -> None:
    root, _, _ = project
    missing = _cli(root, "registry", "promote", "99", "--reason", "x", env=venv_env)
    assert missing.returncode == 2
    assert "has no version 99" in missing.stderr
    no_reason = _cli(root, "registry", "promote", "2", env=venv_env)
    assert no_reason.returncode == 2 and "--reason" in no_reason.stderr
    blank = _cli(root, "registry", "promote", "2", "--reason", "  ", env=venv_env)
    assert blank.returncode == 2 and "needs a reason" in blank.stderr
    assert _champion(root) == 1
