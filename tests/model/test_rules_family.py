"""The `rules` family for text-classification as a model: trained through the train stage's
function, saved with its rules, reloaded to the same answers, served by the MLflow pyfunc, and
hybrid serving (serve.rules) overriding a learned model where a rule fires.

    .venv/bin/python -m pytest tests/model/test_rules_family.py -q
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nlpflow.config.params import PreprocessParams, TrainParams
from nlpflow.training.families import load_manifest, load_model, predict_labels, update_manifest
from nlpflow.training.families.rules_ner import RulesTagger
from nlpflow.training.families.rules_text import TextRules
from nlpflow.training.train import fit, train

LABELS = ["billing", "shipping", "technical"]
# Comments and layout must survive: the model folder keeps the file as written.
RULES = """\
# a person's rules, comments kept
default: technical
rules:
  - {name: money, label: billing, priority: 5, keywords: [refund, charged twice, invoice]}
  - {name: order_number, label: shipping, priority: 3, regex: '#\\d{4,}'}
  - name: parcel
    label: shipping
    pattern: [{LOWER: {IN: [parcel, package]}}, {LOWER: {IN: [is, was]}, OP: "?"}, {LOWER: late}]
"""
TEXTS = [
    "please refund order #1234",  # money (5) over order_number (3)
    "where is order #99887",  # order_number
    "my parcel is late",  # parcel, a token pattern
    "the app crashes",  # nothing fires: technical, the default
    "INVOICE missing",  # keywords ignore case
]
EXPECTED = ["billing", "shipping", "shipping", "technical", "billing"]


def _splits(processed: Path) -> None:
    processed.mkdir(parents=True)
    for split in ("train", "validation"):
        frame = pd.DataFrame({"text": TEXTS, "label": EXPECTED})
        frame.to_parquet(processed / f"{split}.parquet")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The train stage's function in a project whose params name the rules file relatively
    (as params.yaml does), run from another working directory."""
    project = tmp_path_factory.mktemp("rules") / "project"
    (project / "configs").mkdir(parents=True)
    (project / "configs" / "tickets.yaml").write_text(RULES)
    _splits(project / "data" / "processed")
    params = TrainParams.model_validate(
        {"family": "rules", "rules": {"patterns": "configs/tickets.yaml"}}
    )
    report = train(
        src=project / "data" / "processed", dst=project / "models" / "model",
        history_path=project / "reports" / "history.csv", params=params,
        preprocess=PreprocessParams(), labels=LABELS, root=project,
    )  # fmt: skip
    assert (report.family, report.epochs) == ("rules", 1)
    assert report.history[0]["val_accuracy"] == 1.0  # the rules fit their own examples
    return project, project / "models" / "model"


def test_the_model_folder_keeps_the_rules_as_written_and_the_params_as_given(trained) -> None:
    _, folder = trained
    assert (folder / "rules.yaml").read_text() == RULES
    manifest = load_manifest(folder)
    assert (manifest["family"], manifest["task"], manifest["labels"]) == (
        "rules", "text-classification", LABELS
    )  # fmt: skip
    # relative, as in params.yaml: the folder hashes the same in any checkout
    assert manifest["train"]["rules"]["patterns"] == "configs/tickets.yaml"


def test_reloads_to_the_same_answers_even_without_the_source_file(trained, tmp_path: Path) -> None:
    project, folder = trained
    moved = tmp_path / "model"
    shutil.copytree(folder, moved)  # self-contained: the project's file is not read again
    reloaded = load_model(moved)
    assert isinstance(reloaded, TextRules)
    predicted, proba = predict_labels(reloaded, TEXTS)
    assert predicted == EXPECTED
    original = TextRules.from_file(project / "configs" / "tickets.yaml", labels=LABELS)
    np.testing.assert_array_equal(proba, original.predict_proba(TEXTS))
    assert reloaded.fired(TEXTS) == ["money", "order_number", "parcel", None, "money"]


def test_batched_equals_unbatched(trained) -> None:
    model = load_model(trained[1])
    together = model.predict_proba(TEXTS)
    one_by_one = np.vstack([model.predict_proba([text]) for text in TEXTS])
    np.testing.assert_array_equal(together, one_by_one)


