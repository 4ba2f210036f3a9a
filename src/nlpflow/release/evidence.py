"""The promotion gate's evidence, gathered from the registry and evaluate's outputs.

The challenger is the registered version itself, loaded back as serving loads it (int8
included), scored on the test rows and checked against what evaluate measured. The champion is
re-scored on the same rows, less those it trained on (its run's recorded training texts).
nlpflow.release.gate judges the evidence; this module only gathers it. What differs per NLP task
comes from its modules: the scoring of params `task` (nlpflow.evaluation.nlp: the score, slices
and evaluate's recorded predictions) and the served model's own Output (nlpflow.serving.nlp: how
its answer reads).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nlpflow.errors import StageInputError
from nlpflow.release.champion import champion_version
from nlpflow.release.gate import ChallengerEvidence, ChampionEvidence, Overlap

if TYPE_CHECKING:
    from nlpflow.config.params import Params
    from nlpflow.release.identity import ModelIdentity
    from nlpflow.tracking.tracker import Tracker

TRAINING_TEXTS_ARTIFACT = "registration/train_text_hashes.txt.gz"  # in the version's run


def read_evaluation(metrics_path: Path, evaluation: Path) -> tuple[dict[str, Any], Any, Any]:
    """metrics.json, the test predictions and the slices evaluate wrote."""
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


def sha256_of_test_rows(predictions: Any, *, targets: str = "label") -> str:
    """The sha256 of the test rows (raw text, tab, target, newline): the version's
    `test_set_sha256` tag. `targets`: the NLP task's column (NlpTask.targets), whose split
    digest (tracking.datasets.split_digest) is this hash's start."""
    import hashlib

    digest = hashlib.sha256()
    for text, label in zip(predictions["raw_text"], predictions[targets], strict=True):
        digest.update(f"{text}\t{label}\n".encode())
    return digest.hexdigest()


def load_served(tracker: Tracker, name: str, version: int) -> Any:
    """The registered version's python model exactly as serving loads it (its own copy of the
    code and model files, its model_config)."""
    return tracker.load_version(name, version).unwrap_python_model()


def served_predictions(served: Any, texts: list[str]) -> tuple[list[Any], Any]:
    """Predictions and probabilities of a loaded version for raw texts, past the request
    limits (the gate scores whole test sets, not requests), read as the Output module of the
    model's own NLP task reads its answer."""
    from nlpflow.serving.nlp import output_of_model
    from nlpflow.serving.pyfunc import predict_frame

    frame = predict_frame(served.model, served.cleaner, texts)
    return output_of_model(served.model).read_answer(frame, list(served.model.labels))


def _judge(
    rows: Any, predicted: list[Any], *, label_set: list[str], params: Params
) -> tuple[float, dict[str, dict[str, Any]]]:
    """The main metric and the slices of one model's `predicted` for the test `rows`, as the
    scoring of params `task` computes them."""
    from nlpflow.evaluation.nlp import scoring

    cleaned = rows["text"].astype(str).tolist() if "text" in rows.columns else None
    return scoring(params.task).judge(
        rows["label"].astype(str).tolist(), predicted, rows["raw_text"].astype(str).tolist(),
        labels=label_set, params=params.evaluate, cleaned=cleaned,
    )  # fmt: skip


