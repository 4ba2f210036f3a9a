"""register: log the model to MLflow as a raw-text pyfunc, register a version, gate it.

The new version gets alias `challenger`. It takes `champion` only when the promotion gate
(nlpflow.gate, params `register.gate`) passes. Every decision is recorded on the version as
`gate.*` tags and in the promotion log (experiment `<register.experiment>-promotions`), and a
model card goes with it. `nlpflow registry history|promote|rollback` reads and moves the
champion by hand, recording who and why.

    nlpflow stage register
"""

from __future__ import annotations

import json
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from nlpflow.errors import RegistryError, StageInputError
from nlpflow.gate import ChallengerEvidence, ChampionEvidence, Decision
from nlpflow.models import load_manifest
from nlpflow.params import Params
from nlpflow.tracking import Tracker

CHAMPION, CHALLENGER = "champion", "challenger"
MODEL_PATH = "model"  # artifact folder of the pyfunc inside the run
_REQUIREMENTS = ("mlflow", "pandas", "numpy", "scikit-learn", "spacy", "spacy-lookups-data",
                 "torch", "transformers", "pydantic", "joblib")  # fmt: skip


def _requirements(manifest: dict[str, Any]) -> list[str]:
    """The packages serving needs, pinned to the versions trained with; the NER pipeline
    only when the model's text was entity-masked (its package name is the pipeline's)."""
    names = list(_REQUIREMENTS)
    preprocess = manifest.get("preprocess") or {}
    if preprocess.get("mask_entities"):
        names.append(str(preprocess.get("ner_pipeline", "")).replace("_", "-"))
    pins = []
    for name in names:
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            continue
    return pins


def _log_pyfunc(
    tracker: Tracker, run_id: str, model_dir: Path, model_config: dict[str, Any]
) -> str:
    """Save the pyfunc locally, upload it into the run; return its artifact location.

    Through the explicit client, not mlflow.start_run/log_model: those set the process-wide
    tracking URI (and MLFLOW_TRACKING_URI for every child process), which would leak into
    other pipelines that share a worker.
    """
    import tempfile

    import mlflow.pyfunc
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    from nlpflow.serving import MODEL_ARTIFACT, TextClassifierModel

    manifest = load_manifest(model_dir)
    outputs: list[ColSpec | TensorSpec] = [ColSpec("string", "label"), ColSpec("double", "score")]
    outputs += [ColSpec("double", f"proba_{label}") for label in manifest["labels"]]
    signature = ModelSignature(inputs=Schema([ColSpec("string", "text")]), outputs=Schema(outputs))
    with tempfile.TemporaryDirectory(prefix="nlpflow-pyfunc-") as tmp, warnings.catch_warnings():
        # MLflow warns about type hints, input examples and cloudpickle on every save; the
        # signature above is explicit and the pickled object is our own class.
        warnings.simplefilter("ignore", UserWarning)
        mlflow.pyfunc.save_model(
            path=Path(tmp) / MODEL_PATH,
            python_model=TextClassifierModel(),
            artifacts={MODEL_ARTIFACT: str(model_dir)},
            # Ship nlpflow's own code with the model so it loads where nlpflow isn't installed.
            code_paths=[str(Path(__file__).parent)],
            pip_requirements=_requirements(manifest),  # explicit: inference would re-load the model
            signature=signature,
            model_config=model_config,  # serving limits and quantization, read by load_context
        )
        folder = _free_artifact_folder(tracker, run_id)
        tracker.client.log_artifacts(run_id, str(Path(tmp) / MODEL_PATH), folder)
    return f"{tracker.client.get_run(run_id).info.artifact_uri}/{folder}"


def _free_artifact_folder(tracker: Tracker, run_id: str) -> str:
    """`model`, or `model-2`, ... when the run already holds one: a version points at its
    folder, so a second publish in one run (a retried register) must not overwrite the files
    an earlier version serves."""
    taken = {a.path for a in tracker.client.list_artifacts(run_id)}
    folder, n = MODEL_PATH, 1
    while folder in taken:
        n += 1
        folder = f"{MODEL_PATH}-{n}"
    return folder


def serving_config(params: Params) -> dict[str, Any]:
    """What the served model enforces and how it runs, baked into the registered version."""
    return {
        "max_chars": params.serve.max_chars,
        "max_batch": params.serve.max_batch,
        "quantize": params.register_.quantize,
    }


