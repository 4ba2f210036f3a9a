"""The `rules` family through the real stages and registry (SQLite): as the model, as the gate's
baseline (train.baseline), and as hybrid serving over a learned model (serve.rules). The
rules file is named relatively, as params.yaml names it, from a working directory that is not
the project.

    .venv/bin/python -m pytest tests/integration/test_rules_pipeline.py -q
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import (
    fast_params,
    make_project,
    mlflow_client,
    project_environment,
    run_cli_pipeline,
    use_mlflow_store,
)

pytestmark = pytest.mark.slow
MODEL = "rules-test-classifier"
LABELS = ["account", "billing", "shipping", "technical"]
# What someone who read a few tickets would write in a minute (the sample's four teams).
RULES = """\
default: technical
rules:
  - {name: money, label: billing, priority: 5, keywords: [refund, charged, invoice, payment]}
  - {name: delivery, label: shipping, priority: 3, keywords: [package, parcel, delivery, tracking]}
  - {name: login, label: account, priority: 3, keywords: [password, login, admin, teammate]}
  - {name: order_number, label: shipping, regex: '#\\d{5}'}
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    root = make_project(
        tmp_path_factory.mktemp("rules") / "project", fast_params(family="tfidf_logreg")
    )
    (root / "configs" / "rules").mkdir(parents=True)
    (root / "configs" / "rules" / "tickets.yaml").write_text(RULES)
    rules = "train.rules.patterns=configs/rules/tickets.yaml"
    with project_environment(root, MODEL):
        alone = run_cli_pipeline(root, ["train.family=rules", rules])
        manifest = (root / "models" / "model" / "nlpflow.json").read_text()
        metrics = json.loads((root / "reports" / "metrics.json").read_text())
        hybrid = run_cli_pipeline(
            root, ["train.baseline=rules", rules, "serve.rules=configs/rules/tickets.yaml"]
        )
        yield root, alone, json.loads(manifest), metrics, hybrid


def _test_texts(root: Path) -> tuple[list[str], list[str]]:
    test = pd.read_parquet(root / "data" / "processed" / "test.parquet")
    return test["text"].astype(str).tolist(), test["label"].astype(str).tolist()


def _checks(report: dict) -> dict[str, dict]:
    return {check["name"]: check for check in report["register"]["checks"]}


def test_rules_as_the_model_are_evaluated_gated_and_served_like_any(project) -> None:
    from nlpflow.evaluation.metrics import compute_metrics
    from nlpflow.training.families.rules_text import TextRules

    root, alone, manifest, metrics, _ = project
    assert alone["train"]["family"] == "rules"
    assert (manifest["family"], manifest["task"], manifest["rules"]) == (
        "rules", "text-classification", "rules.yaml"
    )  # fmt: skip
    # metrics.json is what the rules file gives on the test split, computed here apart
    texts, gold = _test_texts(root)
    rules = TextRules.from_file(root / "configs" / "rules" / "tickets.yaml", labels=LABELS)
    predicted = [LABELS[i] for i in rules.predict_proba(texts).argmax(axis=1)]
    assert metrics["accuracy"] == pytest.approx(
        compute_metrics(gold, predicted, LABELS)["accuracy"]
    )
    checks = _checks(alone)
    assert checks["serving"]["passed"] and checks["serving"]["applicable"]
    assert checks["baseline"]["applicable"]  # rules are held to tfidf_logreg
    assert "vs tfidf_logreg baseline" in checks["baseline"]["reason"]


def test_rules_as_the_baseline_and_as_hybrid_serving(
    project, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow.pyfunc

    from nlpflow.evaluation.metrics import compute_metrics
    from nlpflow.training.families import load_manifest, load_model
    from nlpflow.training.families.rules_text import RulesOverride, TextRules

    root, _, _, _, hybrid = project
    assert hybrid["train"]["family"] == "tfidf_logreg"
    assert hybrid["baseline"]["family"] == "rules"
    baseline = root / "models" / "baseline"
    assert load_manifest(baseline)["family"] == "rules"
    assert (baseline / "rules.yaml").read_text() == RULES
    assert (
        json.loads((root / "reports" / "metrics.json").read_text())["baseline"]["family"] == "rules"
    )
    checks = _checks(hybrid)
    assert "vs rules baseline" in checks["baseline"]["reason"]
    # the registered version answers as the hybrid, and evaluate's predictions with the rules
    # laid over them are what the gate's serving check expected of it
    assert checks["serving"]["applicable"] and checks["serving"]["passed"], checks["serving"]
    texts, gold = _test_texts(root)
    rules = TextRules.from_file(root / "configs" / "rules" / "tickets.yaml", labels=LABELS)
    model = load_model(root / "models" / "model")
    macro_f1 = {}
    for name, answering in (("alone", model), ("hybrid", RulesOverride(model, rules))):
        predicted = [LABELS[i] for i in answering.predict_proba(texts).argmax(axis=1)]
        macro_f1[name] = compute_metrics(gold, predicted, LABELS)["macro_f1"]
    assert macro_f1["hybrid"] != pytest.approx(macro_f1["alone"])  # the rules change answers
    # evaluate measured the model alone; the gate judged the version as served: the hybrid
    assert hybrid["register"]["score"] == pytest.approx(macro_f1["alone"])
    version = hybrid["register"]["version"]
    gate = json.loads(
        mlflow_client(root).get_model_version(MODEL, str(version)).tags["gate.metrics"]
    )
    assert gate["challenger"] == pytest.approx(macro_f1["hybrid"])
    use_mlflow_store(monkeypatch, root)
    served = mlflow.pyfunc.load_model(f"models:/{MODEL}/{version}").predict(
        pd.DataFrame({"text": ["My app crashes, please REFUND me"]})
    )
    assert (served.loc[0, "label"], served.loc[0, "score"]) == ("billing", 1.0)
