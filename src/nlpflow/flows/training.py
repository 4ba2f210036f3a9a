"""The training flow: gather -> validate -> preprocess -> train -> baseline -> evaluate -> register.

nlpflow run                       # runs this flow with params.yaml
nlpflow run --set train.epochs=1  # one value overridden (dvc.lock is then left alone)
nlpflow run --force               # run every stage again, whatever the cache and data say
nlpflow deploy --cron "0 3 * * 1" # a scheduled deployment of it

Every stage is cached on its inputs, params sections and its own code (the files dvc.yaml
lists for it): an unchanged re-run reuses every stage, and a run retried after a failure in
train re-runs train and what follows it. When the gathered snapshot, the params and the code
equal those of the last completed run, the run records a skip and ends (params
schedule.skip_unchanged_data). The flow only composes tasks (nlpflow.tasks).
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.states import Completed, State

from nlpflow.pipeline.freshness import REUSED, SKIPPED
from nlpflow.pipeline.stages import STAGES, StageContext, model_stage
from nlpflow.shutdown import stopped_by
from nlpflow.tasks.artifacts import publish_run_links
from nlpflow.tasks.labels import flow_run_name, tag_flow_run
from nlpflow.tasks.outcome import (
    check_skip,
    experiment_id,
    record_outcome,
    tag_model,
    withdraw_registration,
)
from nlpflow.tasks.prologue import flow_prologue, holding_project, training_context
from nlpflow.tasks.remote import push_to_remote, record_reproduction
from nlpflow.tasks.stages import (
    StageResult,
    end_tracking,
    record_in_dvc,
    run_stage_cached,
    start_tracking,
    unless_stopped,
)


@flow(name="nlpflow-training", flow_run_name=flow_run_name, log_prints=True)
def training_flow(
    overrides: list[str] | None = None,
    project_dir: str | None = None,
    configs: list[str] | None = None,
    force: bool = False,
) -> State[dict[str, Any]]:
    settings, params = flow_prologue(overrides, project_dir, configs)
    ctx, record_dvc = training_context(settings, params, overrides=overrides, configs=configs)
    tag_flow_run(settings.root, params)
    with holding_project(ctx):
        run_id = start_tracking(ctx)
        try:
            summary, message = _run_stages(ctx, run_id, record_dvc, force=force)
        except BaseException:
            unless_stopped(end_tracking)(ctx, run_id, failed=True)
            raise
        end_tracking(ctx, run_id, failed=False)
    # A skip and a run that reused every stage are told apart from a training at a glance:
    # Prefect colours by state type and shows the name.
    name = "Skipped" if summary["skipped"] else "Cached" if summary["outcome"] == REUSED else None
    if name is None:
        return Completed(message=message, data=summary)
    return Completed(message=message, data=summary, name=name)


def _run_stages(
    ctx: StageContext, run_id: str, record_dvc: bool, *, force: bool
) -> tuple[dict[str, Any], str]:
    results: dict[str, StageResult] = {}
    from prefect.runtime import flow_run

    summary: dict[str, Any] = {
        "run_id": run_id, "dvc_lock_updated": record_dvc, "skipped": None,
        "experiment_id": experiment_id(ctx), "flow_run_id": str(flow_run.id),
    }  # fmt: skip
    try:
        for stage in STAGES:
            result = results[stage.name] = run_stage_cached(stage.name, ctx, run_id, refresh=force)
            summary[stage.name] = result.report.model_dump(mode="json")
            if stage.model is not None:  # ran or reused: register checks it uploads this model
                tag_model(ctx, run_id, result.outputs[stage.model])
            if stage.snapshot is None:
                continue
            reason = check_skip(ctx, run_id, snapshot=result.outputs[stage.snapshot], force=force)
            if reason is not None:
                summary |= {"skipped": reason, "dvc_lock_updated": False, "outcome": SKIPPED}
                return summary | {"cached": _cached(results, run_id)}, f"Skipped: {reason}"
    except BaseException:
        # what completed is kept, but never hides the failure; a stopped run has seconds
        # left, and the next run records the stages it reuses from the cache
        if record_dvc and results and stopped_by() is None:
            try:
                _record_and_push(ctx, run_id, results)
            except Exception as exc:  # the stage's error is the one to raise
                print(f"could not record the stages that completed: {exc}")
        raise
    try:
        return _finish(ctx, run_id, results, summary, record_dvc=record_dvc)
    except BaseException as exc:  # a failed run must not leave the version it registered
        for stage in STAGES:
            if stage.registers and results[stage.name].run_id == run_id:
                try:
                    withdraw_registration(ctx, run_id, results[stage.name].report, repr(exc))
                except Exception as failed:  # the run's own error is the one to raise
                    print(f"could not withdraw the version this run registered: {failed}")
        raise


def _finish(
    ctx: StageContext, run_id: str, results: dict[str, StageResult], summary: dict[str, Any],
    *, record_dvc: bool,
) -> tuple[dict[str, Any], str]:  # fmt: skip
    if record_dvc:
        _record_and_push(ctx, run_id, results)
    record_reproduction(ctx, dvc_lock=record_dvc)
    cached = _cached(results, run_id)
    kind = record_outcome(
        ctx, run_id, cached_by={name: results[name].run_id for name in cached},
        trained_by=results[model_stage().name].run_id,
    )  # fmt: skip
    summary["cached"] = cached
    summary["outcome"] = kind
    registered = next((summary.get(stage.name) for stage in STAGES if stage.registers), None)
    publish_run_links(ctx, run_id, summary["experiment_id"], registered)
    summary["stage_seconds"] = {
        name: 0.0 if name in cached else result.seconds for name, result in results.items()
    }
    return summary, f"{len(STAGES) - len(cached)} stages ran, {len(cached)} reused"


def _record_and_push(ctx: StageContext, run_id: str, results: dict[str, StageResult]) -> None:
    """Record the stages in dvc.lock, and push the accepted snapshot and the models this run
    built to the DVC remote (reused ones were pushed by the run that built them)."""
    ran = [name for name, result in results.items() if result.run_id == run_id]
    record_in_dvc(ctx, {name: r.key for name, r in results.items()}, ran)
    if ran:
        pushed = tuple(stage.name for stage in STAGES if stage.pushed and stage.name in results)
        push_to_remote(ctx, stages=pushed)


def _cached(results: dict[str, StageResult], run_id: str) -> list[str]:
    """The stages whose results came from an earlier run's cache."""
    return [name for name, result in results.items() if result.run_id != run_id]