def publish_model(
    tracker: Tracker,
    *,
    run_id: str,
    model_dir: Path,
    model_name: str,
    params: Params,
    tags: dict[str, str] | None = None,
) -> int:
    """Log `model_dir` as the raw-text pyfunc into `run_id` and register it as a new version
    of `model_name` (no aliases moved). Returns the version number."""
    source = _log_pyfunc(tracker, run_id, model_dir, serving_config(params))
    return _new_version(
        tracker, model_name, source=source, run_id=run_id, tags={"run_id": run_id} | (tags or {})
    )


def _new_version(
    tracker: Tracker, name: str, *, source: str, run_id: str, tags: dict[str, str]
) -> int:
    from mlflow.exceptions import MlflowException

    try:
        tracker.client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    version = tracker.client.create_model_version(name, source, run_id=run_id, tags=tags)
    return int(version.version)


# ------------------------------------------------------------------ reading the registry


def champion_version(tracker: Tracker, name: str) -> int | None:
    from mlflow.exceptions import MlflowException

    try:
        return int(tracker.client.get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:
        return None


def load_version_pyfunc(tracker: Tracker, name: str, version: int, dst: Path | None = None) -> Any:
    """The pyfunc of one registered version, from its own artifact location through `tracker`'s
    client, into `dst` (a new temporary folder when None; keep it while the model is used: its
    code is imported from there). Not its models:/ URI: MLflow resolves those with the
    process-wide registry URI whatever registry_uri is passed, and nlpflow never sets that."""
    import tempfile

    import mlflow.artifacts
    import mlflow.pyfunc

    source = tracker.client.get_model_version_download_uri(name, str(version))
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=source, tracking_uri=tracker.uri,
        dst_path=str(dst) if dst is not None else tempfile.mkdtemp(prefix="nlpflow-version-"),
    )  # fmt: skip
    return mlflow.pyfunc.load_model(local)


