"""Shared fixtures. Everything runs offline: no model or data is downloaded.

- `tiny_encoder`: a randomly initialised 2-layer BERT with a WordPiece tokenizer trained on
  the bundled sample, saved to a folder that `train.pretrained` can point at.
- `prefect_api`: one temporary Prefect server (SQLite) for the session.
- `project`: a throw-away copy of the project (params, dvc.yaml, sample data, code paths that
  dvc.yaml hashes) in a git + DVC repo, with MLflow on SQLite inside it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO.parent / "shared" / "datasets"
SAMPLE = REPO / "data" / "sample" / "support_tickets.csv"

os.environ.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
# Flow runs push to the DVC remote; without NLPFLOW_DVC_REMOTE it defaults to a folder under
# XDG_DATA_HOME, which the tests keep out of the user's home.
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="nlpflow-tests-xdg-")
# One Prefect home for every `nlpflow` the tests start: a project's own home (what users get)
# would migrate a fresh Prefect database in each temporary project, tens of seconds each.
# tests/integration/test_settings.py checks the per-project home itself.
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="nlpflow-tests-prefect-"))
from nlpflow.config.settings import apply_environment_defaults  # noqa: E402

apply_environment_defaults()


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import re
    from collections import Counter

    import pandas as pd
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    texts = pd.read_csv(SAMPLE)["text"].str.lower().tolist()
    # A WordPiece vocabulary built by hand, not by the tokenizers trainer: its tie-breaking
    # follows Rust hash order, so the vocabulary (and every test result) changed per process.
    words = Counter(w for t in texts for w in re.findall(r"\w+|[^\w\s]", t))
    chars = sorted({c for w in words for c in w})
    common = [w for w, _ in sorted(words.items(), key=lambda kv: (-kv[1], kv[0]))[:500]]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *(f"##{c}" for c in chars)]
    vocab += [w for w in common if w not in vocab]
    tokenizer = BertTokenizerFast(
        vocab={token: i for i, token in enumerate(vocab)}, do_lower_case=True, model_max_length=64
    )
    tokenizer.save_pretrained(folder)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, num_labels=2,
    )  # fmt: skip
    torch.manual_seed(0)  # the same random weights in every session
    BertForSequenceClassification(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=300):
        url = PREFECT_API_URL.value()
        yield str(url)


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def make_project(root: Path, params_text: str) -> Path:
    """A git + DVC project holding what dvc.yaml names, with the given params.yaml."""
    root.mkdir(parents=True, exist_ok=True)
    for rel in ("dvc.yaml", "data/sample/support_tickets.csv", "behavioural.yaml"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / rel, root / rel)
    shutil.copytree(REPO / "src" / "nlpflow", root / "src" / "nlpflow",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    shutil.copytree(REPO / "gx", root / "gx")  # the versioned GX project dvc.yaml depends on
    (root / "params.yaml").write_text(params_text)
    (root / ".gitignore").write_text("mlflow.db\nmlartifacts/\n.nlpflow/\n")
    _git(root, "init", "-q")
    _git(root, "config", "user.email", "tests@nlpflow.local")
    _git(root, "config", "user.name", "tests")
    subprocess.run(["dvc", "init", "-q"], cwd=root, check=True, env=_venv_env())
    subprocess.run(
        ["dvc", "config", "core.analytics", "false"], cwd=root, check=True, env=_venv_env()
    )
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "project")
    return root


def _venv_env() -> dict[str, str]:
    """Subprocesses find this venv's `nlpflow` and `dvc` first."""
    import sys

    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def fast_params(
    *, family: str = "transformer", pretrained: Path | None = None, epochs: int = 3
) -> str:
    """params.yaml for tests: the repo's params with a tiny model and few epochs."""
    import yaml

    tree = yaml.safe_load((REPO / "params.yaml").read_text())
    tree["train"].update({"family": family, "epochs": epochs, "batch_size": 32, "lr": 0.003})
    if pretrained is not None:
        tree["train"]["pretrained"] = str(pretrained)
    return yaml.safe_dump(tree, sort_keys=False)


