"""Whether this process is a stage of a DVC experiment (`dvc exp run`, queued or not).

DVC runs each stage's command with `DVC_EXP_NAME` (the experiment's name) and
`DVC_EXP_BASELINE_REV` (the commit it branches from) in the environment; a plain `dvc repro`
sets neither. `DVC_ROOT` is the repository DVC runs for: for a queued experiment that is the
user's project, while the stage itself runs in a temporary copy of it
(`<DVC_ROOT>/.dvc/tmp/exps/tmpXXXX/`, deleted when the experiment ends).

    from nlpflow.config.dvcexp import dvc_experiment_tags, user_project
    tags |= dvc_experiment_tags()         # {"dvc.exp_name": ..., "dvc.exp_baseline": ...}
    store = user_project(root) / "mlflow.db"   # the user's project, also from a temporary copy
"""

from __future__ import annotations

import os
from pathlib import Path

EXP_NAME = "DVC_EXP_NAME"
BASELINE_REV = "DVC_EXP_BASELINE_REV"
ROOT = "DVC_ROOT"
# MLflow run tags that join a run to its row in `dvc exp show`
EXP_NAME_TAG = "dvc.exp_name"
EXP_BASELINE_TAG = "dvc.exp_baseline"


def experiment_name() -> str | None:
    """The DVC experiment this stage belongs to; None outside `dvc exp run`."""
    return os.environ.get(EXP_NAME) or None


def baseline_rev() -> str | None:
    return os.environ.get(BASELINE_REV) or None


def dvc_root() -> Path | None:
    """The repository DVC was started in (the user's project, also for queued experiments)."""
    root = os.environ.get(ROOT)
    return Path(root) if root else None


def dvc_experiment_tags() -> dict[str, str]:
    """The experiment's name and baseline commit as MLflow run tags; empty outside an experiment.

    Filtering MLflow's runs on `tags."dvc.exp_name" = 'NAME'` finds the row of `dvc exp show`."""
    name = experiment_name()
    if name is None:
        return {}
    rev = baseline_rev()
    return {EXP_NAME_TAG: name} | ({EXP_BASELINE_TAG: rev} if rev else {})


def user_project(root: Path) -> Path:
    """`root`, or, when DVC runs this stage in a temporary copy of the repository (a queued
    experiment), the same folder of the user's project, which outlives the copy.

    The copy lies inside the user's `.dvc/` folder; its own DVC root (the nearest folder with a
    `.dvc/` above `root`) stands for DVC_ROOT."""
    home = dvc_root()
    root = root.resolve()
    if home is None:
        return root
    home = home.resolve()
    if home / ".dvc" not in root.parents:
        return root
    for folder in (root, *root.parents):
        if folder == home / ".dvc":
            break
        if (folder / ".dvc").is_dir():
            return home / root.relative_to(folder)
    return root
