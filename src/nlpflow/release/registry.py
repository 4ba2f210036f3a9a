"""register: log the model to MLflow as a raw-text pyfunc, register a version, gate it.

The model is an MLflow 3 logged model of the pipeline's run (the runs table's Models column),
with the run's test metrics linked to it and to the test split's dataset; the pyfunc in it is
"models from code" (nlpflow/serving/pyfunc_entry.py), so no class is pickled. The version is registered
from that logged model. In a DVC experiment (`dvc exp run`) nothing is registered unless params
`register.experiments` is `register`: the logged model and the gate's verdict are logged, and
no alias moves.

The new version gets alias `challenger`. It takes `champion` only when the promotion gate
(nlpflow.release.gate, params `register.gate`) passes. Every decision is recorded on the version as
`gate.*` tags and in the promotion log (experiment `<register.experiment>-promotions`), and a
model card goes with it. `nlpflow registry history|promote|rollback` reads and moves the
champion by hand, recording who and why.

    nlpflow stage register
"""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from nlpflow.config.params import Params
from nlpflow.errors import NlpflowError, RegistryError, StageInputError, TrackingError
from nlpflow.release.gate import ChallengerEvidence, ChampionEvidence, Decision, Overlap
from nlpflow.tracking.tracker import Tracker
from nlpflow.training.families import load_manifest

CHAMPION, CHALLENGER = "champion", "challenger"
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # src/nlpflow: shipped inside every model
PYFUNC_ENTRY = PACKAGE_DIR / "serving" / "pyfunc_entry.py"  # the pyfunc, as models from code
MODEL_TYPE = "text-classification"  # the logged models' type: MLflow searches and compares by it
MODEL_VERSIONS = "mlflow.modelVersions"  # a logged model's tag that lists its registered versions
INPUT_EXAMPLE = "Hello, my order arrived damaged and I would like a refund."
_REQUIREMENTS = ("mlflow", "pandas", "numpy", "scikit-learn", "spacy", "spacy-lookups-data",
                 "torch", "transformers", "pydantic", "joblib", "skops")  # fmt: skip


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


def _save_pyfunc(
    path: Path, *, model_dir: Path, model_config: dict[str, Any], mlflow_model: Any = None
) -> None:
    """Save the raw-text pyfunc into `path` as MLflow "models from code": the entry file
    (nlpflow/serving/pyfunc_entry.py) is the python_model, so nothing is cloudpickled."""
    import mlflow.pyfunc
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    from nlpflow.serving.pyfunc import MODEL_ARTIFACT, TEXT_COLUMN

    manifest = load_manifest(model_dir)
    outputs: list[ColSpec | TensorSpec] = [ColSpec("string", "label"), ColSpec("double", "score")]
    outputs += [ColSpec("double", f"proba_{label}") for label in manifest["labels"]]
    signature = ModelSignature(
        inputs=Schema([ColSpec("string", TEXT_COLUMN)]), outputs=Schema(outputs)
    )
    mlflow.pyfunc.save_model(
        path=path,
        python_model=str(PYFUNC_ENTRY),
        artifacts={MODEL_ARTIFACT: str(model_dir)},
        # Ship nlpflow's own code with the model so it loads where nlpflow isn't installed.
        code_paths=[str(PACKAGE_DIR)],
        pip_requirements=_requirements(manifest),  # explicit: inference would re-load the model
        signature=signature,
        # What a request looks like, for the model page and `mlflow models serve` users: a
        # made-up text, never a row of the (possibly private) data. A one-row dict, not a
        # DataFrame: MLflow's DataFrame example code trips a pandas 4 deprecation warning.
        input_example={TEXT_COLUMN: INPUT_EXAMPLE},
        model_config=model_config,  # serving limits and quantization, read by load_context
        mlflow_model=mlflow_model,
    )


