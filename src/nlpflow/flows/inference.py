"""The batch inference flow: plan -> job -> model -> ids -> chunks (on the engine's workers)
-> outputs -> report.

nlpflow infer --set inference.source=data/new_tickets.csv --set inference.output=preds.parquet
NLPFLOW_ENGINE=processes NLPFLOW_WORKERS=2 nlpflow infer ...   # chunks on 2 local processes
nlpflow deploy --flow inference --cron "0 * * * *"   # a scheduled deployment of it

A run killed at any point is resumed by the next run of the same input and output: the
chunks it committed are not scored again (nlpflow.serving.batch.progress).
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from nlpflow.shutdown import watch_stop_signals
from nlpflow.tasks import inference as t
from nlpflow.tasks.prologue import flow_prologue
from nlpflow.tasks.stages import unless_stopped


@flow(name="nlpflow-inference", log_prints=True)
def inference_flow(
    overrides: list[str] | None = None,
    project_dir: str | None = None,
    configs: list[str] | None = None,
) -> dict[str, Any]:
    settings, params = flow_prologue(overrides, project_dir, configs, training=False)
    watch_stop_signals()  # SIGTERM: the run ends KILLED; committed chunks wait for the rerun
    plan = t.plan(params, settings)  # bad params fail before anything is loaded
    job = t.open_job(plan, params)  # takes the output's lock (files) until the end
    try:
        ref = t.resolve(settings, plan, job)
        with t.workers(settings) as pool:
            model = pool.on_every_worker(t.describe, settings=settings, ref=ref, plan=plan)
            plan = t.shape_input(plan, model)  # as the version was trained, unless overridden
            run_id = t.start_tracking(settings, plan, model.ref, params, job)
            try:
                repeated = t.check_ids(plan, job.chunk_rows)
                if plan.on_invalid == "fail":
                    t.check_rows(plan, model, job.chunk_rows, repeated)
                summaries = t.score_all(
                    pool, plan=plan, settings=settings, model=model, job=job,
                    repeated=repeated, run_id=run_id,
                )  # fmt: skip
                t.finish(plan, job, summaries)
                report = t.report(
                    settings, plan, model, summaries, run_id, len(job.done), pool.seconds
                )
            except BaseException:
                unless_stopped(t.end_tracking)(settings, run_id, failed=True)
                raise
        t.end_tracking(settings, run_id, failed=False)
    finally:
        t.release(plan)
    return report.model_dump(mode="json")
