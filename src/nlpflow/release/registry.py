"""register: log the model to MLflow as a raw-text pyfunc, register a version, gate it.

    nlpflow stage register

The model is logged as the run's logged model (nlpflow.release.publish) with the test metrics
linked to it. The new version gets alias `challenger`; it takes `champion` only when the
promotion gate (nlpflow.release.gate, params `register.gate`, evidence from
nlpflow.release.evidence) passes. Every decision is recorded on the version as `gate.*` tags
and in the promotion log (nlpflow.release.promotion_log), and a model card goes with it. In a
DVC experiment (`dvc exp run`) nothing is registered unless params `register.experiments` is
`register`: the logged model and the gate's verdict are logged, and no alias moves.
`nlpflow registry history|promote|rollback` reads and moves the champion by hand
(nlpflow.release.champion).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from nlpflow.config.naming import RegisteredName
from nlpflow.config.nlp_tasks import get_nlp_task
from nlpflow.config.params import Params
from nlpflow.errors import ModelChangedError as ModelChangedError
from nlpflow.release.champion import (
    PREVIOUS,
    aliases_of,
    champion_version,
    close_dead_runs,
    move_champion,
    rollback_target,
    withdraw_version,
)
from nlpflow.release.evidence import (
    challenger_evidence,
    champion_evidence,
    load_served,
    log_training_texts,
    read_evaluation,
    sha256_of_test_rows,
    version_identity,
)
from nlpflow.release.gate import Decision
from nlpflow.release.identity import identity_check, identity_of, identity_tags
from nlpflow.release.promotion_log import PromotionEvent, actor, log_event, now, read_log
from nlpflow.release.publish import log_model, publish_model, tracked_test_metrics
from nlpflow.tracking.refs import CHALLENGER, CHAMPION
from nlpflow.training.families import load_manifest

if TYPE_CHECKING:
    from nlpflow.tracking.model_registry import LoggedModelView
    from nlpflow.tracking.tracker import Tracker

# Imported from here by the CLI, the flows and the stage table: the registry's whole surface.
__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "PREVIOUS",
    "ModelChangedError",
    "RegistrationReport",
    "actor",
    "close_dead_runs",
    "load_served",
    "move_champion",
    "publish_model",
    "read_log",
    "register",
    "rollback_target",
    "withdraw_version",
]


class RegistrationReport(BaseModel):
    model_name: str
    version: int | None  # None: no version registered (not_registered says why)
    run_id: str
    model_id: str  # the MLflow logged model that holds the pyfunc
    model_uri: str  # models:/NAME/VERSION, or models:/<model_id> when nothing was registered
    score: float
    metric: str
    aliases: list[str]
    previous_champion: int | None
    promoted: bool  # whether `champion` moved to this version
    gate_passed: bool  # the gate's verdict, registered or not
    reasons: str
    checks: list[dict[str, Any]]
    not_registered: str | None = None
    # champion and challenger before this registration: withdraw_version gives them back
    # should the run fail after registering
    aliases_before: dict[str, int | None] = {}
    # the registered model's name, where it came from and how to choose another (one line)
    name_line: str = ""
    refused: bool = False  # not compared with the champion, a model of other data


def not_registered_reason(params: Params) -> str | None:
    """Why register makes no version this time; None when it does. A DVC experiment registers
    nothing unless register.experiments is `register`: trying params with `dvc exp run` must
    never move the registry's aliases (they move through `nlpflow run`)."""
    from nlpflow.config.dvcexp import experiment_name

    name = experiment_name()
    if name is None or params.register_.experiments == "register":
        return None
    return (
        f"DVC experiment {name!r}: its model and the gate's verdict are logged to its MLflow run, "
        "and no version is registered (register.experiments: log). To register an experiment's "
        "model, run it with `dvc exp run -S register.experiments=register`, or apply it "
        "(`dvc exp apply`) and run `nlpflow run`."
    )