def load_served(tracker: Tracker, name: str, version: int) -> Any:
    """The registered version's python model exactly as serving loads it (its own copy of the
    code and model files, its model_config)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "code_paths are added to sys.path"
        return load_version_pyfunc(tracker, name, version).unwrap_python_model()


def served_predictions(served: Any, texts: list[str]) -> tuple[list[str], Any]:
    """Labels and probabilities of a loaded version for raw texts, past the request limits
    (the gate scores whole test sets, not requests)."""
    from nlpflow.serving import predict_frame

    frame = predict_frame(served.model, served.cleaner, texts)
    columns = [f"proba_{label}" for label in served.model.labels]
    return frame["label"].astype(str).tolist(), frame[columns].to_numpy()


# ------------------------------------------------------------------ the promotion log


def promotion_experiment(params: Params) -> str:
    return f"{params.register_.experiment}-promotions"


class PromotionEvent(BaseModel):
    """One move of (or one refusal to move) the champion alias."""

    time: str
    action: str  # gate | promote | rollback
    model: str
    version: int
    decision: str  # promoted | rejected | moved
    champion_before: int | None
    champion_after: int | None
    by: str
    reason: str
    run_id: str = ""  # the pipeline run behind a gate decision


def actor(by: str | None = None) -> str:
    import getpass
    import os

    if by:
        return by
    try:
        return os.environ.get("NLPFLOW_USER") or getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        return "unknown"


def log_event(tracker: Tracker, params: Params, event: PromotionEvent) -> None:
    """Append to the promotion log: one finished run per event in the promotions experiment,
    so the MLflow UI lists them as a table (and `nlpflow registry history` reads them)."""
    tags = {f"promotion.{k}": "" if v is None else str(v) for k, v in event.model_dump().items()}
    run_id = tracker.start_run(
        promotion_experiment(params), run_name=f"{event.action} v{event.version}", tags=tags
    )
    tracker.end_run(run_id, "FINISHED")


def read_log(tracker: Tracker, params: Params, name: str, limit: int = 100) -> list[PromotionEvent]:
    """Newest first."""
    found = tracker.client.get_experiment_by_name(promotion_experiment(params))
    if found is None:
        return []
    runs = tracker.client.search_runs(
        [found.experiment_id], filter_string=f"tags.`promotion.model` = '{name}'",
        order_by=["attributes.start_time DESC"], max_results=limit,
    )  # fmt: skip
    events = []
    for run in runs:
        fields: dict[str, Any] = {k.removeprefix("promotion."): v for k, v in run.data.tags.items()
                                  if k.startswith("promotion.")}  # fmt: skip
        for key in ("champion_before", "champion_after"):  # "" was None
            fields[key] = fields.get(key) or None
        events.append(PromotionEvent.model_validate(fields))
    return events


def _now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat(timespec="seconds")


def move_champion(
    tracker: Tracker, params: Params, *, name: str, version: int, action: str, by: str, reason: str
) -> PromotionEvent:
    """Point `champion` at `version` by hand (promote, rollback), recording who and why."""
    from mlflow.exceptions import MlflowException

    if not reason.strip():
        raise RegistryError(f'{action} needs a reason: pass --reason "why this version".')
    try:
        tracker.client.get_model_version(name, str(version))
    except MlflowException:
        raise RegistryError(
            f"model {name!r} has no version {version}: see `nlpflow registry history`."
        ) from None
    before = champion_version(tracker, name)
    tracker.client.set_registered_model_alias(name, CHAMPION, str(version))
    event = PromotionEvent(
        time=_now(), action=action, model=name, version=version, decision="moved",
        champion_before=before, champion_after=version, by=by, reason=reason,
    )  # fmt: skip
    for key, value in {"by": by, "reason": reason, "at": event.time}.items():
        tracker.client.set_model_version_tag(name, str(version), f"champion.{action}.{key}", value)
    log_event(tracker, params, event)
    return event


def rollback_target(tracker: Tracker, params: Params, name: str) -> int:
    """The champion before the current one took over, from the promotion log."""
    current = champion_version(tracker, name)
    if current is None:
        raise RegistryError(f"model {name!r} has no champion to roll back.")
    for event in read_log(tracker, params, name):
        before = event.champion_before
        if event.champion_after == current and before is not None and before != current:
            return before
    raise RegistryError(
        f"the promotion log of {name!r} records no champion before version {current}: "
        "name one with `nlpflow registry rollback --to VERSION`."
    )


# ------------------------------------------------------------------ the register stage


class RegistrationReport(BaseModel):
    model_name: str
    version: int
    run_id: str
    model_uri: str
    score: float
    metric: str
    aliases: list[str]
    previous_champion: int | None
    promoted: bool
    reasons: str
    checks: list[dict[str, Any]]


def _read_evaluation(metrics_path: Path, evaluation: Path) -> tuple[dict[str, Any], Any, Any]:
    import pandas as pd

    needed = [metrics_path, evaluation / "predictions.parquet", evaluation / "slices.json"]
    for path in needed:
        if not path.exists():
            raise StageInputError(f"{path} is missing: run evaluate before register.")
    return (
        json.loads(metrics_path.read_text()),
        pd.read_parquet(evaluation / "predictions.parquet"),
        json.loads((evaluation / "slices.json").read_text())["slices"],
    )


def _test_set_sha256(predictions: Any) -> str:
    import hashlib

    digest = hashlib.sha256()
    for text, label in zip(predictions["raw_text"], predictions["label"], strict=True):
        digest.update(f"{text}\t{label}\n".encode())
    return digest.hexdigest()


def _judge(
    predictions: Any, labels: list[str], *, label_set: list[str], params: Params
) -> tuple[float, dict[str, dict[str, Any]]]:
    """The main metric and the slices of one model's `labels` for the test rows."""
    from nlpflow.metrics import compute_metrics
    from nlpflow.slices import compute_slice_metrics

    texts = predictions["raw_text"].astype(str).tolist()
    gold = predictions["label"].astype(str).tolist()
    score = float(compute_metrics(gold, labels, label_set)[params.evaluate.main_metric])
    slices = compute_slice_metrics(texts, gold, labels, labels=label_set, params=params.evaluate)
    return score, slices


def _champion_evidence(
    tracker: Tracker, name: str, *, predictions: Any, params: Params
) -> ChampionEvidence | None:
    version = champion_version(tracker, name)
    if version is None:
        return None
    texts = predictions["raw_text"].astype(str).tolist()
    labels, _ = served_predictions(load_served(tracker, name, version), texts)
    label_set = sorted(set(predictions["label"].astype(str)) | set(labels))
    score, slices = _judge(predictions, labels, label_set=label_set, params=params)
    return ChampionEvidence(version=version, predicted=labels, slices=slices, score=score)


def _challenger_evidence(
    served: Any, *, predictions: Any, metrics: dict[str, Any], params: Params, family: str
) -> ChallengerEvidence:
    """What the registered version itself predicts on the test rows: the gate judges the model
    users will get (int8 included), and checks it against what evaluate measured."""
    from nlpflow.gate import compare_predictions

    texts = predictions["raw_text"].astype(str).tolist()
    labels, proba = served_predictions(served, texts)
    label_set = list(served.model.labels)
    main = params.evaluate.main_metric
    mismatches: list[str] = []
    if params.register_.quantize == "none":  # int8 is meant to differ a little
        expected = predictions[[f"proba_{label}" for label in label_set]].to_numpy()
        mismatches = compare_predictions(
            predictions["predicted"].astype(str).tolist(), expected, labels, proba, texts=texts
        )
    score, slices = _judge(predictions, labels, label_set=label_set, params=params)
    baseline = metrics.get("baseline") or {}
    return ChallengerEvidence(
        family=family, gold=predictions["label"].astype(str).tolist(), predicted=labels,
        score=score, slices=slices, behavioural_pass_rate=metrics.get("behavioural_pass_rate"),
        baseline_score=float(baseline[main]) if main in baseline else None,
        serving_mismatches=mismatches, serving_compared=params.register_.quantize == "none",
    )  # fmt: skip