@pytest.fixture
def project_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Point nlpflow's settings at a fresh project folder (tracking store inside it)."""
    root = tmp_path / "project"
    monkeypatch.setenv("NLPFLOW_PROJECT_DIR", str(root))
    monkeypatch.delenv("NLPFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("NLPFLOW_REGISTERED_MODEL", "test-classifier")
    return root


@pytest.fixture
def venv_env() -> dict[str, str]:
    return _venv_env()


def mlflow_client(root: Path):  # type: ignore[no-untyped-def]
    """A client on the project's SQLite store, for tracking and registry alike.

    Both URIs explicitly: MLflow falls back to the process-wide registry URI, which an
    earlier in-process test may have pointed elsewhere.
    """
    from mlflow import MlflowClient

    uri = f"sqlite:///{root / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


PG_URL = os.environ.get("NLPFLOW_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture
def pg_engine() -> Iterator[object]:
    """An engine on the local PostgreSQL (database `test`); skips with the reason where it is
    unreachable, except under CI, which has it."""
    import sqlalchemy as sa

    engine = sa.create_engine(PG_URL)
    try:
        engine.connect().close()
    except sa.exc.OperationalError as exc:
        if os.environ.get("CI"):
            raise  # CI has PostgreSQL: its absence is a failure there, not a skip
        pytest.skip(
            f"PostgreSQL at {PG_URL} is not reachable ({exc.orig}); set NLPFLOW_TEST_PG_URL"
        )
    yield engine
    engine.dispose()


@contextmanager
def project_environment(root: Path, model: str) -> Iterator[pytest.MonkeyPatch]:
    """nlpflow's settings pointed at `root` (tracking store inside it) and model name `model`,
    for a module-scoped project (the `project_env` fixture is per test)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NLPFLOW_PROJECT_DIR", str(root))
        mp.setenv("NLPFLOW_REGISTERED_MODEL", model)
        mp.delenv("NLPFLOW_TRACKING_URI", raising=False)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        yield mp


def cli_environment(root: Path, model: str) -> dict[str, str]:
    """The environment of an `nlpflow` or `dvc` subprocess on project `root` (its own tracking
    store) registering model `model`: project_environment's, for a child process."""
    env = _venv_env() | {"NLPFLOW_PROJECT_DIR": str(root), "NLPFLOW_REGISTERED_MODEL": model}
    env.pop("NLPFLOW_TRACKING_URI", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def dvc_repro(root: Path, model: str) -> list[str]:
    """`dvc repro` in `root` (it must succeed): the stages it ran, in order."""
    import re

    done = subprocess.run(["dvc", "repro"], cwd=root, capture_output=True, text=True,
                          env=cli_environment(root, model))  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return re.findall(r"Running stage '(\w+)'", done.stdout)


def run_cli_pipeline(root: Path, overrides: list[str]) -> dict[str, Any]:
    """Every stage through `nlpflow stage`'s function (as `dvc repro` runs them), in process:
    the reports by stage name."""
    from nlpflow.config.params import load_params
    from nlpflow.config.settings import load_settings
    from nlpflow.pipeline.runs import make_context, run_cli_stage
    from nlpflow.pipeline.stages import STAGE_NAMES

    params = load_params(root / "params.yaml", overrides)
    ctx = make_context(root, params, load_settings())
    return {name: run_cli_stage(name, ctx).model_dump() for name in STAGE_NAMES}


def use_mlflow_store(monkeypatch: pytest.MonkeyPatch, root: Path) -> str:
    """Point MLflow's process-wide tracking and registry URIs (what `models:/` resolves
    through) at `root`'s SQLite store for one test. mlflow.set_*_uri would leak into every
    later test of the session: the monkeypatch undoes these when the test ends."""
    uri = f"sqlite:///{root / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setattr("mlflow.tracking._tracking_service.utils._tracking_uri", uri)
    monkeypatch.setattr("mlflow.tracking._model_registry.utils._registry_uri", uri)
    return uri
