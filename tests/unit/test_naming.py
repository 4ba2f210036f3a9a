"""Names people read: datasets, runs, grouped metric keys, and the Markdown of stage artifacts."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from nlpflow.config.naming import dataset_name, epoch_metrics, run_name
from nlpflow.config.params import parse_params
from nlpflow.tasks.artifacts import report_markdown


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("data/sample/support_tickets.csv", "support_tickets"),
        ("/abs/reviews.jsonl.gz", "reviews"),
        ("data/drop/*.csv", "drop"),
        ("data/imdb/", "imdb"),
        ("hf:nyu-mll/glue", "glue"),
        ("https://example.org/files/sms_spam.tsv", "sms_spam"),
        ("postgresql+psycopg://user:secret@db.internal:5432/tickets", "tickets"),
        ("sqlite:///data/local.db", "local"),
    ],
)
def test_dataset_name_is_short_and_never_holds_credentials(source: str, name: str) -> None:
    assert dataset_name(source) == name


def test_run_name_says_family_data_knob_seed_and_experiment() -> None:
    params = parse_params({"train": {"family": "tfidf_linear_svm", "seed": 7, "svm": {"C": 0.25}},
                           "data": {"source": "hf:nyu-mll/glue", "hf_config": "sst2"}})  # fmt: skip
    assert run_name(params) == "tfidf_linear_svm · glue/sst2 · C 0.25 · seed 7"
    assert run_name(params, experiment="lunar-mole").endswith(" · exp lunar-mole")


def test_epoch_scores_land_in_the_train_and_val_chart_groups() -> None:
    scores = {"train_loss": 0.5, "val_macro_f1": 0.8, "val_loss": 0.6, "learning_rate": 1e-4}
    assert epoch_metrics(scores) == {
        "train/loss": 0.5, "val/macro_f1": 0.8, "val/loss": 0.6, "train/learning_rate": 1e-4,
    }  # fmt: skip


class _Report(BaseModel):
    family: str
    reasons: str
    scores: dict[str, float]
    checks: list[dict[str, object]]
    history: list[dict[str, float]]


def test_stage_artifacts_are_markdown_tables_that_a_pipe_cannot_break() -> None:
    report = _Report(
        family="tfidf_logreg", reasons="margin | slices", scores={"macro_f1": 0.912345},
        checks=[{"name": "margin", "passed": False}], history=[{"epoch": 1.0}],
    )  # fmt: skip
    text = report_markdown("register", report)
    assert "| reasons | margin \\| slices |" in text
    assert "| macro_f1 | 0.9123 |" in text
    assert "| name | passed |\n|---|---|\n| margin | no |" in text
    assert "history" not in text and "{" not in text