def decision_tags(decision: Decision, *, registered: bool) -> dict[str, str]:
    """The gate's decision as tags (of the version, its logged model and its run).
    gate.decision: promoted | rejected, or passed when nothing was registered to promote."""
    values = {k: v for k, v in decision.values.items() if v is not None}
    verdict = "rejected" if not decision.promote else "promoted" if registered else "passed"
    return {
        "gate.decision": verdict,
        "gate.reasons": decision.reasons[:4900],
        "gate.compared_version": str(decision.compared_version or ""),
        "gate.metric": decision.metric,
        "gate.metrics": json.dumps(values),
        "gate.checks": json.dumps([c.model_dump() for c in decision.checks])[:4900],
        # "identity": not compared with the champion, a model of other data (gate.reasons says)
        "gate.refused": "identity" if decision.refused else "",
    }


def _record_decision(
    tracker: Tracker, params: Params, *, name: str, version: int, decision: Decision, run_id: str
) -> PromotionEvent:
    tags = decision_tags(decision, registered=True)
    tracker.set_version_tags(name, version, tags)
    before = decision.compared_version
    event = PromotionEvent(
        time=now(), action="gate", model=name, version=version,
        decision=tags["gate.decision"], champion_before=before,
        champion_after=version if decision.promote else before,
        by=f"gate ({actor()})", reason=decision.reasons[:4000], run_id=run_id,
    )  # fmt: skip
    log_event(tracker, params, event)
    return event


def _log_evaluated_model(
    tracker: Tracker, *, run_id: str, model_dir: Path, params: Params, metrics: dict[str, Any],
    predictions: Any, root: Path | None,
) -> Any:  # fmt: skip
    """The logged model of `model_dir`, with the run's test metrics linked to it, scored on the
    test split's dataset (the one Tracker.log_datasets logs: same name, same digest)."""
    from nlpflow.tracking.datasets import split_dataset_name, split_digest, target_texts

    targets = get_nlp_task(params.task).targets
    sha256 = sha256_of_test_rows(predictions, targets=targets)
    logged = log_model(tracker, run_id=run_id, model_dir=model_dir, params=params,
                       tags={"test_set_sha256": sha256}, root=root)  # fmt: skip
    test = (
        split_dataset_name(params, "test"),
        split_digest(predictions["raw_text"].astype(str), target_texts(predictions[targets])),
    )
    scores = tracked_test_metrics(metrics, params.evaluate.main_metric)
    tracker.log_model_metrics(run_id, model_id=logged.model_id, metrics=scores, dataset=test)
    return logged


def _publish(
    tracker: Tracker, *, name: str, logged: LoggedModelView, run_id: str, tags: dict[str, str]
) -> tuple[int, Any]:
    """Register `logged` as a new version with alias challenger; (version, its python model
    as serving loads it)."""
    version = tracker.register_logged_model(name, logged, run_id=run_id, tags=tags)
    tracker.set_alias(name, CHALLENGER, version)
    return version, load_served(tracker, name, version)


