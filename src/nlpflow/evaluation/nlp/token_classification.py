"""Scoring for token-classification (nlpflow.evaluation.nlp.Scoring): BIO tags per token.

evaluate writes
- metrics.json's numbers: entity_scores (seqeval strict micro/macro, per type, token accuracy,
  nervaluate's partial/exact/type), a bootstrap interval of the main metric over sentences, the
  behavioural pass rate (nlpflow.evaluation.ner.behavioural) and the baseline's score;
- `reports/plots/`: confusion.csv (gold type, predicted type per entity: DVC's confusion
  template), confusion_matrix.png (type confusion, with (missed) and (spurious)), per_type.csv
  and per_type_f1.png;
- `reports/evaluation/`: predictions.parquet, slices.json, behavioural.json, baseline.json,
  worst_errors.csv/.md (error_table, surest first) and entities.html (displaCy, gold against
  predicted, for the first sentences).

The gate's form of an answer (`label`, `predicted`, judge, paired_metric, recorded, and the
served Output's read_answer) is a sentence's entities as canonical JSON of character spans
(nlpflow.evaluation.ner.forms): the one form both a served answer and gold tags can be put in.
The tags themselves are kept as `tags` and `predicted_tags`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from nlpflow.config.params import EvaluateParams
from nlpflow.data.splits import load_splits
from nlpflow.errors import StageInputError
from nlpflow.evaluation.ner.behavioural import behavioural_json
from nlpflow.evaluation.ner.forms import (
    SpanF1,
    canonical,
    entity_records,
    lowest_score,
    span_counts,
    span_f1,
)
from nlpflow.evaluation.ner.scores import (
    entity_scores,
    error_table,
    sentence_entities,
    type_confusion,
)
from nlpflow.evaluation.nlp import EvaluateInputs
from nlpflow.evaluation.report import EvaluateReport
from nlpflow.training.families import TokenTagger, load_model

ENTITY_METRICS = ("entity_f1", "entity_macro_f1")
SHOWN_SENTENCES = 50  # in entities.html: enough to see what the model does, small to open


def main_metric(params: EvaluateParams) -> str:
    """params.main_metric when it is an entity metric, else entity_f1 (strict micro): the
    field's default is classification's macro_f1."""
    return params.main_metric if params.main_metric in ENTITY_METRICS else "entity_f1"


def sentence_slices(
    gold: Sequence[str], predicted: Sequence[str], texts: Sequence[str], *,
    params: EvaluateParams,
) -> dict[str, dict[str, Any]]:  # fmt: skip
    """The sentence slices of evaluate.slices (nlpflow.evaluation.slices: length in whitespace
    tokens of the raw text, negation, keywords and regexes), each scored on its sentences:
    {kind, rows, entities, predicted, precision, recall, entity_f1, <main>, trusted}."""
    from nlpflow.evaluation.ner.scores import prf
    from nlpflow.evaluation.slices import slice_members

    main = main_metric(params)
    _, counts = span_counts(gold, predicted)
    out: dict[str, dict[str, Any]] = {}
    for name, (kind, mask) in slice_members(texts, params=params).items():
        rows = int(mask.sum())
        if rows == 0:
            continue
        sums = counts[mask].sum(axis=0)
        tp, fp, fn = (int(v) for v in sums.sum(axis=0))
        scores = prf(tp, tp + fp, tp + fn)
        out[name] = {"kind": kind, "rows": rows, "entities": tp + fn, "predicted": tp + fp,
                     "precision": scores["precision"], "recall": scores["recall"],
                     "entity_f1": scores["f1"]}  # fmt: skip
        out[name][main] = float(span_f1(sums, macro=main == "entity_macro_f1"))
        out[name]["trusted"] = rows >= params.min_slice_size
    return out


# The promotion gate's scoring (nlpflow.release)


def judge(
    gold: list[Any], predicted: list[Any], texts: list[str], *, labels: list[str],
    params: EvaluateParams, cleaned: list[str] | None = None,
) -> tuple[float, dict[str, dict[str, Any]]]:  # fmt: skip
    """The main metric and the sentence slices of the gate's form, as evaluate computes them
    (`labels` is not needed: the types are those of the entities)."""
    main = main_metric(params)
    score = SpanF1(main)(gold, predicted)
    return score, sentence_slices(gold, predicted, texts, params=params)


def paired_metric(name: str, labels: Sequence[str]) -> Any:
    """SpanF1 of `name` (a classification metric's name falls back as main_metric does)."""
    return SpanF1(name if name in ENTITY_METRICS else "entity_f1")


def recorded(predictions: pd.DataFrame, labels: Sequence[str]) -> tuple[list[Any], np.ndarray]:
    """`predicted` (the gate's form) and the lowest entity score per row, as (rows, 1)."""
    lowest = [lowest_score(json.loads(v)) for v in predictions["entities_predicted"]]
    return predictions["predicted"].astype(str).tolist(), np.array(lowest, dtype=float)[:, None]


# The evaluate stage


def evaluate(inputs: EvaluateInputs) -> EvaluateReport:
    """Tag the test split with the model and write every report but metrics.json."""
    params, out_dir, main = inputs.params, inputs.out_dir, main_metric(inputs.params)
    model = cast(TokenTagger, load_model(inputs.model_dir))
    test = load_test(inputs.src)
    tokens, gold = test["tokens"].tolist(), test["tags"].tolist()
    predicted, probs = predict(model, tokens)
    metrics = entity_scores(gold, predicted)
    frame = predictions_frame(test, predicted, probs)
    ci = _interval(frame, gold, predicted, main=main, params=params)
    train = load_splits(inputs.src, ("train",))["train"]
    slices = sentence_slices(frame["label"].tolist(), frame["predicted"].tolist(),
                             frame["raw_text"].tolist(), params=params)  # fmt: skip
    slices |= entity_slices(train, tokens, gold, predicted, main=main, params=params)
    suite = behavioural_json(inputs.behavioural, model, texts=frame["raw_text"].tolist(),
                             gold=[json.loads(r) for r in frame["entities_gold"]],
                             seed=params.seed)  # fmt: skip
    scored = _score_baseline(inputs.baseline_dir, tokens=tokens, gold=gold)
    baseline = {} if scored is None else {
        "family": scored["family"], main: scored["metrics"][main],
        "token_accuracy": scored["metrics"]["token_accuracy"],
    }  # fmt: skip
    metrics |= {"ci": ci, "behavioural_pass_rate": suite["pass_rate"], "baseline": baseline or None}
    types, confusion = type_confusion(gold, predicted)

    write_evaluation(out_dir, frame=frame, slices=slices, suite=suite, baseline=scored,
                     main=main, params=params)  # fmt: skip
    write_errors(out_dir, frame, error_table(tokens, gold, predicted), probs,
                 limit=params.worst_errors)  # fmt: skip
    write_plots(inputs.plots_dir, types=types, confusion=confusion, per_type=metrics["per_type"])
    write_displacy(out_dir / "entities.html", frame.head(SHOWN_SENTENCES))
    return EvaluateReport(
        metrics=metrics, confusion=confusion, labels=types, rows=len(test), main_metric=main,
        ci=ci, slices=slices, baseline=baseline, behavioural={"pass_rate": suite["pass_rate"],
        "tests": {t["name"]: t["pass_rate"] for t in suite["tests"]}},
    )  # fmt: skip


def load_test(src: Path) -> pd.DataFrame:
    """test.parquet with lists for tokens, starts and tags, its raw text checked against the
    token offsets (entities are reported as character offsets into it)."""
    test = load_splits(src, ("test",))["test"]
    if test.empty:
        raise StageInputError(f"{src / 'test.parquet'} has no rows: there is nothing to evaluate.")
    missing = sorted({"tokens", "starts", "tags", "text"} - set(test.columns))
    if missing:
        raise StageInputError(
            f"{src / 'test.parquet'} lacks column(s) {', '.join(missing)}: it is not a "
            "token-classification split; run gather and preprocess with task token-classification."
        )
    raw = test["raw_text"] if "raw_text" in test.columns else test["text"]
    test = test.assign(
        raw_text=raw.astype(str), tokens=[[str(t) for t in row] for row in test["tokens"]],
        starts=[[int(s) for s in row] for row in test["starts"]],
        tags=[[str(t) for t in row] for row in test["tags"]],
    )  # fmt: skip
    for i, row in enumerate(test.itertuples(index=False)):
        if any(
            row.raw_text[s : s + len(t)] != t for t, s in zip(row.tokens, row.starts, strict=True)
        ):
            raise StageInputError(
                f"{src / 'test.parquet'} row {i}: the tokens are not at their `starts` in "
                "raw_text, so entities cannot be given as character offsets: the text was "
                "changed after tokenising; re-run gather and preprocess."
            )
    return test.reset_index(drop=True)


def predict(
    model: TokenTagger, tokens: list[list[str]]
) -> tuple[list[list[str]], list[list[float]]]:
    tags, probs = model.predict_tags(tokens)
    return [list(map(str, t)) for t in tags], [[float(p) for p in row] for row in probs]


def _interval(frame: pd.DataFrame, gold: list[list[str]], predicted: list[list[str]], *,
              main: str, params: EvaluateParams) -> dict[str, Any]:  # fmt: skip
    """Bootstrap over sentences: bootstrap_f1 for entity_f1; stats' bootstrap of SpanF1
    (the same resamples) for entity_macro_f1."""
    from nlpflow.evaluation.ner.bootstrap import bootstrap_f1
    from nlpflow.evaluation.stats import bootstrap_ci

    samples, level, seed = params.bootstrap_samples, params.confidence_level, params.seed
    if main == "entity_f1":
        return bootstrap_f1(gold, predicted, samples=samples, level=level, seed=seed).model_dump()
    return bootstrap_ci(
        frame["label"].tolist(), frame["predicted"].tolist(), metric=SpanF1(main), name=main,
        samples=samples, level=level, seed=seed,
    ).model_dump()  # fmt: skip


def predictions_frame(
    test: pd.DataFrame, predicted: list[list[str]], probs: list[list[float]]
) -> pd.DataFrame:
    """A row per test sentence: raw_text, text, tokens, tags, predicted_tags, label and
    predicted (the gate's form), confidence (the lowest tag probability), entities_gold and
    entities_predicted (JSON records with text; predicted ones with their score)."""
    frame = test[["raw_text", "text", "tokens", "tags"]].copy()
    gold_spans, pred_spans = sentence_entities(test["tags"].tolist()), sentence_entities(predicted)
    gold_records, pred_records = [], []
    for i, row in enumerate(test.itertuples(index=False)):
        gold_records.append(entity_records(row.raw_text, row.tokens, row.starts, gold_spans[i]))
        pred_records.append(
            entity_records(row.raw_text, row.tokens, row.starts, pred_spans[i], probs[i])
        )
    frame["predicted_tags"] = [" ".join(t) for t in predicted]
    frame["tags"] = [" ".join(t) for t in test["tags"]]
    frame["label"] = [canonical(r) for r in gold_records]
    frame["predicted"] = [canonical(r) for r in pred_records]
    frame["confidence"] = [min(p, default=1.0) for p in probs]
    frame["entities_gold"] = [json.dumps(r, ensure_ascii=False) for r in gold_records]
    frame["entities_predicted"] = [json.dumps(r, ensure_ascii=False) for r in pred_records]
    return frame


def _score_baseline(
    baseline_dir: Path | None, *, tokens: list[list[str]], gold: list[list[str]]
) -> dict[str, Any] | None:
    """The baseline's family and entity_scores on the same test sentences."""
    if baseline_dir is None:
        return None
    if not baseline_dir.exists():
        raise StageInputError(f"{baseline_dir} is missing: run the baseline stage first.")
    baseline = cast(TokenTagger, load_model(baseline_dir))
    predicted, _ = predict(baseline, tokens)
    metrics = entity_scores(gold, predicted)
    return {"family": baseline.family, "metrics": metrics}


def entity_slices(
    train: pd.DataFrame, tokens: list[list[str]], gold: list[list[str]],
    predicted: list[list[str]], *, main: str, params: EvaluateParams,
) -> dict[str, dict[str, Any]]:  # fmt: skip
    """seen/unseen (surface forms of the train split) and entity-length slices: {kind, rows
    (gold entities), entities, predicted, precision, recall, entity_f1, <main>, trusted}."""
    from nlpflow.evaluation.ner.slices import by_entity_length, seen_unseen, surface_forms

    known = surface_forms([list(t) for t in train["tokens"]], [list(t) for t in train["tags"]])

    def compute(g: list[list[str]], p: list[list[str]]) -> dict[str, dict[str, Any]]:
        return seen_unseen(known, g, p, tokens) | by_entity_length(g, p)

    macro: dict[str, list[float]] = {}
    if main == "entity_macro_f1":  # each type alone (others' tags made O), then their mean
        for kind in sorted({s.type for side in (gold, predicted)
                            for spans in sentence_entities(side) for s in spans}):  # fmt: skip

            def only(tags: list[list[str]], kind: str = kind) -> list[list[str]]:
                return [[t if t[2:] == kind else "O" for t in s] for s in tags]

            for name, row in compute(only(gold), only(predicted)).items():
                macro.setdefault(name, []).append(row["f1"])
    out = {}
    for name, row in compute(gold, predicted).items():
        out[name] = {"kind": "seen" if name in ("seen", "unseen") else "entity_length",
                     "rows": row["entities"]} | {k: row[k] for k in
                     ("entities", "predicted", "precision", "recall")}  # fmt: skip
        out[name]["entity_f1"] = row["f1"]
        out[name][main] = float(np.mean(macro[name])) if name in macro else row["f1"]
        out[name]["trusted"] = row["entities"] >= params.min_slice_size
    return out


def write_evaluation(
    out_dir: Path, *, frame: pd.DataFrame, slices: dict[str, dict[str, Any]],
    suite: dict[str, Any], baseline: dict[str, Any] | None, main: str, params: EvaluateParams,
) -> None:  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out_dir / "predictions.parquet", index=False)
    empty = [name for name in params.slices if name not in slices]  # a typo must show
    (out_dir / "slices.json").write_text(
        json.dumps({"main_metric": main, "slices": slices, "empty": empty}, indent=2)
    )
    (out_dir / "behavioural.json").write_text(json.dumps(suite, indent=2))
    if baseline is not None:
        (out_dir / "baseline.json").write_text(json.dumps(baseline, indent=2))
    else:  # a baseline of an earlier run must not pass for this run's
        (out_dir / "baseline.json").unlink(missing_ok=True)


