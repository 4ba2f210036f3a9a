"""The files a project keeps under `.nlpflow/` about its MLflow runs.

- `active_run.json`: the pipeline run the stages of one `dvc repro` share (`nlpflow stage NAME`
  runs one stage per process; the first opens the run, the others take it up).
- `pending_runs.json`: run statuses a tracking server that was away could not take; the next
  Tracker opened in the project sends them (nlpflow.tracking.connection.flush_pending), so no
  run stays RUNNING forever.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from nlpflow.errors import TrackingError

ACTIVE_RUN = Path(".nlpflow") / "active_run.json"
PENDING = Path(".nlpflow") / "pending_runs.json"  # run statuses the server was away for


# ------------------------------------------------------------ the CLI runner's open run


def read_active_run(root: Path) -> dict[str, Any] | None:
    """{"run_id", "owner"}: the pipeline run the CLI stages log to, and the `dvc` process whose
    stages share it (None: stages run by hand)."""
    marker = root / ACTIVE_RUN
    try:
        found = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    return {"run_id": str(found["run_id"]), "owner": found.get("owner")}


def write_active_run(root: Path, run_id: str, owner: str | None = None) -> None:
    marker = root / ACTIVE_RUN
    marker.parent.mkdir(parents=True, exist_ok=True)
    (marker.parent / ".gitignore").write_text("*\n")
    marker.write_text(json.dumps({"run_id": run_id, "owner": owner}))


def clear_active_run(root: Path) -> None:
    (root / ACTIVE_RUN).unlink(missing_ok=True)


# ------------------------------------------------------- statuses the server was away for


def load_pending(root: Path) -> list[dict[str, str]]:
    try:
        return list(json.loads((root / PENDING).read_text()))
    except FileNotFoundError:
        return []
    except ValueError as exc:
        raise TrackingError(
            f"{root / PENDING} is not valid JSON ({exc}); delete it (its runs then stay "
            f"RUNNING in MLflow) or fix it by hand."
        ) from None


def write_pending(root: Path, entries: list[dict[str, str]]) -> None:
    path = root / PENDING
    if not entries:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_suffix(f".{os.getpid()}.tmp")
    scratch.write_text(json.dumps(entries, indent=1))
    scratch.replace(path)  # atomic: a reader never sees half a file


def save_pending(root: Path, *, uri: str, run_id: str, status: str) -> None:
    entries = [e for e in load_pending(root) if e["run_id"] != run_id]
    since = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    write_pending(
        root, [*entries, {"uri": uri, "run_id": run_id, "status": status, "since": since}]
    )
