"""embeddings_logreg through every stage, as `nlpflow stage` runs them, against a real MLflow
store: the vectors' evaluation reaches the run (metrics, the map, the projector files), the
vectors reach the logged model, and the registered pyfunc serves what evaluate measured.

    .venv/bin/python -m pytest tests/integration/test_embeddings_pipeline.py -q
"""

from __future__ import annotations

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
MODEL = "embeddings-test-classifier"


def test_the_vectors_and_their_evaluation_reach_mlflow(tmp_path: Path) -> None:
    root = make_project(tmp_path / "project", fast_params(family="embeddings_logreg"))
    with project_environment(root, MODEL):
        reports = run_cli_pipeline(root, ["train.embeddings.epochs=5"])
    evaluation = reports["evaluate"]
    assert evaluation["embeddings"]["vocab_size"] > 100
    assert set(evaluation["embeddings"]["neighbours"]) == {
        "good", "bad", "funny", "boring", "love", "time", "money", "people"
    }  # fmt: skip  # evaluate.probe_words' defaults
    register = reports["register"]
    checks = {c["name"]: c for c in register["checks"]}
    assert checks["serving"]["passed"]  # the registered pyfunc predicts what evaluate measured
    client = mlflow_client(root)
    version = client.get_model_version(MODEL, str(register["version"]))
    run = client.get_run(version.run_id)
    assert run.data.metrics["embeddings/vocab_size"] == evaluation["embeddings"]["vocab_size"]
    logged = {a.path for a in client.list_artifacts(version.run_id, "evaluation/embeddings")}
    assert {"evaluation/embeddings/projection.png", "evaluation/embeddings/projector"} <= logged
    projector = client.list_artifacts(version.run_id, "evaluation/embeddings/projector")
    assert {Path(a.path).name for a in projector} == {"vectors.tsv", "metadata.tsv"}
    import mlflow

    model_files = Path(mlflow.artifacts.download_artifacts(version.source, tracking_uri=
                       f"sqlite:///{root / 'mlflow.db'}"))  # fmt: skip
    assert list(model_files.rglob("vectors.npy")), "the vectors travel with the model"
