"""topic-modeling's task roles, as pure functions: params that let text be unlabelled, the data
role's time column, the validate suite without label checks, the documents coherence is
measured on, the served answer and its drift from the training mix, the gate's form, and the
topic pictures' arithmetic."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from nlpflow.config.params import DataParams, ValidateParams, parse_params
from nlpflow.data.local_source import load_source
from nlpflow.data.suites import suite_role
from nlpflow.errors import DataSourceError, ParamsError
from nlpflow.evaluation.nlp import topic_modeling as scoring
from nlpflow.evaluation.topic_plots import compute_shares_over_time, topic_positions
from nlpflow.serving.nlp import topic_modeling as served

TOPICS = "topic-modeling"


def _params(**data: object) -> dict[str, object]:
    return {"task": TOPICS, "train": {"family": "lda"}, "data": {"source": "x.csv", **data}}


def test_unlabelled_text_is_refused_for_a_classifier_and_taken_for_topics() -> None:
    assert parse_params(_params(label_column=None)).data.label_column is None
    with pytest.raises(ParamsError) as caught:
        parse_params({"data": {"source": "x.csv", "label_column": None}})
    message = str(caught.value)
    assert "task text-classification learns from them" in message
    assert "tasks that read unlabelled text: topic-modeling" in message


def test_a_time_column_belongs_to_topic_modeling_only() -> None:
    assert parse_params(_params(time_column="when")).data.time_column == "when"
    with pytest.raises(ParamsError, match=r"data\.time_column is read by task topic-modeling only"):
        parse_params({"data": {"source": "x.csv", "time_column": "when"}})


def test_topic_params_default_to_the_tasks_metrics() -> None:
    params = parse_params(_params())
    assert params.evaluate.main_metric == "npmi"
    assert params.sweep.metric == "val_npmi"
    with pytest.raises(ParamsError, match=r"evaluate\.main_metric: macro_f1 is no metric of task"):
        parse_params(_params() | {"evaluate": {"main_metric": "macro_f1"}})


def test_unlabelled_rows_and_their_times_are_read(tmp_path: Path) -> None:
    source = tmp_path / "notes.csv"
    source.write_text("body,when\nfirst note,2024-01-05\nsecond note,2024-02-10T08:00:00Z\n")
    params = DataParams(
        source=str(source), text_column="body", label_column=None, time_column="when"
    )
    frame, fmt = load_source(source, params)
    assert fmt == "csv"
    assert frame["text"].tolist() == ["first note", "second note"]
    assert frame["label"].isna().all()
    assert [t.isoformat() for t in frame["time"]] == [
        "2024-01-05T00:00:00+00:00", "2024-02-10T08:00:00+00:00"
    ]  # fmt: skip


def test_a_time_that_is_no_time_names_the_row_and_the_fix(tmp_path: Path) -> None:
    source = tmp_path / "notes.csv"
    source.write_text("text,when\nfirst,2024-01-05\nsecond,last tuesday\n")
    params = DataParams(source=str(source), label_column=None, time_column="when")
    with pytest.raises(DataSourceError) as caught:
        load_source(source, params)
    assert "row 1: data.time_column 'when' holds 'last tuesday'" in str(caught.value)


def test_a_missing_label_column_suggests_unlabelled_text(tmp_path: Path) -> None:
    source = tmp_path / "notes.csv"
    source.write_text("text\nfirst\n")
    with pytest.raises(DataSourceError, match=r"data.label_column: null"):
        load_source(source, DataParams(source=str(source)))


def test_the_topic_suite_keeps_text_checks_and_drops_label_checks() -> None:
    ids = {check.id for check in suite_role(TOPICS).build_checks(ValidateParams())}
    text_ids = {
        check.id for check in suite_role("text-classification").build_checks(ValidateParams())
    }
    assert {"text_not_blank", "duplicates", "encoding_damage", "leak_exact"} <= ids
    assert ids == text_ids - {"label_column", "label_not_null", "label_in_set", "label_variants",
                              "class_min_count", "class_imbalance", "label_drift"}  # fmt: skip


def test_coherence_documents_join_a_topics_collocations_where_their_words_meet() -> None:
    docs = scoring.coherence_documents(
        ["new york city is new", "york new", "machine learning in new york"],
        [["new_york", "city"], ["machine_learning_in", "new"]],
    )
    assert docs == [
        ["new_york", "city", "is", "new"],
        ["york", "new"],
        ["machine_learning_in", "new_york"],  # the longest collocation first
    ]


class _Model(SimpleNamespace):
    def topic_words(self) -> list[list[tuple[str, float]]]:
        return [[("refund", 0.5), ("invoice", 0.3)], [("parcel", 0.6), ("courier", 0.2)]]

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        return np.array([[0.8, 0.2] if "refund" in t else [0.3, 0.7] for t in texts])


class _Cleaner:
    def transform(self, texts: list[str]) -> list[str]:
        return [t.lower() for t in texts]


def test_the_served_answer_names_the_largest_topic_its_share_and_words() -> None:
    model = _Model(labels=["0", "1"], reference_shares={"0": 0.5, "1": 0.5})
    frame = served.predict_frame(model, _Cleaner(), ["Refund please", "Where is my parcel"])
    assert frame["topic"].tolist() == ["0", "1"]
    assert frame["probability"].tolist() == [0.8, 0.7]
    assert frame["words"].tolist() == ["refund, invoice", "parcel, courier"]
    assert list(frame.columns) == list(served.output_schema(["0", "1"]))
    answers, shares = served.read_answer(frame, ["0", "1"])
    assert json.loads(answers[1]) == {"topic": "1", "words": ["parcel", "courier"]}
    assert shares.tolist() == [[0.8, 0.2], [0.3, 0.7]]
    # evaluate records the same form: the gate's serving check compares them as they are
    assert answers[0] == scoring.answer_form("0", ["refund", "invoice"])
    assert served.answer_counts(frame) == ("rows per largest topic", {"0": 1, "1": 1})
    assert served.json_rows(["a", "b"], frame)[0]["shares"] == {"0": 0.8, "1": 0.2}


def test_an_empty_request_gets_an_empty_answer() -> None:
    model = _Model(labels=["0", "1"])
    frame = served.predict_frame(model, _Cleaner(), [])
    assert frame.empty and list(frame.columns) == list(served.output_schema(["0", "1"]))


def test_topic_share_drift_is_the_total_variation_distance_from_training() -> None:
    model = _Model(labels=["0", "1", "2"], reference_shares={"0": 0.5, "1": 0.3, "2": 0.2})
    frame = pd.DataFrame({"share_0": [0.2, 0.4], "share_1": [0.3, 0.5], "share_2": [0.5, 0.1]})
    drift = served.answer_drift(frame, model)
    assert drift is not None
    # current means 0.3, 0.4, 0.3: |-0.2| + |0.1| + |0.1| = 0.4, halved
    assert drift["tvd"] == pytest.approx(0.2)
    assert drift["current"] == {"0": 0.3, "1": 0.4, "2": 0.3}
    assert list(drift["largest_moves"]) == ["0", "1", "2"]
    assert drift["largest_moves"]["0"] == pytest.approx(-0.2)
    assert served.answer_drift(frame, _Model(labels=["0"])) is None  # nothing recorded


def test_the_gate_has_no_paired_test_for_coherence() -> None:
    assert scoring.paired_metric("npmi", ["0", "1"]) is None


def test_topics_sharing_words_sit_closer_on_the_map() -> None:
    coords = topic_positions([
        [("refund", 0.6), ("invoice", 0.4)],
        [("refund", 0.5), ("invoice", 0.3), ("charge", 0.2)],
        [("parcel", 0.7), ("courier", 0.3)],
    ])  # fmt: skip
    assert coords.shape == (3, 2)
    near = np.linalg.norm(coords[0] - coords[1])
    assert near < np.linalg.norm(coords[0] - coords[2])
    assert near < np.linalg.norm(coords[1] - coords[2])


def test_shares_over_time_average_each_period() -> None:
    times = pd.Series(pd.to_datetime(["2024-01-03", "2024-01-20", "2024-03-20", None], utc=True))
    shares = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0], [0.9, 0.1]])
    table = compute_shares_over_time(times, shares, ["0", "1"])
    wide = table.pivot(index="period", columns="topic", values="share")
    assert wide.index.tolist() == ["2024-01", "2024-03"]  # months: 77 days is over two months
    assert wide.loc["2024-01"].tolist() == [0.75, 0.25]
    assert wide.loc["2024-03"].tolist() == [0.0, 1.0]
    assert table.groupby("period")["documents"].first().tolist() == [2, 1]  # no time: left out