def _record_decision(
    tracker: Tracker, params: Params, *, name: str, version: int, decision: Decision, run_id: str
) -> PromotionEvent:
    values = {k: v for k, v in decision.values.items() if v is not None}
    tags = {
        "gate.decision": "promoted" if decision.promote else "rejected",
        "gate.reasons": decision.reasons[:4900],
        "gate.compared_version": str(decision.compared_version or ""),
        "gate.metric": decision.metric,
        "gate.metrics": json.dumps(values),
        "gate.checks": json.dumps([c.model_dump() for c in decision.checks])[:4900],
    }
    for key, value in tags.items():
        tracker.client.set_model_version_tag(name, str(version), key, value)
    before = decision.compared_version
    event = PromotionEvent(
        time=_now(), action="gate", model=name, version=version,
        decision=tags["gate.decision"], champion_before=before,
        champion_after=version if decision.promote else before,
        by=f"gate ({actor()})", reason=decision.reasons[:4000], run_id=run_id,
    )  # fmt: skip
    log_event(tracker, params, event)
    return event


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
) -> RegistrationReport:
    """Register `model_dir` as a new version (alias challenger), run the promotion gate, move
    `champion` only if it passes, record the decision, and write the model card."""
    from nlpflow.card import build_model_card
    from nlpflow.gate import decide

    metrics, predictions, _ = _read_evaluation(metrics_path, evaluation)
    main = params.evaluate.main_metric
    manifest = load_manifest(model_dir)
    version = publish_model(
        tracker, run_id=run_id, model_dir=model_dir, model_name=model_name, params=params,
        tags={f"test_{main}": str(metrics[main]), "test_set_sha256": _test_set_sha256(predictions)},
    )  # fmt: skip
    tracker.client.set_registered_model_alias(model_name, CHALLENGER, str(version))
    served = load_served(tracker, model_name, version)
    challenger = _challenger_evidence(
        served, predictions=predictions, metrics=metrics, params=params, family=manifest["family"]
    )
    champion = _champion_evidence(tracker, model_name, predictions=predictions, params=params)
    decision = decide(challenger, champion, params)
    if decision.promote:
        tracker.client.set_registered_model_alias(model_name, CHAMPION, str(version))
    _record_decision(
        tracker, params, name=model_name, version=version, decision=decision, run_id=run_id
    )
    text = build_model_card(
        model_name=model_name, version=version, run_id=run_id, manifest=manifest,
        data_manifest=data_manifest, metrics=metrics, evaluation=evaluation, decision=decision,
        params=params,
    )  # fmt: skip
    card.parent.mkdir(parents=True, exist_ok=True)
    card.write_text(text)
    tracker.client.update_model_version(
        model_name, str(version), description=_card_summary(decision, metrics, main, run_id)
    )
    report = RegistrationReport(
        model_name=model_name, version=version, run_id=run_id,
        model_uri=f"models:/{model_name}/{version}", score=float(metrics[main]), metric=main,
        aliases=[CHALLENGER, CHAMPION] if decision.promote else [CHALLENGER],
        previous_champion=decision.compared_version, promoted=decision.promote,
        reasons=decision.reasons, checks=[c.model_dump() for c in decision.checks],
    )  # fmt: skip
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(json.dumps(report.model_dump(), indent=2))
    return report


def _card_summary(decision: Decision, metrics: dict[str, Any], main: str, run_id: str) -> str:
    """The version's description in the MLflow UI (the whole card is the run's artifact
    registration/model_card.md: descriptions are capped at 5,000 characters)."""
    ci = metrics.get("ci") or {}
    interval = f" (95% CI {ci['low']:.4f}-{ci['high']:.4f})" if "low" in ci else ""
    verdict = "Promoted to champion" if decision.promote else "Not promoted"
    return (
        f"Test {main} {metrics[main]:.4f}{interval}. {verdict}: {decision.reasons}. "
        f"Model card: artifact registration/model_card.md of run {run_id}."
    )[:4900]
