"""`nlpflow stage NAME` (what `dvc repro` runs) ends with one line a person reads, per report."""

from __future__ import annotations

from pydantic import BaseModel

from nlpflow.cli.stages import _summary
from nlpflow.data.gather import GatherReport
from nlpflow.data.preprocess import PreprocessReport
from nlpflow.data.validation import CheckResult, ValidationReport
from nlpflow.evaluation.report import EvaluateReport
from nlpflow.release.registry import RegistrationReport
from nlpflow.training.train import TrainReport


def test_train_names_the_family_epochs_best_validation_score_and_time() -> None:
    history = [
        {"epoch": 1.0, "train_loss": 0.9, "val_macro_f1": 0.85},
        {"epoch": 2.0, "train_loss": 0.4, "val_macro_f1": 0.9124},  # the kept weights
        {"epoch": 3.0, "train_loss": 0.2, "val_macro_f1": 0.90},
        {"epoch": 4.0, "train_loss": 0.1, "val_macro_f1": 0.89},
    ]
    report = TrainReport(family="transformer", labels=["a", "b"], epochs=4, seconds=56.07,
                         history=history)  # fmt: skip
    assert _summary(report) == "transformer, 4 epochs, val macro_f1 0.912, 56.1 s"
    resumed = report.model_copy(update={"resumed_from": "/x/checkpoint-40", "epochs": 1})
    assert _summary(resumed) == (
        "transformer, 1 epoch, resumed from checkpoint-40, val macro_f1 0.912, 56.1 s"
    )
    entities = [{"epoch": 1.0, "val_entity_f1": 0.41, "val_entity_macro_f1": 0.3},
                {"epoch": 2.0, "val_entity_f1": 0.47, "val_entity_macro_f1": 0.35}]  # fmt: skip
    tagger = TrainReport(family="spacy_ner", labels=["O"], epochs=2, seconds=3.0, history=entities)
    assert _summary(tagger) == "spacy_ner, 2 epochs, val entity_f1 0.470, 3.0 s"


def test_evaluate_gives_the_main_metric_its_interval_the_baseline_and_behavioural() -> None:
    report = EvaluateReport(
        metrics={"macro_f1": 0.93809, "accuracy": 0.9379}, confusion=[[1]], labels=["a"], rows=145,
        ci={"low": 0.892, "high": 0.97302}, baseline={"family": "tfidf_logreg", "macro_f1": 0.9243},
        behavioural={"pass_rate": 0.9942, "tests": {}},
    )  # fmt: skip
    assert _summary(report) == "test macro_f1 0.938 [0.892, 0.973], baseline 0.924, behavioural 99%"
    bare = EvaluateReport(metrics={"accuracy": 0.5}, confusion=[], labels=[], rows=2,
                          main_metric="accuracy")  # fmt: skip
    assert _summary(bare) == "test accuracy 0.500"


def test_data_stages_count_rows_checks_and_speed() -> None:
    gather = GatherReport(
        source="s.csv", format="csv", source_sha256="0" * 64, split_from_source=False,
        rows={"train": 508, "validation": 73, "test": 145}, labels={"a": 1, "b": 2},
    )  # fmt: skip
    assert _summary(gather) == "rows 726 (train 508, validation 73, test 145), 2 labels"
    checks = [CheckResult(id=f"c{i}", check="x", expectation="y", success=i != 2) for i in range(3)]
    validation = ValidationReport(
        success=False, rows={"train": 1}, allowed_labels=["a"], checks=checks,
        quarantined={"c2": 3, "c1": 1}, quarantined_rows=3, quarantine_file="q.jsonl",
        seconds=4.44, report_html="r.html",
    )  # fmt: skip
    # rows, not check failures: a row breaking two checks is quarantined once
    assert _summary(validation) == "2/3 checks passed, 3 rows quarantined, 4.4 s"
    preprocess = PreprocessReport(rows={"train": 10, "test": 5}, seconds=2.64,
                                  texts_per_second=274.8, emptied=0)  # fmt: skip
    assert _summary(preprocess) == "15 texts, 275 texts/s, 2.6 s"


def test_register_says_which_version_its_aliases_and_why() -> None:
    report = RegistrationReport(
        model_name="clf", version=3, run_id="r", model_id="m-1", model_uri="models:/clf/3",
        score=0.9381, metric="macro_f1", aliases=["challenger"], previous_champion=2,
        promoted=False, gate_passed=False, checks=[],
        reasons="macro_f1 0.938 is not above the champion's 0.941",
    )  # fmt: skip
    assert _summary(report) == (
        "clf v3 (challenger), macro_f1 0.938, "
        "not promoted: macro_f1 0.938 is not above the champion's 0.941"
    )
    unregistered = report.model_copy(update={"version": None, "aliases": [],
                                             "not_registered": "a DVC experiment"})  # fmt: skip
    assert _summary(unregistered).startswith("clf not registered (a DVC experiment), macro_f1")
    named = report.model_copy(update={"name_line": "registered model 'clf' (derived from ...)"})
    assert _summary(named).endswith("champion's 0.941, registered model 'clf' (derived from ...)")


def test_a_report_without_its_own_line_shows_its_first_plain_fields() -> None:
    class Other(BaseModel):
        family: str
        fields: int
        nested: dict[str, int]
        path: str

    other = Other(family="tfidf_logreg", fields=20, nested={"x": 1}, path="models/p.yaml")
    assert _summary(other) == "family tfidf_logreg, fields 20, path models/p.yaml"
