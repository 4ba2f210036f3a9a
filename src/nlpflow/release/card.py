"""The model card of a registered version: Markdown, written by the register stage.

It states what the numbers are and where they came from: the data snapshot and its hash, the
params, the test metrics with their confidence interval, the slices, the behavioural results,
the gate's decision, the intended use (params `register.card`) and the known limits, to which
the measured ones (weak slices, failing behavioural tests, a small test set) are added.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nlpflow.config.params import Params
from nlpflow.release.gate import Decision

SMALL_TEST_SET = 500  # rows (entities) under which one mistake moves a score by over 0.2 points
CLASS_METRICS = ("accuracy", "macro_f1", "micro_f1", "weighted_f1", "mcc", "roc_auc", "ece")
ENTITY_METRICS = ("entity_f1", "entity_precision", "entity_recall", "entity_macro_f1",
                  "partial_f1", "exact_f1", "type_f1", "token_accuracy")  # fmt: skip
TOPIC_METRICS = ("npmi", "c_v", "diversity", "nmi", "ari", "purity", "largest_share")


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _read(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text())) if path.exists() else {}


def _data_section(data_manifest: Path) -> str:
    data = _read(data_manifest)
    if not data:
        return f"No data manifest at {data_manifest}."
    rows = [[split, n] for split, n in data.get("rows", {}).items()]
    labels = ", ".join(f"{k} {v}" for k, v in data.get("labels", {}).items())
    return (
        f"- Source: `{data.get('source')}` ({data.get('format')})\n"
        f"- Snapshot sha256: `{data.get('source_sha256')}`\n"
        f"- Labels (all splits): {labels}\n"
        f"- Duplicates dropped: {data.get('duplicates_dropped', 0)}; test overlap dropped from "
        f"train: {data.get('test_overlap_dropped', 0)}\n\n" + _table(["split", "rows"], rows)
    )


def _metrics_section(metrics: dict[str, Any], main: str) -> str:
    ci = metrics.get("ci") or {}
    names = [*CLASS_METRICS, *ENTITY_METRICS, *TOPIC_METRICS]  # metrics.json holds the task's
    rows = []
    for name in names:
        if isinstance(metrics.get(name), int | float):
            interval = ""
            if name == ci.get("metric"):
                interval = f"{ci['low']:.4f} to {ci['high']:.4f} ({ci['level']:.0%}, bootstrap)"
            rows.append([f"**{name}**" if name == main else name, f"{metrics[name]:.4f}", interval])
    if "topic_shares" in metrics:  # a topic model: each topic's share and coherence
        shares, npmi = metrics["topic_shares"], metrics.get("npmi_per_topic") or []
        topics = [
            [topic, f"{share:.1%}", f"{npmi[i]:.4f}" if i < len(npmi) else ""]
            for i, (topic, share) in enumerate(shares.items())
        ]
        return (
            _table(["metric", "test", "confidence interval"], rows)
            + "\n\n"
            + _table(["topic", "share of test texts", "NPMI"], topics)
        )
    kind, scores = _per_target(metrics)
    per_class = [
        [label, f"{v['precision']:.4f}", f"{v['recall']:.4f}", f"{v['f1']:.4f}", v["support"]]
        for label, v in scores.items()
    ]
    return (
        _table(["metric", "test", "confidence interval"], rows)
        + "\n\n"
        + _table([kind, "precision", "recall", "f1", "support"], per_class)
    )


def _per_target(metrics: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The per-class scores of a classifier, or the per-type scores of an entity tagger."""
    if "per_type" in metrics:
        return "entity type", dict(metrics["per_type"] or {})
    return "class", dict(metrics.get("per_class") or {})


def _slices_section(slices: dict[str, Any], main: str, overall: float) -> tuple[str, list[str]]:
    rows, limits = [], []
    for name, s in slices.items():
        trusted = "yes" if s.get("trusted") else "no (too few rows)"
        rows.append([name, s["rows"], f"{s.get(main, float('nan')):.4f}", trusted])
        if s.get("trusted") and overall - float(s.get(main, overall)) > 0.05:
            limits.append(
                f"Weaker on slice `{name}`: {main} {s[main]:.3f} against {overall:.3f} overall "
                f"({s['rows']} test rows)."
            )
    if not rows:
        return "No slices.", limits
    return _table(["slice", "rows", main, "trusted"], rows), limits


