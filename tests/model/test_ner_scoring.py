"""token-classification's scoring (evaluate's reports, the gate's judge) and served output,
through a tiny deterministic tagger registered as a test-only family of a test-only NLP task.
Every figure below was counted by hand from the three test sentences (see SENTENCES)."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from nlpflow.config.nlp_tasks import NLP_TASKS, NlpTask
from nlpflow.config.params import FAMILIES, EvaluateParams
from nlpflow.config.sections.families import Family
from nlpflow.errors import ParamsError
from nlpflow.evaluation.evaluate import evaluate
from nlpflow.evaluation.nlp import Scoring, scoring
from nlpflow.serving.nlp import Output, output
from nlpflow.training.families import load_manifest, load_model, save_manifest

TASK = "token-classification-scoring-test"
FAMILY = "dict_tagger_test"
DUNE = "Going to see Dune 2 at the Alamo Drafthouse with Sarah"
# (raw text, gold tags); tokens are the whitespace words, as a CoNLL file gives them
SENTENCES = [
    (DUNE, "O O O B-work I-work O O B-location I-location O B-person"),
    ("Sarah met Bob in Paris", "B-person O B-person O B-location"),
    ("nothing here", "O O"),
]
# word -> (tag, probability); other words: O with 0.75. Dune 2 right; Alamo alone (boundary);
# Bob a location (type); Paris missed; "here" spurious; Sarah right twice.
TABLE = {"Dune": ["B-work", 0.9], "2": ["I-work", 0.7], "Alamo": ["B-location", 0.6],
         "Sarah": ["B-person", 0.95], "Bob": ["B-location", 0.5], "here": ["B-person", 0.4]}  # fmt: skip


class DictTagger:
    """Tags each word from a table: deterministic, so every score can be counted by hand."""

    family = FAMILY

    def __init__(self, table: dict[str, list[Any]]) -> None:
        self.table = table
        self.labels = ["O", "B-location", "I-location", "B-person", "B-work", "I-work"]

    def predict_tags(self, sentences: Any) -> tuple[list[list[str]], list[list[float]]]:
        picked = [[self.table.get(w, ["O", 0.75]) for w in s] for s in sentences]
        return [[t for t, _ in s] for s in picked], [[p for _, p in s] for s in picked]

    def save(self, path: Path) -> None:
        save_manifest(path, family=FAMILY, labels=self.labels, extra={"table": self.table})

    @classmethod
    def load(cls, path: Path) -> DictTagger:
        return cls(load_manifest(path)["table"])


def _fit(*args: Any, **kwargs: Any) -> DictTagger:
    raise NotImplementedError  # evaluate never trains


@pytest.fixture
def task(monkeypatch: pytest.MonkeyPatch) -> str:
    module = types.ModuleType(f"nlpflow.training.families.{FAMILY}")
    module.DictTagger = DictTagger  # type: ignore[attr-defined]
    module.fit = _fit  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(FAMILIES, FAMILY, Family(
        FAMILY, "test only", code=FAMILY, fit="fit", model="DictTagger",
        main_knob=("seed", "seed"), tasks=(TASK,),
    ))  # fmt: skip
    monkeypatch.setitem(NLP_TASKS, TASK, NlpTask(
        TASK, "test only", data="text_classification", suite="text_classification",
        scoring="token_classification", output="token_classification",
    ))  # fmt: skip
    return TASK


def _split(rows: list[tuple[str, str]]) -> pd.DataFrame:
    out = []
    for line, (text, tags) in enumerate(rows):
        tokens, starts, at = text.split(), [], 0
        for token in tokens:
            at = text.index(token, at)
            starts.append(at)
            at += len(token)
        out.append({"text": text, "raw_text": text, "tokens": tokens, "starts": starts,
                    "tags": tags.split(), "source_line": line})  # fmt: skip
    return pd.DataFrame(out)


@pytest.fixture
def project(tmp_path: Path, task: str) -> Path:
    src = tmp_path / "processed"
    src.mkdir()
    _split(SENTENCES).to_parquet(src / "test.parquet")
    train = [("Sarah lives in Paris", "B-person O O B-location")]
    _split(train).to_parquet(src / "train.parquet")
    _split(train).to_parquet(src / "validation.parquet")
    DictTagger(TABLE).save(tmp_path / "model")
    DictTagger({"Sarah": ["B-person", 1.0], "Paris": ["B-location", 1.0]}).save(tmp_path / "base")
    return tmp_path


PARAMS = EvaluateParams(
    length_buckets=[4, 8], min_slice_size=2, worst_errors=3, bootstrap_samples=200,
    slices={"sarah": {"keywords": ["Sarah"]}, "typo": {"keywords": ["zzz"]}},
)  # fmt: skip


def _evaluate(root: Path, params: EvaluateParams = PARAMS, **kwargs: Any) -> Any:
    return evaluate(
        model_dir=root / "model", src=root / "processed", metrics_path=root / "metrics.json",
        plots_dir=root / "plots", out_dir=root / "evaluation", params=params, task=TASK, **kwargs,
    )  # fmt: skip


def test_evaluate_scores_entities_as_counted_by_hand(project: Path) -> None:
    report = _evaluate(project, baseline_dir=project / "base")
    m = json.loads((project / "metrics.json").read_text())
    # tp 3 (Dune 2, Sarah, Sarah), fp 3 (Alamo, Bob/location, here), fn 3 (Alamo Drafthouse,
    # Bob/person, Paris)
    assert (m["entity_precision"], m["entity_recall"], m["entity_f1"]) == (0.5, 0.5, 0.5)
    assert m["per_type"]["work"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    assert m["per_type"]["location"]["f1"] == 0.0 and m["per_type"]["location"]["support"] == 2
    assert m["per_type"]["person"]["f1"] == pytest.approx(2 / 3)
    assert m["entity_macro_f1"] == pytest.approx(5 / 9)
    assert m["token_accuracy"] == pytest.approx(14 / 18)
    assert report.main_metric == "entity_f1"  # the field's default, macro_f1, is classification's
    assert m["ci"]["metric"] == "entity_f1" and m["ci"]["value"] == 0.5
    assert m["ci"]["low"] < 0.5 < m["ci"]["high"] and m["ci"]["samples"] == 200
    # baseline: Sarah twice and Paris: tp 3, fp 0, fn 3; 13 of 18 tokens right
    assert m["baseline"] == {"family": FAMILY, "entity_f1": pytest.approx(2 / 3),
                             "token_accuracy": pytest.approx(13 / 18)}  # fmt: skip
    assert m["behavioural_pass_rate"] is None
    assert report.labels == ["location", "person", "work", "(missed)", "(spurious)"]
    assert report.confusion == [[0, 0, 0, 2, 0], [1, 2, 0, 0, 0], [0, 0, 1, 0, 0],
                                [0, 0, 0, 0, 0], [1, 1, 0, 0, 0]]  # fmt: skip
    assert report.tracked_metrics()["slice/sarah/entity_f1"] == pytest.approx(6 / 11)


def test_slices_by_sentence_and_by_entity(project: Path) -> None:
    _evaluate(project)
    saved = json.loads((project / "evaluation" / "slices.json").read_text())
    assert saved["main_metric"] == "entity_f1" and saved["empty"] == ["typo"]
    s = saved["slices"]
    # whitespace tokens of the raw text: 11, 5 and 2
    assert {k: (v["rows"], v["entity_f1"], v["trusted"]) for k, v in s.items()
            if v["kind"] in ("length", "negation", "keywords")} == {
        "length_gt_8": (1, pytest.approx(2 / 3), False), "length_5_8": (1, 0.4, False),
        "length_le_4": (1, 0.0, False), "negation": (1, 0.0, False),
        "sarah": (2, pytest.approx(6 / 11), True),
    }  # fmt: skip
    # seen in train: (sarah, person), (paris, location)
    assert (s["seen"]["entities"], s["seen"]["predicted"], s["seen"]["entity_f1"]) == (3, 2, 0.8)
    assert s["unseen"]["entity_f1"] == pytest.approx(2 / 7) and s["unseen"]["rows"] == 3
    assert s["entity_len_1"]["entity_f1"] == pytest.approx(4 / 9)
    assert s["entity_len_2"]["entity_f1"] == pytest.approx(2 / 3)
    assert s["seen"]["trusted"] and "entity_len_3+" not in s


def test_macro_main_metric_is_the_mean_over_types(project: Path) -> None:
    params = PARAMS.model_copy(update={"main_metric": "entity_macro_f1"})
    report = _evaluate(project, params=params)
    assert report.ci["metric"] == "entity_macro_f1"
    assert report.ci["value"] == pytest.approx(5 / 9)
    # seen: person 1.0, location (Paris missed) 0.0; unseen: work 1, location 0, person 0
    assert report.slices["seen"]["entity_macro_f1"] == pytest.approx(0.5)
    assert report.slices["unseen"]["entity_macro_f1"] == pytest.approx(1 / 3)
    # sarah slice: work 1 (Dune 2), location 0, person 2/3 (tp 2, fp 0, fn 1 -> 0.8)
    assert report.slices["sarah"]["entity_macro_f1"] == pytest.approx((1 + 0 + 0.8) / 3)


def test_predictions_errors_plots_and_html(project: Path) -> None:
    _evaluate(project)
    out = project / "evaluation"
    frame = pd.read_parquet(out / "predictions.parquet")
    first = frame.iloc[0]
    assert first["label"] == '[[13,19,"work"],[27,43,"location"],[49,54,"person"]]'
    assert first["predicted"] == '[[13,19,"work"],[27,32,"location"],[49,54,"person"]]'
    assert first["tags"] == SENTENCES[0][1] and first["confidence"] == 0.6
    assert first["predicted_tags"].split()[7:9] == ["B-location", "O"]
    assert json.loads(first["entities_predicted"])[0] == {
        "start": 13, "end": 19, "label": "work", "text": "Dune 2", "score": pytest.approx(0.8)
    }  # fmt: skip
    assert json.loads(frame.iloc[2]["entities_gold"]) == []
    errors = pd.read_csv(out / "worst_errors.csv")
    # surest first: Paris missed (O at 0.75), Alamo (0.6), Bob (0.5); "here" (0.4) left out
    assert errors["kind"].tolist() == ["missed", "wrong_boundary", "wrong_type"]
    assert errors["confidence"].tolist() == [0.75, 0.6, 0.5]
    assert errors.iloc[1][["gold_text", "predicted_text"]].tolist() == ["Alamo Drafthouse", "Alamo"]
    assert (
        "| 0.750 | missed | Paris (location) |  | Sarah met Bob in Paris |"
        in (out / "worst_errors.md").read_text()
    )
    confusion = pd.read_csv(project / "plots" / "confusion.csv")
    assert len(confusion) == 8 and (confusion["actual"] == "(spurious)").sum() == 2
    for png in ("confusion_matrix.png", "per_type_f1.png"):
        assert (project / "plots" / png).read_bytes()[:4] == b"\x89PNG"
    html = (out / "entities.html").read_text()
    assert html.count("<mark") == 6 + 6  # gold 3 + 3 + 0, predicted 3 + 2 + 1
    assert "sentence 2: predicted" in html and "http" not in html
    assert json.loads((out / "behavioural.json").read_text())["pass_rate"] is None
    assert not (out / "baseline.json").exists()


def test_a_missing_behavioural_file_is_refused(project: Path) -> None:
    # the entity tests themselves: tests/model/test_ner_behavioural.py
    with pytest.raises(ParamsError, match=r"behavioural\.yaml does not exist"):
        _evaluate(project, behavioural=project / "behavioural.yaml")


def test_the_gate_judges_the_served_answer_as_evaluate_recorded_it(project: Path) -> None:
    _evaluate(project)
    frame = pd.read_parquet(project / "evaluation" / "predictions.parquet")
    scores, answer = scoring(TASK), output(TASK)
    assert isinstance(scores, Scoring) and isinstance(answer, Output)
    model = load_model(project / "model")
    texts = frame["raw_text"].tolist()
    served, proba = answer.read_answer(answer.predict_frame(model, None, texts), model.labels)
    recorded, recorded_proba = scores.recorded(frame, model.labels)
    assert served == recorded and proba.shape == (3, 1)
    assert proba[:, 0].tolist() == recorded_proba[:, 0].tolist() == [0.6, 0.5, 0.4]
    score, slices = scores.judge(frame["label"].tolist(), served, texts, labels=model.labels,
                                 params=PARAMS)  # fmt: skip
    saved = json.loads((project / "evaluation" / "slices.json").read_text())["slices"]
    assert score == 0.5 and slices == {k: v for k, v in saved.items() if k in slices}
    assert set(slices) == {"length_le_4", "length_5_8", "length_gt_8", "negation", "sarah"}
    metric = scores.paired_metric("entity_macro_f1", model.labels)
    assert metric(frame["label"], served) == pytest.approx(5 / 9)
    # resampled: rows 0, 0, 1 -> tp 5, fp 3, fn 4; rows 2, 2, 2 -> fp 3 only
    micro = scores.paired_metric("entity_f1", model.labels)
    picks = np.array([[0, 0, 1], [2, 2, 2], [0, 1, 2]])
    assert micro.resampled(frame["label"], served, picks).tolist() == pytest.approx(
        [10 / 17, 0.0, 0.5]
    )


def test_served_entities_point_into_the_raw_text(task: str) -> None:
    answer = output(task)
    raw = "Going to see  Dune 2 at the Alamo Drafthouse with Sarah!"  # two spaces, a "!"
    frame = answer.predict_frame(DictTagger(TABLE), None, [raw, "2 days", "   "])
    assert answer.output_schema(["O"]) == {"entities": "string"}
    entities = json.loads(frame["entities"][0])
    assert [(e["text"], e["label"]) for e in entities] == [
        ("Dune 2", "work"), ("Alamo", "location"), ("Sarah", "person")
    ]  # fmt: skip
    assert all(raw[e["start"] : e["end"]] == e["text"] for e in entities)
    assert (entities[0]["start"], entities[2]["end"]) == (14, 55)
    assert entities[0]["score"] == pytest.approx(0.8)
    # "2" alone is I-work continuing nothing: no entity, as seqeval's strict mode reads it
    assert frame["entities"].tolist()[1:] == ["[]", "[]"]
    assert answer.is_output_column("entities") and not answer.is_output_column("label")
