"""Behavioural tests of named-entity models (nlpflow.evaluation.ner.behavioural), through a
tiny deterministic tagger: a case-sensitive (or not) table of words, so every verdict below can
be worked out by hand."""

from __future__ import annotations

import json
import shutil
import sys
import types
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from nlpflow.config.params import FAMILIES, EvaluateParams
from nlpflow.config.sections.families import Family
from nlpflow.errors import ParamsError
from nlpflow.evaluation.evaluate import evaluate
from nlpflow.evaluation.ner.behavioural import behavioural_json, run_suite
from nlpflow.evaluation.ner.behavioural_suite import NerSuite, check_fit, load_suite
from nlpflow.evaluation.ner.forms import entities_of
from nlpflow.serving.nlp.token_classification import predict_frame
from nlpflow.training.families import load_manifest, save_manifest

FAMILY = "table_tagger_behavioural_test"
REPO = Path(__file__).resolve().parents[2]
TABLE = {"Alice": "B-person", "Sarah": "B-person", "Maria": "B-person", "Berlin": "B-city",
         "Paris": "B-city", "New": "B-city", "York": "I-city"}  # fmt: skip


class TableTagger:
    """Tags a word by the table (other words O), matching case unless ignore_case."""

    family = FAMILY

    def __init__(self, table: dict[str, str], ignore_case: bool = False) -> None:
        self.labels = ["O", "B-city", "I-city", "B-person"]
        self.table, self.ignore_case = table, ignore_case
        self.folded = {k.lower(): v for k, v in table.items()}

    def _tag(self, word: str) -> str:
        return self.folded.get(word.lower(), "O") if self.ignore_case else self.table.get(word, "O")

    def predict_tags(self, sentences: Any) -> tuple[list[list[str]], list[list[float]]]:
        tags = [[self._tag(w) for w in s] for s in sentences]
        return tags, [[0.9 if t != "O" else 0.8 for t in s] for s in tags]

    def save(self, path: Path) -> None:
        save_manifest(path, family=FAMILY, labels=self.labels,
                      extra={"table": self.table, "ignore_case": self.ignore_case})  # fmt: skip

    @classmethod
    def load(cls, path: Path) -> TableTagger:
        manifest = load_manifest(path)
        return cls(manifest["table"], manifest["ignore_case"])


def _run(yaml_text: str, tmp_path: Path, model: TableTagger, **kwargs: Any) -> dict[str, Any]:
    path = tmp_path / "suite.yaml"
    path.write_text(yaml_text, encoding="utf-8")
    suite = load_suite(path)
    report = run_suite(suite, lambda texts: entities_of(model, texts), seed=13,
                       texts=kwargs.get("texts", []), gold=kwargs.get("gold", []))  # fmt: skip
    return {t.name: t for t in report.tests} | {"": report}


def test_mft_passes_on_the_exact_entities_and_fails_on_a_missing_or_extra_one(
    tmp_path: Path,
) -> None:
    results = _run("""
tests:
  - name: exact
    type: mft
    examples:
      - text: "Ship it to Alice in Berlin"
        entities: [{text: Alice, label: person}, {text: Berlin, label: city}]
      - text: "Bob lives in New York"   # Bob missed
        entities: [{text: Bob, label: person}, {text: New York, label: city}]
      - text: "Sarah says hi"           # Sarah extra
        entities: []
      - text: "Paris or Berlin"
        entities: [{text: Paris, label: person}, {text: Berlin, label: city}]
  - name: extras_allowed
    type: mft
    allow_extra: true
    examples:
      - text: "Sarah and Alice"
        entities: [{text: Alice, label: person}]
""", tmp_path, TableTagger(TABLE))  # fmt: skip
    exact = results["exact"]
    assert (exact.cases, exact.passed, exact.pass_rate) == (4, 1, 0.25)
    missed, extra, mistyped = exact.failures
    assert missed["missing"] == [["Bob", "person"]] and missed["extra"] == []
    assert extra["extra"] == [["Sarah", "person"]] and extra["expected"] == []
    assert mistyped["missing"] == [["Paris", "person"]] and mistyped["extra"] == [["Paris", "city"]]
    assert results["extras_allowed"].pass_rate == 1.0
    assert results[""].pass_rate == 2 / 5 and results[""].cases == 5