def register(
    *,
    model_dir: Path,
    metrics_path: Path,
    evaluation: Path,
    dst: Path,
    card: Path,
    params: Params,
    tracker: Tracker,
    run_id: str,
    model_name: str,
    data_manifest: Path,
    expected_model_sha256: str | None = None,
    root: Path | None = None,
    name_origin: str = "NLPFLOW_REGISTERED_MODEL",
) -> RegistrationReport:
    """Log `model_dir` as the run's logged model (test metrics linked), register it as a new
    version (alias challenger), run the promotion gate, move `champion` only if it passes,
    record the decision, and write the model card. In a DVC experiment nothing is registered
    and no alias moves (not_registered_reason): the gate still judges the logged model, and
    its verdict goes on the run and the logged model.

    `expected_model_sha256`: what the run's own train stage wrote; a model folder that hashes
    otherwise (another run overwrote it) is refused before and after the upload, nothing
    registered. A failure after the version exists withdraws it (withdraw_version): a failed
    register leaves no version and moves no alias. `root`: the project folder, where
    serve.rules (hybrid serving) is read. `name_origin`: where `model_name` came from
    (nlpflow.config.naming.RegisteredName.origin), for the fix the gate's refusal names.

    Every version and its run carry the identity of the model (task, labels, data source:
    nlpflow.release.identity); a champion of another identity is never compared with."""

    metrics, predictions, _ = read_evaluation(metrics_path, evaluation)
    main = params.evaluate.main_metric
    manifest = load_manifest(model_dir)
    check_model_fingerprint(tracker, run_id=run_id, model_dir=model_dir,
                            expected=expected_model_sha256)  # fmt: skip
    logged = _log_evaluated_model(tracker, run_id=run_id, model_dir=model_dir, params=params,
                                  metrics=metrics, predictions=predictions, root=root)  # fmt: skip
    # the upload read the folder file by file: it must not have changed meanwhile either
    uploaded = check_model_fingerprint(tracker, run_id=run_id, model_dir=model_dir,
                                       expected=expected_model_sha256)  # fmt: skip
    identity = identity_tags(identity_of(params, labels=manifest.get("labels") or []))
    tracker.set_tags(run_id, {"nlpflow.registered_model_sha256": uploaded} | identity)
    skipped = not_registered_reason(params)
    name = RegisteredName(model_name, name_origin)
    version: int | None = None
    if skipped is None:
        tags = {"run_id": run_id, f"test_{main}": str(metrics[main]),
                "test_set_sha256": sha256_of_test_rows(
                    predictions, targets=get_nlp_task(params.task).targets
                ),
                "model_sha256": uploaded} | identity  # fmt: skip
        before = aliases_of(tracker, model_name)
        # where the aliases pointed before: a run killed after this (kill -9) gets its version
        # withdrawn by the next run or nlpflow doctor (close_dead_runs), aliases given back
        tags |= {f"{PREVIOUS}{alias}": str(v or "") for alias, v in before.items()}
        version, served = _publish(tracker, name=model_name, logged=logged, run_id=run_id,
                                   tags=tags)  # fmt: skip
        try:
            return _judge_and_record(
                tracker, served=served, version=version, skipped=None, logged=logged,
                before=before, metrics=metrics, predictions=predictions, evaluation=evaluation,
                dst=dst, card=card, params=params, run_id=run_id, name=name,
                data_manifest=data_manifest, manifest=manifest,
            )  # fmt: skip
        except BaseException as exc:
            withdraw_version(tracker, model_name, version, run_id=run_id, restore=before,
                             reason=f"register failed after registering it: {exc!r}"[:400])  # fmt: skip
            raise
    served = tracker.load_model_at(logged.artifact_location).unwrap_python_model()
    return _judge_and_record(
        tracker, served=served, version=None, skipped=skipped, logged=logged,
        before={}, metrics=metrics, predictions=predictions, evaluation=evaluation,
        dst=dst, card=card, params=params, run_id=run_id, name=name,
        data_manifest=data_manifest, manifest=manifest,
    )  # fmt: skip


def check_model_fingerprint(
    tracker: Tracker, *, run_id: str, model_dir: Path, expected: str | None
) -> str:
    """The model folder's sha256; a ModelChangedError, recorded on the run, when it differs
    from `expected` (None: nothing to check against, e.g. `dvc repro` found train unchanged)."""
    from nlpflow.hashing import hash_path

    found = hash_path(model_dir)
    if expected is None or found == expected:
        return found
    reason = (
        f"{model_dir} is not the model this run trained (sha256 {found[:12]}, trained "
        f"{expected[:12]}): another run overwrote it. Nothing was registered. Run the pipeline "
        "again; nlpflow's project lock (.nlpflow/run.lock) keeps runs from overlapping."
    )
    tracker.set_tags(run_id, {"registry.not_registered": reason,
                              "nlpflow.found_model_sha256": found})  # fmt: skip
    raise ModelChangedError(reason)


