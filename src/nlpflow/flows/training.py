"""The training flow: gather -> validate -> preprocess -> train -> baseline -> evaluate -> register.

nlpflow run                       # runs this flow with params.yaml
nlpflow run --set train.epochs=1  # one value overridden (dvc.lock is then left alone)
nlpflow run --force               # run every stage again, whatever the cache and data say
nlpflow deploy --cron "0 3 * * 1" # a scheduled deployment of it

Every stage is cached on its inputs, params sections and the code version: an unchanged
re-run reuses every stage, and a run retried after a failure in train re-runs train and what
follows it. When the gathered snapshot, the params and the code equal those of the last
completed run, the run records a skip and ends (params schedule.skip_unchanged_data).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.states import Completed, State

from nlpflow.pipeline.freshness import (
    OUTCOME,
    REUSED,
    SKIP_REASON,
    SKIPPED,
    run_fingerprints,
    run_kind,
    run_kind_tags,
    skip_reason,
    skipped_run_tags,
)
from nlpflow.config.params import load_params
from nlpflow.pipeline.runs import is_dvc_project, locked_project, make_context
from nlpflow.pipeline.remote import PUSHED_STAGES
from nlpflow.config.settings import load_settings
from nlpflow.shutdown import stopped_by, watch_stop_signals
from nlpflow.data.sources import dvc_can_track
from nlpflow.pipeline.stages import GATHERED, MODEL, MODEL_SHA256, STAGE_NAMES, StageContext
from nlpflow.tasks import credentials
from nlpflow.tasks.artifacts import publish_run_links
from nlpflow.tasks.labels import flow_run_name, show_library_progress, tag_flow_run
from nlpflow.tasks.remote import push_to_remote, record_reproduction
from nlpflow.tasks.stages import (
    StageResult,
    end_tracking,
    record_in_dvc,
    run_stage_cached,
    start_tracking,
)


@flow(name="nlpflow-training", flow_run_name=flow_run_name, log_prints=True)
def training_flow(
    overrides: list[str] | None = None,
    project_dir: str | None = None,
    configs: list[str] | None = None,
    force: bool = False,
) -> State[dict[str, Any]]:
    show_library_progress()
    credentials.install()  # database passwords from NLPFLOW_DB_SECRET's block
    watch_stop_signals()  # a SIGTERM/SIGINT closes the MLflow run KILLED, with the signal
    settings = load_settings()
    if project_dir:  # a deployment names its project; relative data paths resolve against it
        settings = settings.model_copy(update={"project_dir": Path(project_dir)})
    root = settings.root
    params = load_params(root / "params.yaml", overrides, [Path(c) for c in configs or []])
    ctx = make_context(root, params, settings)
    tag_flow_run(root, params)
    # dvc.lock must describe params.yaml; outputs of overridden params would make it lie.
    # Nor can it describe a glob or database source (DVC takes no such dependency).
    record_dvc = (
        is_dvc_project(root) and not overrides and not configs and dvc_can_track(params.data.source)
    )
    # one run at a time per project, whoever starts it (CLI, a worker's deployment, dvc repro)
    with locked_project(ctx):
        run_id = start_tracking(ctx)
        try:
            summary, message = _run_stages(ctx, run_id, record_dvc, force=force)
        except BaseException:
            end_tracking(ctx, run_id, failed=True)
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
        "experiment_id": ctx.tracker.experiment_id(ctx.params.register_.experiment)
        if ctx.tracker is not None else None,
        "flow_run_id": str(flow_run.id),
    }  # fmt: skip
    try:
        for name in STAGE_NAMES:
            results[name] = run_stage_cached(name, ctx, run_id, refresh=force)
            summary[name] = results[name].report.model_dump(mode="json")
            if name == "train":  # ran or reused: register checks it uploads this very model
                _tag_model(ctx, run_id, results[name])
            reason = (
                _skip_reason(ctx, run_id, results[name], force=force) if name == "gather" else None
            )
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
        if results["register"].run_id == run_id:
            try:
                _withdraw(ctx, run_id, results["register"].report, exc)
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
    trained_by = results["train"].run_id
    kind = run_kind(run_id, cached=cached, trained_by=trained_by)
    assert ctx.tracker is not None
    ctx.tracker.set_tags(
        run_id,
        {OUTCOME: "completed", "nlpflow.cached_stages": ",".join(cached) or "none"}
        | {f"nlpflow.cached.{name}": results[name].run_id for name in cached}
        | run_kind_tags(ctx, kind, trained_by=trained_by),
    )
    summary["cached"] = cached
    summary["outcome"] = kind
    publish_run_links(ctx, run_id, summary["experiment_id"], summary.get("register"))
    summary["stage_seconds"] = {
        name: 0.0 if name in cached else result.seconds for name, result in results.items()
    }
    return summary, f"{len(STAGE_NAMES) - len(cached)} stages ran, {len(cached)} reused"


def _tag_model(ctx: StageContext, run_id: str, train: StageResult) -> None:
    assert ctx.tracker is not None
    ctx.tracker.set_tags(run_id, {MODEL_SHA256: train.outputs[MODEL]})


def _withdraw(ctx: StageContext, run_id: str, report: Any, exc: BaseException) -> None:
    """Undo this run's registration (nlpflow.release.registry.withdraw_version) before it fails."""
    from nlpflow.release.registry import withdraw_version

    if ctx.tracker is None or report.version is None:
        return
    print(f"withdrawing {report.model_name} version {report.version}: the run failed after "
          "registering it")  # fmt: skip
    withdraw_version(
        ctx.tracker, report.model_name, report.version, run_id=run_id,
        restore=report.aliases_before, reason=f"the run failed after register: {exc!r}"[:400],
    )  # fmt: skip


def _record_and_push(ctx: StageContext, run_id: str, results: dict[str, StageResult]) -> None:
    """Record the stages in dvc.lock, and push the accepted snapshot and the models this run
    built to the DVC remote (reused ones were pushed by the run that built them)."""
    ran = [name for name, result in results.items() if result.run_id == run_id]
    record_in_dvc(ctx, {name: r.key for name, r in results.items()}, ran)
    if ran:
        push_to_remote(ctx, stages=tuple(name for name in PUSHED_STAGES if name in results))


def _skip_reason(ctx: StageContext, run_id: str, gather: StageResult, *, force: bool) -> str | None:
    """Tag the run with what it trains on; when that equals the last completed run's (and
    skipping is on), record the skip in MLflow and Prefect and say why."""
    assert ctx.tracker is not None
    fingerprints = run_fingerprints(ctx, gather.outputs[GATHERED])
    ctx.tracker.set_tags(run_id, fingerprints)
    if force or not ctx.params.schedule.skip_unchanged_data:
        return None
    reason = skip_reason(ctx, fingerprints)
    if reason is not None:
        ctx.tracker.set_tags(
            run_id, {OUTCOME: "skipped", SKIP_REASON: reason} | skipped_run_tags(ctx, reason)
        )
        create_markdown_artifact(f"## Skipped\n\n{reason}\n", key="nlpflow-skip")
        print(f"Skipped: {reason}")
    return reason


def _cached(results: dict[str, StageResult], run_id: str) -> list[str]:
    """The stages whose results came from an earlier run's cache."""
    return [name for name, result in results.items() if result.run_id != run_id]