def log_model(
    tracker: Tracker,
    *,
    run_id: str,
    model_dir: Path,
    params: Params,
    tags: dict[str, str] | None = None,
) -> Any:
    """Log `model_dir` as an MLflow 3 logged model of run `run_id` (named for its family, the
    run's params copied onto it), holding the raw-text pyfunc; returns the LoggedModel, READY.

    Through the explicit client, not mlflow.start_run/log_model: those set the process-wide
    tracking URI (and MLFLOW_TRACKING_URI for every child process), which would leak into
    other pipelines that share a worker. So this does what mlflow.pyfunc.log_model does, step
    by step: create the logged model, list it among the run's outputs (the runs table's Models
    column), upload the files into its own artifact location, finalize it. Each call makes a
    new logged model, so a retried register never overwrites files an earlier version serves.
    """
    import tempfile

    from mlflow.entities import LoggedModelOutput
    from mlflow.models import Model

    client = tracker.client
    run = client.get_run(run_id)
    family = str(load_manifest(model_dir)["family"])
    logged = client.create_logged_model(
        run.info.experiment_id, name=family, source_run_id=run_id, model_type=MODEL_TYPE,
        params=dict(run.data.params), tags={"family": family} | (tags or {}),
    )  # fmt: skip
    try:
        client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
        described = Model(
            artifact_path=logged.artifact_location, run_id=run_id, model_id=logged.model_id,
            model_uuid=logged.model_id,
        )  # fmt: skip
        with tempfile.TemporaryDirectory(prefix="nlpflow-pyfunc-") as tmp:
            local = Path(tmp) / "model"
            _save_pyfunc(local, model_dir=model_dir, model_config=serving_config(params),
                         mlflow_model=described)  # fmt: skip
            client.log_model_artifacts(logged.model_id, str(local))
    except BaseException:
        client.finalize_logged_model(logged.model_id, "FAILED")
        raise
    return client.finalize_logged_model(logged.model_id, "READY")


def tracked_test_metrics(metrics: dict[str, Any], main: str) -> dict[str, float]:
    """metrics.json's test-set scores (test/<metric> and the main metric's interval) under the
    names evaluate logs them by: evaluate's own naming, so the two cannot drift apart."""
    from nlpflow.evaluation.evaluate import EvaluateReport

    report = EvaluateReport(
        metrics=metrics, confusion=[], labels=[], rows=0, main_metric=main,
        ci=metrics.get("ci") or {},
    )  # fmt: skip
    return {k: v for k, v in report.tracked_metrics().items() if k.startswith("test/")}


def link_metrics(
    tracker: Tracker,
    *,
    run_id: str,
    model_id: str,
    metrics: dict[str, float],
    dataset: tuple[str, str] | None,
) -> None:
    """Record `metrics` on the logged model (its page and the Models view show them), scored
    on `dataset` (name, digest). MLflow keeps model metrics with the run's: a value the run
    already holds is sent again with its own timestamp and step, so the run's history gets no
    second point."""
    import time

    from mlflow.entities import Metric

    now, batch = int(time.time() * 1000), []
    name, digest = dataset if dataset is not None else (None, None)
    for key, value in metrics.items():
        history = tracker.client.get_metric_history(run_id, key)
        same = [m for m in history if m.value == value]
        stamp, step = (same[-1].timestamp, same[-1].step) if same else (now, 0)
        batch.append(Metric(key, value, stamp, step, model_id=model_id, dataset_name=name,
                            dataset_digest=digest, run_id=run_id))  # fmt: skip
    for start in range(0, len(batch), 1000):  # MLflow's batch limit
        tracker.client.log_batch(run_id, metrics=batch[start : start + 1000])


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
    """Log `model_dir` as the raw-text pyfunc, a logged model of `run_id`, and register it as
    a new version of `model_name` (no aliases moved). Returns the version number."""
    logged = log_model(tracker, run_id=run_id, model_dir=model_dir, params=params)
    return register_logged_model(
        tracker, model_name, logged=logged, run_id=run_id, tags={"run_id": run_id} | (tags or {})
    )