def _judge_and_record(
    tracker: Tracker, *, served: Any, version: int | None, skipped: str | None, logged: Any,
    before: dict[str, int | None], metrics: dict[str, Any], predictions: Any, evaluation: Path,
    dst: Path,
    card: Path, params: Params, run_id: str, name: RegisteredName, data_manifest: Path,
    manifest: dict[str, Any],
) -> RegistrationReport:  # fmt: skip
    """The gate's verdict on the served model, recorded; the champion moved if it passed;
    the model card and the registration report written."""
    from nlpflow.release.gate import decide

    main, model_name = params.evaluate.main_metric, name.name
    challenger = challenger_evidence(
        served, predictions=predictions, metrics=metrics, params=params, family=manifest["family"]
    )
    log_training_texts(tracker, run_id=run_id, evaluation=evaluation)
    current = champion_version(tracker, model_name)
    identity = identity_check(
        identity_of(params, labels=manifest.get("labels") or []),
        None if current is None else version_identity(tracker, model_name, current),
        version=current, name=name, params=params,
    )  # fmt: skip
    champion = None
    if identity.passed:  # never a metric against a model of other labels or data
        champion = champion_evidence(tracker, model_name, predictions=predictions, params=params,
                                      challenger=challenger)  # fmt: skip
    decision = decide(challenger, champion, params, identity=identity, refused_version=current)
    verdict = decision_tags(decision, registered=version is not None)
    tracker.set_logged_model_tags(logged.model_id, verdict)
    tracker.set_tags(run_id, verdict | ({"registry.not_registered": skipped} if skipped else {}))
    if version is not None:
        _promote_if_passed(tracker, params, name=model_name, version=version, decision=decision,
                           run_id=run_id, metrics=metrics)  # fmt: skip
    report = RegistrationReport(
        model_name=model_name, version=version, run_id=run_id, model_id=logged.model_id,
        model_uri=f"models:/{model_name}/{version}" if version else f"models:/{logged.model_id}",
        score=float(metrics[main]), metric=main,
        aliases=([CHALLENGER, CHAMPION] if decision.promote else [CHALLENGER]) if version else [],
        previous_champion=decision.compared_version, promoted=bool(version and decision.promote),
        gate_passed=decision.promote, reasons=decision.reasons,
        checks=[c.model_dump() for c in decision.checks], not_registered=skipped,
        aliases_before=before, name_line=name.line, refused=decision.refused,
    )  # fmt: skip
    _write_card(
        card, report=report, manifest=manifest, data_manifest=data_manifest, metrics=metrics,
        evaluation=evaluation, decision=decision, params=params,
    )  # fmt: skip
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(json.dumps(report.model_dump(), indent=2))
    return report


def _promote_if_passed(
    tracker: Tracker, params: Params, *, name: str, version: int, decision: Decision,
    run_id: str, metrics: dict[str, Any],
) -> None:  # fmt: skip
    if decision.promote:
        tracker.set_alias(name, CHAMPION, version)
    _record_decision(tracker, params, name=name, version=version, decision=decision,
                     run_id=run_id)  # fmt: skip
    summary = _card_summary(decision, metrics, params.evaluate.main_metric, run_id)
    tracker.describe_version(name, version, summary)


def _write_card(
    card: Path, *, report: RegistrationReport, manifest: dict[str, Any], data_manifest: Path,
    metrics: dict[str, Any], evaluation: Path, decision: Decision, params: Params,
) -> None:  # fmt: skip
    from nlpflow.release.card import build_model_card

    text = build_model_card(
        model_name=report.model_name, version=report.version, run_id=report.run_id,
        manifest=manifest, data_manifest=data_manifest, metrics=metrics, evaluation=evaluation,
        decision=decision, params=params, not_registered=report.not_registered,
    )  # fmt: skip
    card.parent.mkdir(parents=True, exist_ok=True)
    card.write_text(text)


def _card_summary(decision: Decision, metrics: dict[str, Any], main: str, run_id: str) -> str:
    """The version's description in the MLflow UI (the whole card is the run's artifact
    registration/model_card.md: descriptions are capped at 5,000 characters)."""
    ci = metrics.get("ci") or {}
    interval = f" (95% CI {ci['low']:.4f}-{ci['high']:.4f})" if "low" in ci else ""
    verdict = "Promoted to champion" if decision.promote else "Not promoted"
    if decision.refused:
        verdict = f"Not promoted, not compared with champion v{decision.compared_version}"
    return (
        f"Test {main} {metrics[main]:.4f}{interval}. {verdict}: {decision.reasons}. "
        f"Model card: artifact registration/model_card.md of run {run_id}."
    )[:4900]
