"""`nlpflow serve` as a client meets it: the command started in its own process, in an
environment where installing a package or reaching the network would fail, and JSON posted to
/invocations. Shared by the classifier's and the tagger's serving tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

NLPFLOW = str(Path(sys.executable).parent / "nlpflow")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def hostile_env(root: Path, env_root: Path, model_name: str) -> dict[str, str]:
    """nlpflow's settings point at the project; pip, proxies and hubs lead nowhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NLPFLOW_", "MLFLOW_"))}
    env.update({
        "NLPFLOW_PROJECT_DIR": str(root), "NLPFLOW_REGISTERED_MODEL": model_name,
        "PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_NO_INDEX": "1",
        "UV_INDEX_URL": "http://127.0.0.1:9/simple", "UV_OFFLINE": "1",
        "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
        "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
        "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
        "MLFLOW_ENV_ROOT": str(env_root),  # where MLflow would build virtualenvs
        "PATH": "/usr/bin:/bin",  # the venv not activated: nlpflow must find uvicorn itself
    })  # fmt: skip
    return env


def post(url: str, payload: Any) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{url}/invocations", data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def wait_for_ping(url: str, process: subprocess.Popen[str], log: Path) -> None:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"nlpflow serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"nlpflow serve did not answer /ping in 240 s:\n{log.read_text()}")


@contextmanager
def serving(root: Path, model_name: str, scratch: Path) -> Iterator[dict[str, Any]]:
    """`nlpflow serve` of `model_name`'s champion in project `root`, answering on a free port
    until the block ends (then SIGTERM, as a supervisor stops it)."""
    env_root = scratch / "mlflow-envs"
    env_root.mkdir(parents=True, exist_ok=True)
    log = scratch / "serve.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("w") as sink:
        process = subprocess.Popen(
            [NLPFLOW, "serve", "--port", str(port)],
            env=hostile_env(root, env_root, model_name),
            stdout=sink, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
    try:
        wait_for_ping(url, process, log)
        yield {"url": url, "process": process, "log": log, "env_root": env_root, "port": port}
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)  # not expected; never leave it running
                process.kill()
                process.wait()