def test_swap_keeps_the_type_at_the_new_span_or_fails(tmp_path: Path) -> None:
    suite = """
tests:
  - name: known_name
    type: invariance
    perturbation: swap
    swap: {person: [Maria]}
    texts: ["Alice flew to Berlin", "Sarah and alice", "nobody here"]
  - name: unknown_name
    type: invariance
    perturbation: swap
    swap: {person: [Zed]}
    examples:
      - text: "Alice flew to Berlin"
        entities: [{text: Alice, label: person}, {text: Berlin, label: city}]
  - name: cut_through
    type: invariance
    perturbation: swap
    swap: {person: [Zed Quill]}
    examples:   # the model finds "Alice" alone: no place to expect it in "Zed Quill"
      - text: "Alice Smith flew to Berlin"
        entities: [{text: Alice Smith, label: person}]
"""
    results = _run(suite, tmp_path, TableTagger(TABLE))
    # texts: the swapped entities are the predicted ones ("alice" is not one); "nobody here"
    # has none to swap: skipped
    known = results["known_name"]
    assert (known.cases, known.passed, known.skipped) == (2, 2, 1)
    unknown = results["unknown_name"]
    assert (unknown.cases, unknown.pass_rate) == (1, 0.0)
    assert unknown.failures == [{
        "original": "Alice flew to Berlin", "perturbed": "Zed flew to Berlin",
        "predicted_original": [["Alice", "person"], ["Berlin", "city"]],
        "predicted_perturbed": [["Berlin", "city"]], "lost": [["Zed", "person"]], "added": [],
    }]  # fmt: skip
    cut = results["cut_through"]
    assert (cut.cases, cut.skipped, cut.pass_rate) == (0, 1, None)


def test_casing_and_typos_keep_the_entities_or_fail(tmp_path: Path) -> None:
    suite = """
tests:
  - {name: lower, type: invariance, perturbation: casing, casing: lower,
     texts: ["Alice flew to Berlin", "Sarah met a friend"]}
  - {name: upper_context, type: invariance, perturbation: casing, casing: upper,
     within: context, texts: ["Alice flew to Berlin"]}
  - {name: typos_entities, type: invariance, perturbation: typos, within: entities,
     texts: ["Alice flew to Berlin"]}
  - {name: typos_context, type: invariance, perturbation: typos, within: context,
     texts: ["Alice flew to Berlin", "Sarah met Alice"]}
"""
    strict = _run(suite, tmp_path, TableTagger(TABLE))
    folded = _run(suite, tmp_path, TableTagger(TABLE, ignore_case=True))
    assert (strict["lower"].cases, strict["lower"].pass_rate) == (2, 0.0)
    assert strict["lower"].failures[0]["perturbed"] == "alice flew to berlin"
    assert strict["lower"].failures[0]["lost"] == [["alice", "person"], ["berlin", "city"]]
    assert folded["lower"].pass_rate == 1.0  # a case-blind table finds them in lower case
    assert strict["upper_context"].pass_rate == 1.0  # "Alice FLEW TO Berlin"
    assert strict["upper_context"].cases == 1
    # one letter swap inside Alice or Berlin loses it; "flew" is the only context word long
    # enough for a typo, "Sarah met Alice" has none: skipped
    assert (strict["typos_entities"].cases, strict["typos_entities"].pass_rate) == (1, 0.0)
    context = strict["typos_context"]
    assert (context.cases, context.passed, context.skipped) == (1, 1, 1)