def champion_evidence(
    tracker: Tracker, name: str, *, predictions: Any, params: Params,
    challenger: ChallengerEvidence,
) -> ChampionEvidence | None:  # fmt: skip
    """The champion judged on the test rows it did not train on (all of them, when it trained
    on none or recorded nothing), and the challenger on the same rows when they are fewer."""
    from nlpflow.release.gate import overlap_refused

    version = champion_version(tracker, name)
    if version is None:
        return None
    found = overlap(tracker, name, version, predictions=predictions)
    if overlap_refused(found, params):  # the gate compares nothing: no score to compute
        return ChampionEvidence(version=version, predicted=[], slices={}, score=float("nan"),
                                overlap=found)  # fmt: skip
    rows = predictions if found.kept is None else predictions.iloc[found.kept]
    texts = rows["raw_text"].astype(str).tolist()
    labels, _ = served_predictions(load_served(tracker, name, version), texts)
    label_set = sorted(set(rows["label"].astype(str)) | set(labels))
    score, slices = _judge(rows, labels, label_set=label_set, params=params)
    return ChampionEvidence(
        version=version, predicted=labels, slices=slices, score=score, overlap=found,
        challenger=None if found.kept is None
        else _challenger_on(challenger, found.kept, rows=rows, params=params),
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


def log_training_texts(tracker: Tracker, *, run_id: str, evaluation: Path) -> None:
    """What the model trained on (evaluate's text keys of the train and validation texts),
    as an artifact of its run: a later gate checks its own test rows against them."""
    from nlpflow.evaluation.evaluate import TRAINING_TEXTS

    tracker.log_artifact(run_id, evaluation / TRAINING_TEXTS, "registration")


def champion_training_texts(tracker: Tracker, name: str, version: int) -> set[str] | None:
    """The text keys the champion trained on; None when it recorded none (registered before
    nlpflow kept them, or its run is gone). A registry or store that fails raises."""
    import tempfile

    from nlpflow.evaluation.evaluate import load_text_hashes

    found = tracker.find_version(name, version)
    if found is None or found.run_id is None or tracker.find_run(found.run_id) is None:
        return None
    with tempfile.TemporaryDirectory(prefix="nlpflow-trained-") as tmp:
        local = tracker.download_artifact(found.run_id, TRAINING_TEXTS_ARTIFACT, Path(tmp))
        return None if local is None else load_text_hashes(local)


def overlap(tracker: Tracker, name: str, version: int, *, predictions: Any) -> Overlap:
    """Which test rows the champion trained on (by evaluate.text_key of the raw text)."""
    from nlpflow.evaluation.evaluate import text_key

    rows = len(predictions)
    trained = champion_training_texts(tracker, name, version)
    if trained is None:
        return Overlap(test_rows=rows, trained_on=None)
    texts = predictions["raw_text"].astype(str)
    kept = [i for i, text in enumerate(texts) if text_key(text) not in trained]
    return Overlap(test_rows=rows, trained_on=rows - len(kept),
                   kept=kept if len(kept) < rows else None)  # fmt: skip


def challenger_evidence(
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
        from nlpflow.evaluation.nlp import scoring

        expected, expected_proba = scoring(params.task).recorded(predictions, label_set)
        if hasattr(served.model, "overridden"):  # hybrid: evaluate scored the model alone
            cleaned = served.cleaner.transform(texts)
            expected, expected_proba = served.model.overridden(cleaned, expected, expected_proba)
        mismatches = compare_predictions(expected, expected_proba, labels, proba, texts=texts)
    score, slices = _judge(predictions, labels, label_set=label_set, params=params)
    baseline = metrics.get("baseline") or {}
    return ChallengerEvidence(
        family=family, gold=predictions["label"].astype(str).tolist(), predicted=labels,
        score=score, slices=slices, behavioural_pass_rate=metrics.get("behavioural_pass_rate"),
        baseline_score=float(baseline[main]) if main in baseline else None,
        serving_mismatches=mismatches, serving_compared=params.register_.quantize == "none",
    )  # fmt: skip


def version_identity(tracker: Tracker, name: str, version: int) -> ModelIdentity:
    """What `version` is a model of: its identity tags; for a version registered before nlpflow
    recorded them, what its run logged (params `task`, `data.source`, `data.hf_config`) and
    the labels of the model itself. A field neither says is None (unknown)."""
    from nlpflow.config.nlp_tasks import DEFAULT_NLP_TASK
    from nlpflow.config.secrets import redact
    from nlpflow.config.source_kinds import is_hf
    from nlpflow.release.identity import ModelIdentity, identity_from_tags, labels_of

    found = tracker.find_version(name, version)
    tagged = identity_from_tags(found.tags) if found is not None else None
    if tagged is not None:
        return tagged
    labels = getattr(load_served(tracker, name, version).model, "labels", None)
    run = tracker.find_run(found.run_id) if found is not None and found.run_id else None
    logged = run.params if run is not None else {}
    source = logged.get("data.source")
    config = logged.get("data.hf_config")
    if source and is_hf(source) and config and config != "None":
        source = f"{source} (config {config})"
    # logged_params leaves the default task out: a run that logged data but no task had it
    task = logged.get("task") or (DEFAULT_NLP_TASK if source else None)
    return ModelIdentity(task=task, labels=labels_of(task, labels),
                         source=redact(source) if source else None, origin="its run")  # fmt: skip