def _rate(rate: float | None) -> str:
    """A pass rate; a test with no case to run (none applied) has none."""
    return "no cases" if rate is None else f"{rate:.3f}"


def _behaviour_section(behaviour: dict[str, Any]) -> tuple[str, list[str]]:
    tests = behaviour.get("tests") or []
    if not tests:
        return "No behavioural tests configured (`evaluate.behavioural`).", []
    rows = [[t["name"], t["type"], t["cases"], _rate(t["pass_rate"])] for t in tests]
    limits = [
        f"Behavioural test `{t['name']}` ({t['type']}) passes {t['pass_rate']:.0%} of its "
        f"{t['cases']} cases."
        for t in tests
        if t["pass_rate"] is not None and t["pass_rate"] < 1.0
    ]
    overall = behaviour.get("pass_rate")
    head = f"Overall pass rate: {overall:.3f}\n\n" if overall is not None else ""
    return head + _table(["test", "type", "cases", "pass rate"], rows), limits


def intended_use(params: Params, labels: list[str]) -> str:
    """params register.card.intended_use; unset, what the run knows and a request to set it
    (a default purpose would be claimed for every dataset alike)."""
    from nlpflow.config.naming import dataset_name
    from nlpflow.config.secrets import redact

    stated = params.register_.card.intended_use
    if stated:
        return stated
    shown = ", ".join(labels[:20]) + (f" and {len(labels) - 20} more" if len(labels) > 20 else "")
    return (
        f"Not stated: set `register.card.intended_use` in params to say what this model is "
        f"for and what it is not for. What the run knows: {params.task} "
        + (f"over the labels {shown}, " if shown else "")
        + f"trained on `{dataset_name(params.data.source)}` (`{redact(params.data.source)}`). "
        "Not for decisions about people, nor for text unlike that data."
    )


def build_model_card(
    *,
    model_name: str,
    version: int | None,
    run_id: str,
    manifest: dict[str, Any],
    data_manifest: Path,
    metrics: dict[str, Any],
    evaluation: Path,
    decision: Decision,
    params: Params,
    not_registered: str | None = None,
) -> str:
    """The card of `version`; with version None (nothing registered), of the run's model,
    saying why (`not_registered`)."""
    main = params.evaluate.main_metric
    slices_text, slice_limits = _slices_section(
        _read(evaluation / "slices.json").get("slices", {}), main, float(metrics[main])
    )
    behaviour_text, behaviour_limits = _behaviour_section(_read(evaluation / "behavioural.json"))
    kind, scores = _per_target(metrics)
    rows = sum(v["support"] for v in scores.values())
    unit = "rows" if kind == "class" else "entities"
    measured = slice_limits + behaviour_limits
    if rows < SMALL_TEST_SET:
        measured.append(
            f"The test set holds {rows} {unit}: one mistake moves {main} by about "
            f"{100 / max(rows, 1):.2f} points, so small differences between versions are noise "
            "(see the interval)."
        )
    limits = [*params.register_.card.limitations, *measured] or ["None recorded."]
    train = manifest.get("train") or {}
    verdict = "promoted to champion" if decision.promote else "not promoted"
    if decision.refused:
        verdict = (
            f"not promoted, and not compared with champion v{decision.compared_version}, a "
            "model of other data"
        )
    title, registered = f"version {version}", f"registered as `models:/{model_name}/{version}`"
    if version is None:
        title, registered = "(not registered)", f"not registered: {not_registered}"
        verdict = "not registered, so not promoted; the gate " + (
            "passed" if decision.promote else "rejected it"
        )
    checks = [[c.name, "n/a" if not c.applicable else ("pass" if c.passed else "FAIL"), c.reason]
              for c in decision.checks]  # fmt: skip
    return f"""# Model card: {model_name} {title}

- Family: `{manifest.get("family")}`; pretrained: `{train.get("pretrained", "-")}`
- Labels: {", ".join(manifest.get("labels", []))}
- MLflow run: `{run_id}`; {registered}

## Intended use
{intended_use(params, manifest.get("labels") or [])}

## Data
{_data_section(data_manifest)}

## Params
```json
{json.dumps(params.public_dict(), indent=2)}
```

## Test metrics
{_metrics_section(metrics, main)}

## Slices
{slices_text}

## Behavioural tests
{behaviour_text}

## Promotion decision
This version was **{verdict}**: {decision.reasons}

{_table(["check", "result", "detail"], checks)}

## Known limits
{chr(10).join(f"- {line}" for line in limits)}
"""
