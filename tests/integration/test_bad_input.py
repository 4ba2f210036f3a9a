"""Bad input through `nlpflow run`: a short message naming the problem, a non-zero exit,
no traceback, no registered model version, and the user's file unchanged."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, mlflow_client

pytestmark = pytest.mark.slow
HEADER = "text,label\n"
GOOD_ROWS = "".join(
    f"{text} number {i},{label}\n"
    for i in range(12)
    for text, label in [("my parcel is late", "shipping"), ("refund my card please", "billing")]
)

CASES = {
    "missing_column": (b"message,label\nhello there,billing\n", {}, "column(s) ['text'] not found"),
    "empty_file": (b"", {}, "is empty"),
    "empty_texts": ((HEADER + GOOD_ROWS + ",billing\n   ,shipping\n").encode(), {}, "no null text"),
    "unknown_labels": (
        (HEADER + GOOD_ROWS + "where is my gift,giftcards\n").encode(),
        {"labels": ["shipping", "billing"]},
        "labels are in the allowed set",
    ),
    "non_utf8": ((HEADER + "caf\xe9 is closed,billing\n").encode("latin-1"), {}, "not valid UTF-8"),
}


def _project(tmp_path: Path, data: bytes, data_params: dict, extra: dict | None = None) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / "input.csv").write_bytes(data)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"].update({"source": "input.csv", **data_params})
    params["train"]["family"] = "tfidf_logreg"
    params.update(extra or {})
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root


def _run(root: Path, env: dict[str, str], api: str) -> subprocess.CompletedProcess[str]:
    env = env | {"NLPFLOW_PROJECT_DIR": str(root), "PREFECT_API_URL": api,
                 "NLPFLOW_REGISTERED_MODEL": "bad-input"}  # fmt: skip
    env.pop("NLPFLOW_TRACKING_URI", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(
        ["nlpflow", "run"], cwd=root, capture_output=True, text=True, env=env, timeout=300
    )


def _registered_versions(root: Path) -> int:
    if not (root / "mlflow.db").exists():
        return 0
    client = mlflow_client(root)
    return len(client.search_model_versions("name='bad-input'"))


@pytest.mark.parametrize("case", list(CASES))
def test_bad_data_is_reported_without_traceback(
    case: str, tmp_path: Path, venv_env, prefect_api
) -> None:
    data, data_params, expected = CASES[case]
    root = _project(tmp_path, data, data_params)
    done = _run(root, venv_env, prefect_api)
    assert done.returncode != 0
    assert expected in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert _registered_versions(root) == 0
    assert (root / "input.csv").read_bytes() == data  # the user's data is untouched


def test_wrong_params_key_fails_before_any_stage(tmp_path: Path, venv_env, prefect_api) -> None:
    root = _project(tmp_path, (HEADER + GOOD_ROWS).encode(), {}, extra={"train": {"epochz": 3}})
    done = _run(root, venv_env, prefect_api)
    assert done.returncode == 2
    assert "train.epochz: unknown key" in done.stderr and "epochs" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (root / "data").exists()  # gather never ran
    assert len(done.stderr.strip().splitlines()) < 8  # short


def test_wrong_override_names_the_allowed_values(tmp_path: Path, venv_env, prefect_api) -> None:
    root = _project(tmp_path, (HEADER + GOOD_ROWS).encode(), {})
    env = venv_env | {"NLPFLOW_PROJECT_DIR": str(root)}
    done = subprocess.run(["nlpflow", "run", "--set", "train.family=svm"], cwd=root,
                          capture_output=True, text=True, env=env)  # fmt: skip
    assert done.returncode == 2
    from nlpflow.config.params import FAMILIES

    names = [repr(name) for name in FAMILIES]  # every registered family, in registry order
    assert "train.family" in done.stderr
    assert ", ".join(names[:-1]) + f" or {names[-1]}" in " ".join(done.stderr.split())