def register_logged_model(
    tracker: Tracker, name: str, *, logged: Any, run_id: str, tags: dict[str, str]
) -> int:
    """A new version of `name` from a logged model. Its source is the logged model's own
    artifact location, not `models:/<model_id>`: MLflow's SQL registry resolves that URI with
    the process-wide tracking URI, whatever this client's is. The SQL registry also keeps no
    model_id on a version, so the link is recorded both ways as MLflow's UI reads it (the
    logged model's `mlflow.modelVersions` tag) and as a `model_id` version tag."""
    from mlflow.exceptions import MlflowException

    client = tracker.client
    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    version = client.create_model_version(
        name, logged.artifact_location, run_id=run_id, model_id=logged.model_id,
        tags=tags | {"model_id": logged.model_id},
    )  # fmt: skip
    listed = json.loads(client.get_logged_model(logged.model_id).tags.get(MODEL_VERSIONS, "[]"))
    listed.append({"name": name, "version": str(version.version)})
    client.set_logged_model_tags(logged.model_id, {MODEL_VERSIONS: json.dumps(listed)})
    return int(version.version)


# ------------------------------------------------------------------ reading the registry


class RegistryUnavailableError(TrackingError):
    """The registry could not be read (server away or failing): nothing was decided, and the
    same call may succeed later."""

    retryable = True


def registry_failure(tracker: Tracker, doing: str, exc: Exception) -> TrackingError:
    """The error for a registry read that failed for any reason but "not found": never to be
    taken for an absent model, version or alias."""
    from nlpflow.tracking.tracker import is_unreachable, unreachable_message

    if is_unreachable(exc):
        return RegistryUnavailableError(unreachable_message(tracker.uri, doing, exc))
    code = str(getattr(exc, "error_code", type(exc).__name__))
    first = (str(exc).splitlines() or [""])[0][:300]
    if code in {"PERMISSION_DENIED", "UNAUTHENTICATED"}:
        return TrackingError(
            f"MLflow at {tracker.uri} refused {doing} ({code}: {first}): give the user in "
            "MLFLOW_TRACKING_USERNAME (or the token) read access to the registered model, "
            "then rerun. Nothing was decided."
        )
    return RegistryUnavailableError(
        f"MLflow at {tracker.uri} failed while {doing} ({code}: {first}). Nothing was decided: "
        "rerun once the tracking server (or its database) works again."
    )


def _not_found(exc: Exception) -> bool:
    return getattr(exc, "error_code", None) == "RESOURCE_DOES_NOT_EXIST"


def champion_version(tracker: Tracker, name: str) -> int | None:
    """The version alias `champion` points at; None only when the model or the alias does not
    exist. Any other failure raises (registry_failure): read as "no champion", a server that
    did not answer would let the gate skip every comparison and promote."""
    from mlflow.exceptions import MlflowException

    try:
        # the model's aliases, not get_model_version_by_alias: that reports a missing alias
        # as INVALID_PARAMETER_VALUE, the same code as a malformed request
        model = tracker.client.get_registered_model(name)
    except MlflowException as exc:
        if _not_found(exc):
            return None
        raise registry_failure(tracker, f"looking up the champion of {name!r}", exc) from None
    return _version_or_none(dict(model.aliases or {}).get(CHAMPION))


def load_version_pyfunc(tracker: Tracker, name: str, version: int, dst: Path | None = None) -> Any:
    """The pyfunc of one registered version, from its own artifact location through `tracker`'s
    client, into `dst` (a new temporary folder when None; keep it while the model is used: its
    code is imported from there). Not its models:/ URI: MLflow resolves those with the
    process-wide registry URI whatever registry_uri is passed, and nlpflow never sets that."""
    source = tracker.client.get_model_version_download_uri(name, str(version))
    return load_pyfunc_at(tracker, source, dst)


def load_pyfunc_at(tracker: Tracker, uri: str, dst: Path | None = None) -> Any:
    """The pyfunc stored at artifact `uri` (a version's source, a logged model's location),
    downloaded through `tracker`'s tracking URI into `dst` (None: a new temporary folder)."""
    import tempfile

    import mlflow.artifacts
    import mlflow.pyfunc

    local = mlflow.artifacts.download_artifacts(
        artifact_uri=uri, tracking_uri=tracker.uri,
        dst_path=str(dst) if dst is not None else tempfile.mkdtemp(prefix="nlpflow-version-"),
    )  # fmt: skip
    return mlflow.pyfunc.load_model(local)


