"""`nlpflow ui`: this project's MLflow and Prefect pages while it runs, nothing left after
SIGTERM (MLflow's UI forks workers and job consumers), a clear error for a taken port."""

from __future__ import annotations

import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.integration.test_team_stack import free_port, listening

pytestmark = pytest.mark.slow


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def test_ui_serves_both_pages_and_sigterm_stops_everything(tmp_path: Path, venv_env) -> None:
    mlflow_port, prefect_port = free_port(), free_port()
    env = {k: v for k, v in venv_env.items() if not k.startswith(("PREFECT_", "MLFLOW_TRACKING"))}
    env |= {"NLPFLOW_PROJECT_DIR": str(tmp_path), "HOME": str(tmp_path / "home")}
    env.pop("NLPFLOW_TRACKING_URI", None)
    ui = subprocess.Popen(
        ["nlpflow", "ui", "--mlflow-port", str(mlflow_port), "--prefect-port", str(prefect_port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        mlflow, prefect = f"http://127.0.0.1:{mlflow_port}", f"http://127.0.0.1:{prefect_port}"
        while not (_answers(f"{mlflow}/health") and _answers(f"{prefect}/api/health")):
            assert ui.poll() is None, "nlpflow ui exited before its servers answered"
            assert time.monotonic() < deadline, "the servers did not answer within 240 s"
            time.sleep(1)
        # the project's own stores: its SQLite tracking file and its Prefect home
        assert (tmp_path / "mlflow.db").is_file()
        assert (tmp_path / ".nlpflow" / "prefect" / "prefect.db").is_file()
        ui.send_signal(signal.SIGTERM)
        assert ui.wait(timeout=90) is not None
    finally:
        if ui.poll() is None:
            ui.kill()
    printed = ui.stdout.read() if ui.stdout else ""
    assert f"{mlflow}/#/experiments?workflowType=machine_learning" in printed
    assert not listening(mlflow_port) and not listening(prefect_port)
    left = subprocess.run(["pgrep", "-f", f"--port {mlflow_port}|--port {prefect_port}"],
                          capture_output=True, text=True)  # fmt: skip
    assert left.stdout.split() == [], "processes of nlpflow ui outlived it"


def test_ui_names_the_option_of_a_taken_port(tmp_path: Path, venv_env) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = venv_env | {"NLPFLOW_PROJECT_DIR": str(tmp_path)}
        args = ["--mlflow-port", str(free_port()), "--prefect-port", str(port)]
        done = subprocess.run(["nlpflow", "ui", *args], env=env,
                              capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "--prefect-port" in done.stderr
    assert not (tmp_path / "mlflow.db").exists()  # nothing started
