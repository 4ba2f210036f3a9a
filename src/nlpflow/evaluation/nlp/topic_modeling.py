"""Scoring for topic-modeling (nlpflow.evaluation.nlp.Scoring): topics found in the text.

evaluate writes
- metrics.json's numbers: topic coherence of the topics' top words on the held-out (test)
  documents, NPMI (`npmi`) and C_v (`c_v`) with gensim's CoherenceModel, topic diversity
  (`diversity`: the share of distinct words among all topics' top 25 words), the number of topics,
  each topic's share of the test documents (`topic_shares`) and, where the rows have labels,
  how well the largest topic of each text agrees with them (`nmi`, `ari`, `purity`); the
  baseline's (nmf) scores beside them;
- `reports/plots/`: topic_shares.csv, topic_words.png, topic_map.png and, with a time column,
  topic_shares_over_time.csv/.png (nlpflow.evaluation.topic_plots);
- `reports/evaluation/`: predictions.parquet (a row per test text: its largest topic, that
  topic's share and words, share_<topic> of every topic), topics.csv and topics.md (the
  topic-word table), slices.json (none: topics have no slices) and baseline.json.

Coherence is measured on the documents as the model saw them, cleaned by preprocess, with each
topic's collocations ("new_york") joined where their words stand side by side: a score of the
topics on text they did not learn from. The gate's form of an answer (`predicted`) is a text's
largest topic with its words as canonical JSON (answer_form): the gate re-scores the topics a
model gives the test texts, which with hundreds of texts are all of them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from nlpflow.config.params import EvaluateParams
from nlpflow.data.splits import SPLITS, load_splits
from nlpflow.errors import StageInputError
from nlpflow.evaluation.nlp import EvaluateInputs
from nlpflow.evaluation.report import EvaluateReport
from nlpflow.training.families import TopicModel, load_model

SHARE_PREFIX = "share_"  # + a topic id: that topic's share of the text
COHERENCE_WORDS = 10  # top words per topic that coherence scores (the literature's usual 10)
TOPIC_METRICS = ("npmi", "c_v")
DIVERSITY_WORDS = 25  # top words per topic that diversity counts (the BERTopic paper's)


def main_metric(params: EvaluateParams) -> str:
    """params.main_metric when it is a topic metric, else npmi (the field's default is
    classification's)."""
    return params.main_metric if params.main_metric in TOPIC_METRICS else "npmi"


def topic_names(model: Any) -> list[str]:
    """Each topic's top words, comma-separated: what serving shows beside a topic id."""
    return [", ".join(word for word, _ in topic) for topic in model.topic_words()]


def answer_form(topic: str, words: Sequence[str]) -> str:
    """A text's largest topic as the gate compares and scores it: canonical JSON."""
    return json.dumps({"topic": str(topic), "words": list(words)}, sort_keys=True)


def evaluate(inputs: EvaluateInputs) -> EvaluateReport:
    """Score the model's topics on the test split and draw them."""
    from nlpflow.evaluation import topic_plots

    params, out_dir = inputs.params, inputs.out_dir
    model = cast(TopicModel, load_model(inputs.model_dir))
    test = _load_test(inputs.src)
    shares = model.predict_proba(test["text"].tolist())
    words = model.topic_words()
    metrics = compute_scores(model, test, shares)
    scored = _score_baseline(inputs.baseline_dir, test=test)
    main = main_metric(params)
    baseline = {"family": scored["family"], main: scored["metrics"][main]} if scored else {}
    metrics["baseline"] = baseline or None
    frame = predictions_frame(test, shares, model=model)

    out_dir.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out_dir / "predictions.parquet", index=False)
    table = topic_table(model, metrics["topic_shares"], metrics["npmi_per_topic"])
    table.to_csv(out_dir / "topics.csv", index=False)
    (out_dir / "topics.md").write_text(topics_markdown(table), encoding="utf-8")
    (out_dir / "slices.json").write_text(
        json.dumps({"main_metric": main, "slices": {}, "empty": list(params.slices)}, indent=2)
    )
    (out_dir / "behavioural.json").write_text(json.dumps({"pass_rate": None, "tests": []}))
    if scored is not None:
        (out_dir / "baseline.json").write_text(json.dumps(scored, indent=2))
    else:
        (out_dir / "baseline.json").unlink(missing_ok=True)

    plots = inputs.plots_dir
    plots.mkdir(parents=True, exist_ok=True)
    shares_list = [metrics["topic_shares"][t] for t in model.labels]
    pd.DataFrame({"topic": model.labels, "share": shares_list}).to_csv(
        plots / "topic_shares.csv", index=False
    )
    topic_plots.save_topic_words_png(plots / "topic_words.png", words, model.labels)
    topic_plots.save_topic_map_png(plots / "topic_map.png", words, model.labels, shares_list)
    _shares_over_time(inputs.src, model=model, plots=plots)
    return EvaluateReport(
        metrics=metrics, confusion=[], labels=list(model.labels), rows=len(test),
        main_metric=main, baseline=baseline,
    )  # fmt: skip