def load_served(tracker: Tracker, name: str, version: int) -> Any:
    """The registered version's python model exactly as serving loads it (its own copy of the
    code and model files, its model_config)."""
    return load_version_pyfunc(tracker, name, version).unwrap_python_model()


def served_predictions(served: Any, texts: list[str]) -> tuple[list[str], Any]:
    """Labels and probabilities of a loaded version for raw texts, past the request limits
    (the gate scores whole test sets, not requests)."""
    from nlpflow.serving.pyfunc import predict_frame

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
    except MlflowException as exc:
        if not _not_found(exc):
            raise registry_failure(tracker, f"reading version {version} of {name!r}", exc) from None
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


def _read_evaluation(metrics_path: Path, evaluation: Path) -> tuple[dict[str, Any], Any, Any]:
    import pandas as pd

    from nlpflow.evaluation.evaluate import TRAINING_TEXTS

    needed = [metrics_path, evaluation / "predictions.parquet", evaluation / "slices.json",
              evaluation / TRAINING_TEXTS]  # fmt: skip
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
    from nlpflow.evaluation.metrics import compute_metrics
    from nlpflow.evaluation.slices import compute_slice_metrics

    texts = predictions["raw_text"].astype(str).tolist()
    gold = predictions["label"].astype(str).tolist()
    score = float(compute_metrics(gold, labels, label_set)[params.evaluate.main_metric])
    slices = compute_slice_metrics(texts, gold, labels, labels=label_set, params=params.evaluate)
    return score, slices


def _champion_evidence(
    tracker: Tracker, name: str, *, predictions: Any, params: Params,
    challenger: ChallengerEvidence,
) -> ChampionEvidence | None:  # fmt: skip
    """The champion judged on the test rows it did not train on (all of them, when it trained
    on none or recorded nothing), and the challenger on the same rows when they are fewer."""
    from nlpflow.release.gate import overlap_refused

    version = champion_version(tracker, name)
    if version is None:
        return None
    overlap = _overlap(tracker, name, version, predictions=predictions)
    if overlap_refused(overlap, params):  # the gate compares nothing: no score to compute
        return ChampionEvidence(version=version, predicted=[], slices={}, score=float("nan"),
                                overlap=overlap)  # fmt: skip
    rows = predictions if overlap.kept is None else predictions.iloc[overlap.kept]
    texts = rows["raw_text"].astype(str).tolist()
    labels, _ = served_predictions(load_served(tracker, name, version), texts)
    label_set = sorted(set(rows["label"].astype(str)) | set(labels))
    score, slices = _judge(rows, labels, label_set=label_set, params=params)
    return ChampionEvidence(
        version=version, predicted=labels, slices=slices, score=score, overlap=overlap,
        challenger=None if overlap.kept is None
        else _challenger_on(challenger, overlap.kept, rows=rows, params=params),
    )  # fmt: skip


def _challenger_on(
    challenger: ChallengerEvidence, kept: list[int], *, rows: Any, params: Params
) -> ChallengerEvidence:
    """The challenger's evidence restricted to the test rows `kept`. Its labels are the rows'
    gold and its own predictions, the champion's rule: a class absent from both would add a
    zero F1 to one side only."""
    from dataclasses import replace

    predicted = [challenger.predicted[i] for i in kept]
    label_set = sorted(set(rows["label"].astype(str)) | set(predicted))
    score, slices = _judge(rows, predicted, label_set=label_set, params=params)
    gold = rows["label"].astype(str).tolist()
    return replace(challenger, gold=gold, predicted=predicted, score=score, slices=slices)


TRAINING_TEXTS_ARTIFACT = "registration/train_text_hashes.txt.gz"  # in the version's run