def test_from_test_draws_sentences_with_gold_entities_until_n_cases(tmp_path: Path) -> None:
    texts = ["Alice flew to Berlin", "Sarah met a friend", "nothing here", "Paris is nice",
             "Bob is here"]  # fmt: skip
    gold = [
        [{"start": 0, "end": 5, "label": "person"}, {"start": 14, "end": 20, "label": "city"}],
        [{"start": 0, "end": 5, "label": "person"}], [],
        [{"start": 0, "end": 5, "label": "city"}], [{"start": 0, "end": 3, "label": "person"}],
    ]  # fmt: skip
    results = _run("""
tests:
  - {name: people, type: invariance, perturbation: swap, swap: {person: [Maria]}, from_test: 5}
  - {name: two, type: invariance, perturbation: casing, from_test: 2}
  - {name: all, type: invariance, perturbation: casing, from_test: 10}
""", tmp_path, TableTagger(TABLE), texts=texts, gold=gold)  # fmt: skip
    # rows 0, 1 and 4 hold a person; the model misses Bob (row 4): nothing to keep, skipped
    people = results["people"]
    assert (people.cases, people.passed, people.skipped) == (2, 2, 1)
    # rows 0, 1, 3 and 4 hold an entity, drawn as 1, 4, 0, 3 (seed 13): row 4 is skipped,
    # so a second batch draws row 0
    two = results["two"]
    assert (two.cases, two.skipped, two.pass_rate) == (2, 1, 0.0)
    assert [f["original"] for f in two.failures] == ["Sarah met a friend", "Alice flew to Berlin"]
    assert (results["all"].cases, results["all"].skipped) == (3, 1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tests:\n  - name: a\n    type: inv\n    texts: [x]\n",
         r"suite.yaml:2: tests\[0\] \(a\): unknown test type 'inv': use mft or invariance"),
        ("tests:\n  - name: a\n    type: mft\n",
         r"suite.yaml:2: tests\[0\] \(a\)\.examples: missing: add this key"),
        ("tests:\n  - name: a\n    type: mft\n    examples:\n      - text: Hi Bob\n"
         "        entities: [{text: Bobby, label: person}]\n",
         r"suite.yaml:5: tests\[0\] \(a\)\.examples\[0\]: entity 'Bobby' is not in the text"),
        ("tests:\n  - name: a\n    type: invariance\n    perturbation: swap\n    texts: [x]\n",
         r"suite.yaml:2: .*perturbation swap needs `swap: \{type: \[names"),
        ("tests:\n  - name: a\n    type: mft\n    exampels: []\n",
         r"suite.yaml:4: tests\[0\] \(a\)\.exampels: unknown key"),
        ("tests:\n  - name: a\n    type: mft\n    examples:\n      - {text: Hi, label: pos}\n",
         r"examples\[0\]\.label: unknown key .*configs/behavioural/ner_sample.yaml"),
    ],
)  # fmt: skip
def test_a_bad_suite_is_refused_at_its_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ParamsError, match=message):
        load_suite(path)


def test_types_the_model_lacks_and_classification_files(tmp_path: Path) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text("tests:\n  - name: ok\n    type: mft\n    examples: [{text: Hi}]\n"
                    "  - name: orgs\n    type: invariance\n    perturbation: swap\n"
                    "    swap: {org: [Acme]}\n    from_test: 3\n")  # fmt: skip
    model = TableTagger(TABLE)
    with pytest.raises(ParamsError, match=r"suite.yaml:5: test 'orgs' names entity type\(s\) "
                       r"org, which the model does not predict; its types are city, person"):  # fmt: skip
        behavioural_json(path, model, texts=[], gold=[], seed=13)
    with pytest.raises(ParamsError, match="does not exist"):
        behavioural_json(tmp_path / "absent.yaml", model, texts=[], gold=[], seed=13)
    # params' default file, classification's sample as shipped: none of its tests run, said so
    sample = shutil.copy(REPO / "behavioural.yaml", tmp_path / "behavioural.yaml")
    shown = behavioural_json(Path(sample), model, texts=[], gold=[], seed=13)
    assert shown["tests"] == [] and shown["pass_rate"] is None
    assert "text-classification sample" in shown["warning"]
    # validate's check before training: the same refusal, the sample's tests all left out
    with pytest.raises(ParamsError, match="test 'orgs' names entity type"):
        check_fit(path, ["city", "person"])
    assert not check_fit(path, ["city", "org", "person"]).left_out
    fit = check_fit(Path(sample), ["city", "person"])
    assert fit.sample and set(fit.left_out) == {t["name"] for t in _yaml(sample)["tests"]}
    assert "sample project's behavioural file" in str(fit.warning())


def _yaml(path: str | Path) -> Any:
    import yaml

    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def test_shipped_suites_load_and_predictions_match_serving() -> None:
    for name in ("ner_sample", "wnut17"):
        assert isinstance(load_suite(REPO / "configs" / "behavioural" / f"{name}.yaml"), NerSuite)
    model, texts = TableTagger(TABLE), ["Sarah  flew to New York!", "   ", "York alone"]
    served = [json.loads(v) for v in predict_frame(model, None, texts)["entities"]]
    assert entities_of(model, texts) == served
    assert [(e["text"], e["label"]) for e in served[0]] == [
        ("Sarah", "person"),
        ("New York", "city"),
    ]


