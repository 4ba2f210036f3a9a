"""The batch inference flow: load model -> read -> validate -> score -> write -> report.

nlpflow infer --set inference.source=data/new_tickets.csv --set inference.output=preds.parquet
nlpflow deploy --flow inference --cron "0 * * * *"   # a scheduled deployment of it
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from nlpflow.tasks import inference as t
from nlpflow.tasks.prologue import flow_prologue


@flow(name="nlpflow-inference", log_prints=True)
def inference_flow(
    overrides: list[str] | None = None,
    project_dir: str | None = None,
    configs: list[str] | None = None,
) -> dict[str, Any]:
    settings, params = flow_prologue(overrides, project_dir, configs, training=False)
    plan = t.plan(params, settings)  # bad params fail before anything is loaded
    model = t.load_model(settings, plan)
    run_id = t.start_tracking(settings, plan, model.ref, params)
    try:
        rows = t.read_rows(plan)
        checked = t.validate_rows(rows, plan, model)
        predictions = t.score_rows(checked, plan, model, run_id)
        t.write_outputs(plan, predictions, checked, model, run_id)
        report = t.report(settings, plan, model, checked, predictions, run_id)
    except BaseException:
        t.end_tracking(settings, run_id, failed=True)
        raise
    t.end_tracking(settings, run_id, failed=False)
    return report.model_dump(mode="json")