def _load_test(src: Path) -> pd.DataFrame:
    test = load_splits(src, ("test",))["test"]
    if test.empty:
        raise StageInputError(f"{src / 'test.parquet'} has no rows: there is nothing to evaluate.")
    raw = test["raw_text"].astype(str) if "raw_text" in test.columns else test["text"]
    return test.assign(text=test["text"].astype(str), raw_text=raw)


def coherence_documents(texts: Sequence[str], topics: Sequence[Sequence[str]]) -> list[list[str]]:
    """The cleaned texts as token lists, each topic collocation ("new_york") joined wherever
    its words stand side by side (longest first), so a collocation is found where it occurs."""
    phrases = sorted({w for t in topics for w in t if "_" in w.strip("_")},
                     key=lambda w: -w.count("_"))  # fmt: skip
    parts = {tuple(p.split("_")): p for p in phrases}
    lengths = sorted({len(k) for k in parts}, reverse=True)
    docs = []
    for text in texts:
        tokens, out, i = text.split(), [], 0
        while i < len(tokens):
            for n in lengths:
                joined = parts.get(tuple(tokens[i : i + n]))
                if joined is not None:
                    out.append(joined)
                    i += n
                    break
            else:
                out.append(tokens[i])
                i += 1
        docs.append(out)
    return docs


def compute_topic_scores(topics: Sequence[Sequence[str]], texts: Sequence[str]) -> dict[str, Any]:
    """npmi and c_v (mean, and npmi per topic) of `topics`' first COHERENCE_WORDS words on
    `texts` (cleaned)."""
    from nlpflow.evaluation.topics.metrics import compute_coherence

    top = [list(t)[:COHERENCE_WORDS] for t in topics]
    docs = coherence_documents(texts, top)
    npmi, per_topic = compute_coherence(top, docs, measure="c_npmi", top_n=COHERENCE_WORDS)
    c_v, _ = compute_coherence(top, docs, measure="c_v", top_n=COHERENCE_WORDS)
    return {"npmi": float(npmi), "c_v": float(c_v),
            "npmi_per_topic": [float(v) for v in per_topic]}  # fmt: skip


def compute_model_scores(model: Any, texts: Sequence[str]) -> dict[str, Any]:
    """compute_topic_scores of the model's topics, and their diversity over DIVERSITY_WORDS."""
    from nlpflow.evaluation.topics.metrics import compute_diversity

    topics = [[w for w, _ in t] for t in model.topic_words(DIVERSITY_WORDS)]
    scores = compute_topic_scores(topics, texts)
    scores["diversity"] = float(compute_diversity(topics, top_n=DIVERSITY_WORDS))
    return scores


def compute_scores(model: Any, test: pd.DataFrame, shares: np.ndarray) -> dict[str, Any]:
    """metrics.json's numbers (the baseline is added by the caller)."""
    from nlpflow.evaluation.topics.metrics import compute_label_agreement

    metrics = compute_model_scores(model, test["text"].tolist())
    metrics["topics"] = len(model.labels)
    mean = shares.mean(axis=0) if len(shares) else np.zeros(len(model.labels))
    metrics["topic_shares"] = {
        t: round(float(v), 6) for t, v in zip(model.labels, mean, strict=True)
    }
    dominant = [model.labels[i] for i in shares.argmax(axis=1)]
    metrics["largest_share"] = float(mean.max()) if len(mean) else 0.0
    labelled = test["label"].notna().to_numpy() if "label" in test.columns else np.zeros(0, bool)
    if labelled.any():
        gold = test["label"][labelled].astype(str).tolist()
        chosen = [d for d, keep in zip(dominant, labelled, strict=True) if keep]
        metrics |= {k: float(v) for k, v in compute_label_agreement(gold, chosen).items()}
        metrics["labelled_rows"] = int(labelled.sum())
    return metrics