def _log_training_texts(tracker: Tracker, *, run_id: str, evaluation: Path) -> None:
    """What the model trained on (evaluate's text keys of the train and validation texts),
    as an artifact of its run: a later gate checks its own test rows against them."""
    from nlpflow.evaluation.evaluate import TRAINING_TEXTS

    tracker.client.log_artifact(run_id, str(evaluation / TRAINING_TEXTS), "registration")


def _champion_training_texts(tracker: Tracker, name: str, version: int) -> set[str] | None:
    """The text keys the champion trained on; None when it recorded none (registered before
    nlpflow kept them, or its run is gone). A registry or store that fails raises."""
    import tempfile

    from mlflow.exceptions import MlflowException

    from nlpflow.evaluation.evaluate import load_text_hashes

    client = tracker.client
    try:
        run_id = client.get_model_version(name, str(version)).run_id
        if not run_id:
            return None
        listed = {a.path for a in client.list_artifacts(run_id, "registration")}
        if TRAINING_TEXTS_ARTIFACT not in listed:
            return None
        with tempfile.TemporaryDirectory(prefix="nlpflow-trained-") as tmp:
            local = client.download_artifacts(run_id, TRAINING_TEXTS_ARTIFACT, tmp)
            return load_text_hashes(Path(local))
    except MlflowException as exc:
        if _not_found(exc):
            return None
        raise registry_failure(
            tracker, f"reading what version {version} of {name!r} trained on", exc
        ) from None


def _overlap(tracker: Tracker, name: str, version: int, *, predictions: Any) -> Overlap:
    """Which test rows the champion trained on (by evaluate.text_key of the raw text)."""
    from nlpflow.evaluation.evaluate import text_key

    rows = len(predictions)
    trained = _champion_training_texts(tracker, name, version)
    if trained is None:
        return Overlap(test_rows=rows, trained_on=None)
    texts = predictions["raw_text"].astype(str)
    kept = [i for i, text in enumerate(texts) if text_key(text) not in trained]
    return Overlap(test_rows=rows, trained_on=rows - len(kept),
                   kept=kept if len(kept) < rows else None)  # fmt: skip


def _challenger_evidence(
    served: Any, *, predictions: Any, metrics: dict[str, Any], params: Params, family: str
) -> ChallengerEvidence:
    """What the registered version itself predicts on the test rows: the gate judges the model
    users will get (int8 included), and checks it against what evaluate measured."""
    from nlpflow.release.gate import compare_predictions

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
    }


def _record_decision(
    tracker: Tracker, params: Params, *, name: str, version: int, decision: Decision, run_id: str
) -> PromotionEvent:
    tags = decision_tags(decision, registered=True)
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


def _log_evaluated_model(
    tracker: Tracker, *, run_id: str, model_dir: Path, params: Params, metrics: dict[str, Any],
    predictions: Any,
) -> Any:  # fmt: skip
    """The logged model of `model_dir`, with the run's test metrics linked to it, scored on the
    test split's dataset (the one Tracker.log_datasets logs: same name, same digest)."""
    from nlpflow.tracking.tracker import split_dataset_name, split_digest

    sha256 = _test_set_sha256(predictions)
    logged = log_model(tracker, run_id=run_id, model_dir=model_dir, params=params,
                       tags={"test_set_sha256": sha256})  # fmt: skip
    test = (
        split_dataset_name(params, "test"),
        split_digest(predictions["raw_text"].astype(str), predictions["label"].astype(str)),
    )
    scores = tracked_test_metrics(metrics, params.evaluate.main_metric)
    link_metrics(tracker, run_id=run_id, model_id=logged.model_id, metrics=scores, dataset=test)
    return logged