# --- evaluate writes behavioural.json ----------------------------------------------------------

SUITE = """
tests:
  - name: canonical
    type: mft
    examples:
      - text: "Ship it to Alice in Berlin"
        entities: [{text: Alice, label: person}, {text: Berlin, label: city}]
      - text: "Bob lives in Oslo"
        entities: [{text: Bob, label: person}, {text: Oslo, label: city}]
  - {name: swap_people, type: invariance, perturbation: swap, swap: {person: [Maria]},
     from_test: 5}
  - {name: lower_case, type: invariance, perturbation: casing, from_test: 5}
  - {name: typos_context, type: invariance, perturbation: typos, within: context, from_test: 5}
"""
# (raw text, gold tags over its whitespace words)
SENTENCES = [("Sarah met Bob in Paris", "B-person O B-person O B-city"),
             ("Alice flew to Berlin", "B-person O O B-city"), ("nothing here", "O O")]  # fmt: skip


def _split(rows: list[tuple[str, str]]) -> pd.DataFrame:
    out = []
    for line, (text, tags) in enumerate(rows):
        tokens = text.split()
        starts = [sum(len(t) + 1 for t in tokens[:i]) for i in range(len(tokens))]
        out.append({"text": text, "raw_text": text, "tokens": tokens, "starts": starts,
                    "tags": tags.split(), "source_line": line})  # fmt: skip
    return pd.DataFrame(out)


def test_evaluate_writes_behavioural_json_with_the_pass_rates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = types.ModuleType(f"nlpflow.training.families.{FAMILY}")
    module.TableTagger = TableTagger  # type: ignore[attr-defined]
    module.fit = None  # type: ignore[attr-defined]  # evaluate never trains
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(FAMILIES, FAMILY, Family(
        FAMILY, "test only", code=FAMILY, fit="fit", model="TableTagger",
        main_knob=("seed", "seed"), tasks=("token-classification",),
    ))  # fmt: skip
    src = tmp_path / "processed"
    src.mkdir()
    for split in ("train", "validation", "test"):
        _split(SENTENCES).to_parquet(src / f"{split}.parquet")
    TableTagger(TABLE).save(tmp_path / "model")
    (tmp_path / "suite.yaml").write_text(SUITE, encoding="utf-8")
    report = evaluate(
        model_dir=tmp_path / "model", src=src, metrics_path=tmp_path / "metrics.json",
        plots_dir=tmp_path / "plots", out_dir=tmp_path / "evaluation",
        params=EvaluateParams(bootstrap_samples=100), task="token-classification",
        behavioural=tmp_path / "suite.yaml",
    )  # fmt: skip
    saved = json.loads((tmp_path / "evaluation" / "behavioural.json").read_text())
    rates = {t["name"]: (t["cases"], t["pass_rate"]) for t in saved["tests"]}
    # canonical: Bob and Oslo unknown. swap: both Sarah and Bob become Maria, and the second
    # Maria is found where Bob was not (changed: fails); Alice -> Maria keeps it. lower case:
    # the table matches case. typos: "flew" -> "felw" keeps Alice and Berlin; sentence 0's
    # context words are too short for a typo (skipped)
    assert rates == {"canonical": (2, 0.5), "swap_people": (2, 0.5), "lower_case": (2, 0.0),
                     "typos_context": (1, 1.0)}  # fmt: skip
    assert saved["pass_rate"] == pytest.approx(3 / 7) and saved["cases"] == 7
    swap = next(t for t in saved["tests"] if t["name"] == "swap_people")
    assert swap["failures"][0]["perturbed"] == "Maria met Maria in Paris"
    assert swap["failures"][0]["added"] == [["Maria", "person"]]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["behavioural_pass_rate"] == pytest.approx(3 / 7)
    tracked = report.tracked_metrics()
    assert tracked["behavioural/pass_rate"] == pytest.approx(3 / 7)
    assert tracked["behavioural/swap_people"] == 0.5 and tracked["behavioural/lower_case"] == 0.0
