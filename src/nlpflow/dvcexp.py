"""Whether this process is a stage of a DVC experiment (`dvc exp run`, queued or not).

DVC runs each stage's command with `DVC_EXP_NAME` (the experiment's name) and
`DVC_EXP_BASELINE_REV` (the commit it branches from) in the environment; a plain `dvc repro`
sets neither. `DVC_ROOT` is the repository DVC runs for: for a queued experiment that is the
user's project, while the stage itself runs in a temporary copy of it.
"""

from __future__ import annotations

import os
from pathlib import Path

EXP_NAME = "DVC_EXP_NAME"
BASELINE_REV = "DVC_EXP_BASELINE_REV"
ROOT = "DVC_ROOT"


def experiment_name() -> str | None:
    """The DVC experiment this stage belongs to; None outside `dvc exp run`."""
    return os.environ.get(EXP_NAME) or None


def baseline_rev() -> str | None:
    return os.environ.get(BASELINE_REV) or None


def dvc_root() -> Path | None:
    """The repository DVC was started in (the user's project, also for queued experiments)."""
    root = os.environ.get(ROOT)
    return Path(root) if root else None