def test_fit_reads_the_data_shape_and_refuses_labels_the_rules_do_not_know(tmp_path: Path) -> None:
    from nlpflow.errors import ParamsError

    file = tmp_path / "r.yaml"
    file.write_text(RULES)
    params = TrainParams.model_validate({"family": "rules", "rules": {"patterns": str(file)}})
    model = fit((TEXTS, EXPECTED), ([], []), labels=LABELS, params=params)
    assert isinstance(model, TextRules)
    with pytest.raises(ParamsError, match="label 'billing' is not one of the labels"):
        fit((TEXTS, EXPECTED), ([], []), labels=["shipping", "technical"], params=params)


def test_a_tagger_saved_before_rules_served_two_tasks_still_loads(tmp_path: Path) -> None:
    tagger = RulesTagger([{"label": "product", "pattern": "Dune"}], ["B-product", "I-product", "O"])
    tagger.save(tmp_path)
    manifest = json.loads((tmp_path / "nlpflow.json").read_text())
    assert manifest.pop("task") == "token-classification"
    (tmp_path / "nlpflow.json").write_text(json.dumps(manifest))  # as an older nlpflow wrote it
    loaded = load_model(tmp_path)
    assert isinstance(loaded, RulesTagger)
    assert loaded.predict_tags([["see", "Dune"]])[0] == [["O", "B-product"]]


def _pyfunc(folder: Path, dst: Path, *, rules: Path | None = None):  # type: ignore[no-untyped-def]
    import mlflow.pyfunc

    from nlpflow.serving.pyfunc import MODEL_ARTIFACT, RULES_ARTIFACT, TextClassifierModel

    artifacts = {MODEL_ARTIFACT: str(folder)} | ({RULES_ARTIFACT: str(rules)} if rules else {})
    mlflow.pyfunc.save_model(
        dst, python_model=TextClassifierModel(), pip_requirements=[], artifacts=artifacts
    )
    return mlflow.pyfunc.load_model(str(dst))


RAW = ["Please REFUND order #1234!!", "My parcel was late, see https://example.com/t/1", "hello"]


def test_pyfunc_serves_raw_text_as_the_model_predicts_it(trained, tmp_path: Path) -> None:
    from nlpflow.data.preprocess import TextPreprocessor
    from nlpflow.serving.pyfunc import predict_frame

    _, folder = trained
    served_dir = tmp_path / "model"
    shutil.copytree(folder, served_dir)
    preprocess = PreprocessParams(lowercase=True, remove_punctuation=True)
    update_manifest(served_dir, preprocess=preprocess.model_dump())
    served = _pyfunc(served_dir, tmp_path / "pyfunc").predict(pd.DataFrame({"text": RAW}))
    assert served["label"].tolist() == ["billing", "shipping", "technical"]
    assert list(served.columns) == ["label", "score", *(f"proba_{label}" for label in LABELS)]
    local = predict_frame(load_model(served_dir), TextPreprocessor(preprocess), RAW)
    pd.testing.assert_frame_equal(served.reset_index(drop=True), local)


def test_hybrid_serving_overrides_the_model_only_where_a_rule_fires(tmp_path: Path) -> None:
    # A tf-idf model that learned shipping for every text it saw: the rules must win on the
    # texts they fire on, and the model's own probabilities stay elsewhere.
    params = TrainParams(family="tfidf_logreg")
    texts = ["where is it", "still waiting", "not here yet", "any news", "refund it", "app bug"]
    model = fit((texts, ["shipping"] * 4 + ["billing", "technical"]), ([], []), labels=LABELS,
                params=params)  # fmt: skip
    model.save(tmp_path / "tfidf")
    update_manifest(tmp_path / "tfidf", preprocess=PreprocessParams().model_dump())
    rules = tmp_path / "r.yaml"
    rules.write_text(RULES)
    alone = _pyfunc(tmp_path / "tfidf", tmp_path / "alone").predict(pd.DataFrame({"text": RAW}))
    hybrid = _pyfunc(tmp_path / "tfidf", tmp_path / "hybrid", rules=rules)
    both = hybrid.predict(pd.DataFrame({"text": RAW}))
    assert both["label"].tolist()[:2] == ["billing", "shipping"]  # money, parcel fire
    assert both.loc[0, "proba_billing"] == 1.0 and both.loc[0, "score"] == 1.0
    # "hello": no rule fires, so not the rules' default (technical) but the model's answer
    pd.testing.assert_series_equal(both.iloc[2], alone.iloc[2])
    assert hybrid.unwrap_python_model().model.family == "tfidf_logreg"