def _score_baseline(baseline_dir: Path | None, *, test: pd.DataFrame) -> dict[str, Any] | None:
    if baseline_dir is None:
        return None
    if not baseline_dir.exists():
        raise StageInputError(f"{baseline_dir} is missing: run the baseline stage first.")
    baseline = cast(TopicModel, load_model(baseline_dir))
    scores = compute_model_scores(baseline, test["text"].tolist())
    scores.pop("npmi_per_topic")
    return {"family": baseline.family, "metrics": scores}


def predictions_frame(test: pd.DataFrame, shares: np.ndarray, *, model: Any) -> pd.DataFrame:
    names = topic_names(model)
    best = shares.argmax(axis=1)
    columns = [c for c in ("raw_text", "text", "label") if c in test.columns]
    frame = test[columns].reset_index(drop=True)
    if "label" not in frame.columns:
        frame["label"] = None
    frame["topic"] = [model.labels[i] for i in best]
    frame["probability"] = shares.max(axis=1).astype(float)
    frame["words"] = [names[i] for i in best]
    frame["predicted"] = [
        answer_form(t, w.split(", ")) for t, w in zip(frame["topic"], frame["words"], strict=True)
    ]
    for i, topic in enumerate(model.labels):
        frame[f"{SHARE_PREFIX}{topic}"] = shares[:, i].astype(float)
    return frame


def topic_table(model: Any, shares: dict[str, float], npmi: Sequence[float]) -> pd.DataFrame:
    """One row per topic: its id, share of the test documents, NPMI and top words."""
    words = topic_names(model)
    return pd.DataFrame(
        {
            "topic": list(model.labels),
            "share": [shares[t] for t in model.labels],
            "npmi": [round(float(v), 4) for v in npmi],
            "words": words,
        }
    )


def topics_markdown(table: pd.DataFrame) -> str:
    lines = ["| topic | share | NPMI | top words |", "|---|---|---|---|"]
    for row in table.itertuples(index=False):
        lines.append(f"| {row.topic} | {row.share:.1%} | {row.npmi:.3f} | {row.words} |")
    return "\n".join(lines) + "\n"


def _shares_over_time(src: Path, *, model: Any, plots: Path) -> None:
    """topic_shares_over_time.csv/.png from every split's documents, when they have times."""
    from nlpflow.evaluation import topic_plots

    stale = [plots / "topic_shares_over_time.csv", plots / "topic_shares_over_time.png"]
    for path in stale:  # another run's (with a time column) must not pass for this one's
        path.unlink(missing_ok=True)
    frames = [f for f in load_splits(src, SPLITS).values() if "time" in f.columns]
    if not frames:
        return
    rows = pd.concat(frames, ignore_index=True)
    rows = rows[rows["time"].notna()]
    if rows.empty:
        return
    shares = model.predict_proba(rows["text"].astype(str).tolist())
    table = topic_plots.compute_shares_over_time(rows["time"], shares, list(model.labels))
    table.to_csv(stale[0], index=False)
    topic_plots.save_shares_over_time_png(stale[1], table)


# The promotion gate's scoring (nlpflow.release): what evaluate computes, for a served model's
# answers on the test rows.


def judge(
    gold: list[Any], predicted: list[Any], texts: list[str], *, labels: list[str],
    params: EvaluateParams, cleaned: list[str] | None = None,
) -> tuple[float, dict[str, dict[str, Any]]]:  # fmt: skip
    """The main metric of the topics the answers name, on the cleaned test texts (no slices:
    a topic model's scores are of its topics, not of rows)."""
    topics: dict[str, list[str]] = {}
    for answer in predicted:
        found = json.loads(answer)
        topics.setdefault(found["topic"], found["words"])
    scores = compute_topic_scores(list(topics.values()), cleaned if cleaned is not None else texts)
    return float(scores[main_metric(params)]), {}


def paired_metric(name: str, labels: Sequence[str]) -> None:
    """None: coherence scores the topics as a whole, so the gate has no paired
    test over rows for them (nlpflow.release.gate says so in the significance check)."""
    return None


def recorded(predictions: pd.DataFrame, labels: Sequence[str]) -> tuple[list[Any], np.ndarray]:
    """The answers (answer_form) and the share_<topic> columns, in `labels` order."""
    columns = [f"{SHARE_PREFIX}{topic}" for topic in labels]
    return predictions["predicted"].astype(str).tolist(), predictions[columns].to_numpy()