def _publish(
    tracker: Tracker, *, name: str, logged: Any, run_id: str, tags: dict[str, str]
) -> tuple[int, Any]:
    """Register `logged` as a new version with alias challenger; (version, its python model
    as serving loads it)."""
    version = register_logged_model(tracker, name, logged=logged, run_id=run_id, tags=tags)
    tracker.client.set_registered_model_alias(name, CHALLENGER, str(version))
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
) -> RegistrationReport:
    """Log `model_dir` as the run's logged model (test metrics linked), register it as a new
    version (alias challenger), run the promotion gate, move `champion` only if it passes,
    record the decision, and write the model card. In a DVC experiment nothing is registered
    and no alias moves (not_registered_reason): the gate still judges the logged model, and
    its verdict goes on the run and the logged model.

    `expected_model_sha256`: what the run's own train stage wrote; a model folder that hashes
    otherwise (another run overwrote it) is refused before and after the upload, nothing
    registered. A failure after the version exists withdraws it (withdraw_version): a failed
    register leaves no version and moves no alias."""

    metrics, predictions, _ = _read_evaluation(metrics_path, evaluation)
    main = params.evaluate.main_metric
    manifest = load_manifest(model_dir)
    check_model_fingerprint(tracker, run_id=run_id, model_dir=model_dir,
                            expected=expected_model_sha256)  # fmt: skip
    logged = _log_evaluated_model(tracker, run_id=run_id, model_dir=model_dir, params=params,
                                  metrics=metrics, predictions=predictions)  # fmt: skip
    # the upload read the folder file by file: it must not have changed meanwhile either
    uploaded = check_model_fingerprint(tracker, run_id=run_id, model_dir=model_dir,
                                       expected=expected_model_sha256)  # fmt: skip
    tracker.set_tags(run_id, {"nlpflow.registered_model_sha256": uploaded})
    skipped = not_registered_reason(params)
    version: int | None = None
    if skipped is None:
        tags = {"run_id": run_id, f"test_{main}": str(metrics[main]),
                "test_set_sha256": _test_set_sha256(predictions),
                "model_sha256": uploaded}  # fmt: skip
        before = _aliases(tracker, model_name)
        # where the aliases pointed before: a run killed after this (kill -9) gets its version
        # withdrawn by the next run or nlpflow doctor (close_dead_runs), aliases given back
        tags |= {f"{PREVIOUS}{alias}": str(v or "") for alias, v in before.items()}
        version, served = _publish(tracker, name=model_name, logged=logged, run_id=run_id,
                                   tags=tags)  # fmt: skip
        try:
            return _judge_and_record(
                tracker, served=served, version=version, skipped=None, logged=logged,
                before=before, metrics=metrics, predictions=predictions, evaluation=evaluation,
                dst=dst, card=card, params=params, run_id=run_id, model_name=model_name,
                data_manifest=data_manifest, manifest=manifest,
            )  # fmt: skip
        except BaseException as exc:
            withdraw_version(tracker, model_name, version, run_id=run_id, restore=before,
                             reason=f"register failed after registering it: {exc!r}"[:400])  # fmt: skip
            raise
    served = load_pyfunc_at(tracker, logged.artifact_location).unwrap_python_model()
    return _judge_and_record(
        tracker, served=served, version=None, skipped=skipped, logged=logged,
        before={}, metrics=metrics, predictions=predictions, evaluation=evaluation,
        dst=dst, card=card, params=params, run_id=run_id, model_name=model_name,
        data_manifest=data_manifest, manifest=manifest,
    )  # fmt: skip


class ModelChangedError(NlpflowError):
    """The model folder register would upload is not the one this run's train stage wrote."""

    code = "NLP031"


def check_model_fingerprint(
    tracker: Tracker, *, run_id: str, model_dir: Path, expected: str | None
) -> str:
    """The model folder's sha256; a ModelChangedError, recorded on the run, when it differs
    from `expected` (None: nothing to check against, e.g. `dvc repro` found train unchanged)."""
    from nlpflow.pipeline.fingerprint import hash_path

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


