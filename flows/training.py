"""The training flow: gather -> validate -> preprocess -> train -> evaluate -> register.

nlpflow run                       # runs this flow with params.yaml
nlpflow run --set train.epochs=1  # one value overridden (dvc.lock is then left alone)
nlpflow deploy --cron "0 3 * * 1" # a scheduled deployment of it
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow

from nlpflow.params import load_params
from nlpflow.pipeline import is_dvc_project, make_context
from nlpflow.settings import load_settings
from nlpflow.sources import dvc_can_track
from nlpflow.stages import STAGE_NAMES
from tasks.stages import STAGE_TASKS, end_tracking, start_tracking


@flow(name="nlpflow-training", log_prints=True)
def training_flow(
    overrides: list[str] | None = None,
    project_dir: str | None = None,
    configs: list[str] | None = None,
) -> dict[str, Any]:
    settings = load_settings()
    if project_dir:  # a deployment names its project; relative data paths resolve against it
        settings = settings.model_copy(update={"project_dir": Path(project_dir)})
    root = settings.root
    params = load_params(root / "params.yaml", overrides, [Path(c) for c in configs or []])
    ctx = make_context(root, params, settings)
    # dvc.lock must describe params.yaml; outputs of overridden params would make it lie.
    # Nor can it describe a glob or database source (DVC takes no such dependency).
    record_dvc = (
        is_dvc_project(root) and not overrides and not configs and dvc_can_track(params.data.source)
    )
    run_id = start_tracking(ctx)
    reports: dict[str, Any] = {}
    try:
        for name in STAGE_NAMES:
            reports[name] = STAGE_TASKS[name](ctx, run_id, record_dvc)
    except BaseException:
        end_tracking(ctx, run_id, failed=True)
        raise
    end_tracking(ctx, run_id, failed=False)
    return {"run_id": run_id, "dvc_lock_updated": record_dvc} | {
        name: report.model_dump(mode="json") for name, report in reports.items()
    }
