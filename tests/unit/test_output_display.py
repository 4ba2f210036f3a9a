"""`nlpflow predict` shows an answer as its task's Output shapes it: a classifier's label and
class probabilities under the class names, an entity tagger's entities one row each."""

from __future__ import annotations

import json

import pandas as pd

from nlpflow.serving.nlp import text_classification as classes
from nlpflow.serving.nlp import token_classification as entities


def test_a_classifiers_answer_shows_each_class_by_name() -> None:
    frame = pd.DataFrame({"label": ["spam"], "score": [0.9], "proba_ham": [0.1],
                          "proba_spam": [0.9]})  # fmt: skip
    shown = classes.display(["win a prize"], frame)
    assert shown.to_dict("records") == [
        {"text": "win a prize", "label": "spam", "score": 0.9, "ham": 0.1, "spam": 0.9}
    ]
    assert classes.json_rows(["win a prize"], frame)[0]["proba_spam"] == 0.9


def test_an_entity_taggers_answer_shows_one_row_per_entity() -> None:
    text = "Going to see Dune 2 with Sarah"
    found = [{"start": 13, "end": 19, "label": "work", "text": "Dune 2", "score": 0.8},
             {"start": 25, "end": 30, "label": "person", "text": "Sarah", "score": 0.95}]  # fmt: skip
    frame = pd.DataFrame({"entities": [json.dumps(found), "[]"]})
    shown = entities.display([text, "nothing here"], frame)
    assert shown[["entity", "label", "start", "end"]].values.tolist() == [
        ["Dune 2", "work", 13, 19],
        ["Sarah", "person", 25, 30],
        ["(no entity)", "", "", ""],
    ]
    assert [text[e["start"] : e["end"]] for e in found] == ["Dune 2", "Sarah"]
    rows = entities.json_rows([text, "nothing here"], frame)
    assert rows == [{"text": text, "entities": found}, {"text": "nothing here", "entities": []}]