ERROR_COLUMNS = ["confidence", "kind", "sentence", "gold_text", "gold_type", "predicted_text",
                 "predicted_type"]  # fmt: skip


def write_errors(
    out_dir: Path, frame: pd.DataFrame, errors: list[dict[str, Any]],
    probs: list[list[float]], *, limit: int,
) -> None:  # fmt: skip
    """The errors the model was surest of: confidence is the mean probability of its tags
    over the predicted entity (over the gold one for a missed entity)."""
    rows = []
    for error in errors:
        side = "predicted" if error["predicted_start"] is not None else "gold"
        chosen = probs[error["sentence"]][error[f"{side}_start"] : error[f"{side}_end"]]
        rows.append(error | {"confidence": sum(chosen) / len(chosen),
                             "sentence": frame["raw_text"].iloc[error["sentence"]]})  # fmt: skip
    table = pd.DataFrame(rows, columns=ERROR_COLUMNS)
    table = table.sort_values("confidence", ascending=False, kind="stable").head(limit)
    table.to_csv(out_dir / "worst_errors.csv", index=False)
    lines = [f"# The {len(table)} most confident errors (of {len(rows)} in {len(frame)} test "
             "sentences)", "", "| confidence | kind | gold | predicted | sentence |",
             "|---|---|---|---|---|"]  # fmt: skip
    for row in table.itertuples(index=False):
        gold, pred = (
            f"{t} ({k})" if isinstance(t, str) else ""
            for t, k in ((row.gold_text, row.gold_type), (row.predicted_text, row.predicted_type))
        )
        text = " ".join(str(row.sentence).split())
        cells = [f"{row.confidence:.3f}", row.kind, gold, pred, text]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    (out_dir / "worst_errors.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_plots(
    plots_dir: Path, *, types: list[str], confusion: list[list[int]],
    per_type: dict[str, dict[str, Any]],
) -> None:  # fmt: skip
    """confusion.csv (a row per gold entity or spurious prediction: DVC's confusion template)
    and its PNG; per_type.csv and a bar chart of per-type F1."""
    from nlpflow.evaluation.plots import save_confusion_png

    plots_dir.mkdir(parents=True, exist_ok=True)
    pairs = [(types[i], types[j]) for i, row in enumerate(confusion)
             for j, count in enumerate(row) for _ in range(count)]  # fmt: skip
    pd.DataFrame(pairs, columns=["actual", "predicted"]).to_csv(
        plots_dir / "confusion.csv", index=False
    )
    save_confusion_png(plots_dir / "confusion_matrix.png", confusion, types)
    table = pd.DataFrame([{"type": t} | v for t, v in per_type.items()],
                         columns=["type", "precision", "recall", "f1", "support"])  # fmt: skip
    table.to_csv(plots_dir / "per_type.csv", index=False)
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.5 + 0.6 * max(len(table), 1), 4))
    ax.bar(table["type"], table["f1"], color="steelblue")
    for x, (f1, support) in enumerate(zip(table["f1"], table["support"], strict=True)):
        ax.text(x, f1 + 0.01, f"{f1:.2f}\n(n={support})", ha="center", va="bottom", fontsize=8)
    ax.set(ylabel="F1 (strict)", ylim=(0, 1.15), title="entity F1 per type (test split)")
    ax.tick_params(axis="x", labelrotation=45)
    fig.tight_layout()
    fig.savefig(plots_dir / "per_type_f1.png", dpi=100)
    plt.close(fig)


def write_displacy(path: Path, frame: pd.DataFrame) -> None:
    """displaCy's entity view of each sentence, gold above predicted: one self-contained page."""
    from spacy import displacy

    docs = []
    for i, row in enumerate(frame.itertuples(index=False)):
        for side, records in (("gold", row.entities_gold), ("predicted", row.entities_predicted)):
            ents = [{k: e[k] for k in ("start", "end", "label")} for e in json.loads(records)]
            docs.append({"text": row.raw_text, "ents": ents, "title": f"sentence {i}: {side}"})
    html = displacy.render(docs, style="ent", manual=True, page=True, jupyter=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
