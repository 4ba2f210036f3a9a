"""The text-classification rules file (nlpflow.training.families.rules_text): parsing, which rule
decides, the default, and the messages of a bad file; and the params that use the rules family.

    .venv/bin/python -m pytest tests/unit/test_rules_file.py -q
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nlpflow.config.naming import logged_params
from nlpflow.config.params import parse_params
from nlpflow.errors import ParamsError
from nlpflow.training.families.rules_text import (
    RuleEngine,
    RulesOverride,
    TextRules,
    keyword_regex,
    parse_rules,
    read_rules,
)

LABELS = ["billing", "other", "shipping"]
RULES = """\
default: other
rules:
  - name: refund
    label: billing
    priority: 5
    keywords: [refund, charged twice]
  - name: parcel
    label: shipping
    priority: 5
    keywords: parcel
  - name: order_number
    label: shipping
    priority: 9
    regex: '#\\d{4,}'
  - name: lost_card
    label: billing
    pattern: [{LOWER: lost}, {LOWER: my, OP: "?"}, {LOWER: card}]
"""


def _decided(text: str, rules: str = RULES) -> str | None:
    engine = RuleEngine(parse_rules(rules, fmt="yaml", origin="r.yaml", labels=LABELS))
    decided = engine.decide([text])[0]
    return None if decided is None else decided.name


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("I want a REFUND", "refund"),  # keywords ignore case
        ("where is my parcel", "parcel"),
        ("refunds are slow", None),  # whole words: "refunds" is not "refund"
        ("I was charged\ntwice", "refund"),  # a phrase's space matches any whitespace
        ("refund for my parcel", "refund"),  # equal priorities: the earlier rule
        ("parcel #12345 needs a refund", "order_number"),  # the higher priority, though later
        ("I lost my card", "lost_card"),  # a spaCy token pattern, priority 0
        ("lost card and a refund", "refund"),  # 5 beats 0
        ("hello there", None),  # nothing fires: the default decides
    ],
)
def test_the_firing_rule_of_highest_priority_decides(text: str, rule: str | None) -> None:
    assert _decided(text) == rule


def test_probabilities_are_one_hot_in_label_order_with_the_default_where_nothing_fires() -> None:
    model = TextRules(RULES, fmt="yaml", labels=LABELS, origin="r.yaml")
    texts = ["my parcel", "hello", "refund please", "order #99999"]
    np.testing.assert_array_equal(
        model.predict_proba(texts),
        [
            [0, 0, 1],
            [0, 1, 0],
            [1, 0, 0],
            [0, 0, 1],
        ],  # shipping, other (default), billing, shipping
    )
    assert model.fired(texts) == ["parcel", None, "refund", "order_number"]
    assert model.predict_proba([]).shape == (0, 3)


def test_keywords_are_whole_words_at_their_word_character_edges_only() -> None:
    found = keyword_regex(["£100", "txt", "18+"])
    assert found.search("win £100 now") and not found.search("win £1000 now")
    assert found.search("18+ only") and found.search("(18+)")  # no word edge after "+"
    assert found.search("TXT me") and not found.search("texting")


def test_jsonl_rules_read_as_yaml_ones(tmp_path: Path) -> None:
    file = tmp_path / "rules.jsonl"
    file.write_text(
        '{"label": "billing", "keywords": ["refund"], "priority": 1}\n\n'
        '{"default": "other"}\n'
        '{"name": "num", "label": "shipping", "regex": "#\\\\d+", "priority": 2}\n'
    )
    rules = read_rules(file, labels=LABELS)
    assert rules.default == "other"
    assert [(r.name, r.label, r.priority, r.kind, r.line) for r in rules.rules] == [
        ("rule1", "billing", 1, "keywords", 1),  # unnamed: named by position
        ("num", "shipping", 2, "regex", 4),
    ]
    assert RuleEngine(rules).decide(["refund #12"])[0].name == "num"  # type: ignore[union-attr]


def _error(tmp_path: Path, text: str, name: str = "rules.yaml") -> str:
    file = tmp_path / name
    file.write_text(text)
    with pytest.raises(ParamsError) as caught:
        read_rules(file, labels=LABELS)
    return str(caught.value)


def test_a_bad_regex_names_the_file_the_line_and_the_rule(tmp_path: Path) -> None:
    message = _error(tmp_path, RULES.replace("'#\\d{4,}'", "'#(\\d{4,}'"))
    assert (
        f"{tmp_path / 'rules.yaml'}:11: rule 'order_number': regex '#(\\d{{4,}}' does not compile"
        in message
    )
    assert "does not compile (missing ), unterminated subpattern at position 1)" in message


def test_an_unknown_label_names_the_labels(tmp_path: Path) -> None:
    message = _error(
        tmp_path,
        RULES.replace("label: shipping\n    priority: 5", "label: Shipping\n    priority: 5"),
    )
    assert (
        ":7: rule 'parcel': label 'Shipping' is not one of the labels (billing, other, " in message
    )
    assert "shipping); use one of them (labels are case-sensitive" in message
    message = _error(tmp_path, RULES.replace("default: other", "default: misc"))
    assert (
        ":1: default: label 'misc' is not one of the labels (billing, other, shipping)" in message
    )


def test_a_missing_file_names_the_path_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ParamsError) as caught:
        read_rules(tmp_path / "nope.yaml", labels=LABELS)
    assert f"rules file {tmp_path / 'nope.yaml'} does not exist (paths are relative to the " in str(
        caught.value
    )
    assert "write it (docs/training.md, The rules family)" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rules: []\n", "no default label (for texts no rule fires on); add a top-level"),
        ("default: other\nrules: []\n", "holds no rule"),
        ("default: other\nrule: []\n", "unknown key(s) rule; the keys are default and rules"),
        (
            "default: other\nrules:\n  - label: billing\n    keywords: [a]\n    regex: b\n",
            ":3: rule 'rule1': give exactly one of keywords, regex, pattern (it has keywords, regex)",
        ),
        (
            "default: other\nrules:\n  - label: billing\n    priority: high\n    regex: b\n",
            "priority 'high' is not an integer",
        ),
        (
            "default: other\nrules:\n  - {name: a, label: billing, regex: b}\n"
            "  - {name: a, label: other, regex: c}\n",
            ":4: rule name 'a' is also the name of the rule at line 3",
        ),
        (
            "default: other\nrules:\n  - label: billing\n    pattern: [{LOWR: a}]\n",
            ":3: rule 'rule1': bad token pattern",
        ),
        ("default: other\nrules: [\n", "not valid YAML"),
    ],
)
def test_a_bad_file_says_what_is_wrong(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in _error(tmp_path, text)


def test_a_file_of_another_kind_is_refused(tmp_path: Path) -> None:
    assert "a rules file is YAML (.yaml, .yml) or JSONL (.jsonl)" in _error(
        tmp_path, RULES, "r.txt"
    )


def test_hybrid_overrides_the_model_only_where_a_rule_fires() -> None:
    class Constant:  # a model that always says shipping, unsure
        family, labels = "tfidf_logreg", LABELS

        def predict_proba(self, texts: list[str]) -> np.ndarray:
            return np.tile([0.2, 0.3, 0.5], (len(texts), 1))

    hybrid = RulesOverride(Constant(), TextRules(RULES, fmt="yaml", labels=LABELS, origin="r"))
    proba = hybrid.predict_proba(["a refund", "hello"])
    # the rule's one-hot where it fires; the model's own row where none does (not the default)
    np.testing.assert_array_equal(proba, [[1.0, 0.0, 0.0], [0.2, 0.3, 0.5]])
    assert (hybrid.family, hybrid.labels, hybrid.fired(["a refund", "hello"])) == (
        "tfidf_logreg", LABELS, ["refund", None]
    )  # fmt: skip


def test_params_refuse_text_rules_without_a_file_or_with_a_gazetteer() -> None:
    with pytest.raises(ParamsError, match=r"train\.rules\.patterns: train\.family is rules, which"):
        parse_params({"train": {"family": "rules"}})
    with pytest.raises(ParamsError, match=r"train\.rules\.patterns: train\.baseline is rules"):
        parse_params({"train": {"baseline": "rules"}})
    with pytest.raises(ParamsError, match="a gazetteer of train entities is for token-class"):
        parse_params(
            {"train": {"family": "rules", "rules": {"patterns": "r.yaml", "from_train": True}}}
        )
    params = parse_params({"train": {"family": "rules", "rules": {"patterns": "r.yaml"}}})
    assert (params.train.family, params.baseline_family) == ("rules", "tfidf_logreg")


def test_the_baseline_is_a_family_of_the_task_that_may_be_one() -> None:
    params = parse_params({"train": {"baseline": "rules", "rules": {"patterns": "r.yaml"}}})
    assert params.baseline_family == "rules"
    logged = logged_params(params)  # the yardstick's choice and knobs, apart from the model's
    assert (logged["baseline.family"], logged["baseline.rules.patterns"]) == ("rules", "r.yaml")
    assert "train.baseline" not in logged and "train.rules.patterns" not in logged
    with pytest.raises(ParamsError) as caught:
        parse_params({"train": {"baseline": "transformer"}})
    assert (
        "train.baseline: transformer cannot be task text-classification's baseline; choose "
        "one of tfidf_logreg, rules, or null for the task's own (tfidf_logreg)"
    ) in str(caught.value)
    tagger = {"task": "token-classification", "data": {"format": "conll"}}
    assert parse_params(tagger | {"train": {"family": "rules"}}).baseline_family == "rules"
    with pytest.raises(ParamsError, match=r"serve\.rules: hybrid serving overrides a text class"):
        parse_params(tagger | {"train": {"family": "rules"}, "serve": {"rules": "r.yaml"}})