def _aliases(tracker: Tracker, name: str) -> dict[str, int | None]:
    """Where `champion` and `challenger` point (None: the alias or the model does not exist).
    Any other failure raises: read as "no alias", a withdrawal would delete a real one."""
    from mlflow.exceptions import MlflowException

    try:
        model = tracker.client.get_registered_model(name)
    except MlflowException as exc:
        if _not_found(exc):
            return dict.fromkeys((CHAMPION, CHALLENGER))
        raise registry_failure(tracker, f"reading the aliases of {name!r}", exc) from None
    aliases = dict(model.aliases or {})
    return {alias: _version_or_none(aliases.get(alias)) for alias in (CHAMPION, CHALLENGER)}


def _version_or_none(version: Any) -> int | None:
    return int(version) if version is not None else None


def withdraw_version(
    tracker: Tracker, name: str, version: int, *, run_id: str, restore: dict[str, int | None],
    reason: str,
) -> None:  # fmt: skip
    """Undo a registration whose run failed after it: give `champion` and `challenger` back
    to the versions in `restore` (or remove them) where they point at `version`, and delete
    the version. The logged model stays on the run, which says why in `registry.withdrawn`."""
    client = tracker.client
    current = _aliases(tracker, name)
    for alias, previous in restore.items():
        if current.get(alias) != version:
            continue
        if previous is None:
            client.delete_registered_model_alias(name, alias)
        else:
            client.set_registered_model_alias(name, alias, str(previous))
    client.delete_model_version(name, str(version))
    tracker.set_tags(run_id, {"registry.withdrawn": f"version {version} of {name}: {reason}"})


PREVIOUS = "nlpflow.previous_"  # + alias: the version it pointed at before this one


def close_dead_runs(tracker: Tracker, *, by: str) -> list[str]:
    """Close this project's runs whose process is gone as KILLED (tracking.close_stale_runs)
    and withdraw every version they registered: a run that did not finish keeps nothing in
    the registry, wherever it was killed. Returns the closed runs' ids."""
    from nlpflow.tracking.tracker import close_stale_runs

    closed = [run.run_id for run in close_stale_runs(tracker, by=by)]
    for run_id in closed:
        for found in tracker.client.search_model_versions(f"run_id = '{run_id}'"):
            restore = {alias: _version_or_none(found.tags.get(f"{PREVIOUS}{alias}") or None)
                       for alias in (CHAMPION, CHALLENGER)}  # fmt: skip
            withdraw_version(tracker, found.name, int(found.version), run_id=run_id,
                             restore=restore, reason=f"its run was killed; withdrawn by {by}")  # fmt: skip
    return closed


def _judge_and_record(
    tracker: Tracker, *, served: Any, version: int | None, skipped: str | None, logged: Any,
    before: dict[str, int | None], metrics: dict[str, Any], predictions: Any, evaluation: Path,
    dst: Path,
    card: Path, params: Params, run_id: str, model_name: str, data_manifest: Path,
    manifest: dict[str, Any],
) -> RegistrationReport:  # fmt: skip
    """The gate's verdict on the served model, recorded; the champion moved if it passed;
    the model card and the registration report written."""
    from nlpflow.release.gate import decide

    main = params.evaluate.main_metric
    challenger = _challenger_evidence(
        served, predictions=predictions, metrics=metrics, params=params, family=manifest["family"]
    )
    _log_training_texts(tracker, run_id=run_id, evaluation=evaluation)
    champion = _champion_evidence(tracker, model_name, predictions=predictions, params=params,
                                  challenger=challenger)  # fmt: skip
    decision = decide(challenger, champion, params)
    verdict = decision_tags(decision, registered=version is not None)
    tracker.client.set_logged_model_tags(logged.model_id, verdict)
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
        aliases_before=before,
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
        tracker.client.set_registered_model_alias(name, CHAMPION, str(version))
    _record_decision(tracker, params, name=name, version=version, decision=decision,
                     run_id=run_id)  # fmt: skip
    summary = _card_summary(decision, metrics, params.evaluate.main_metric, run_id)
    tracker.client.update_model_version(name, str(version), description=summary)


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
    return (
        f"Test {main} {metrics[main]:.4f}{interval}. {verdict}: {decision.reasons}. "
        f"Model card: artifact registration/model_card.md of run {run_id}."
    )[:4900]
