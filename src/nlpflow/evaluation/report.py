"""What the evaluate stage reports, whatever the NLP task: metrics.json's content and the
numbers MLflow tracks (each task's Scoring module, nlpflow.evaluation.nlp, fills it in)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel


class EvaluateReport(BaseModel):
    metrics: dict[str, Any]  # metrics.json
    confusion: list[list[int]]  # gold x predicted counts, in `labels` order ([] when none)
    labels: list[str]
    rows: int
    main_metric: str = "macro_f1"
    ci: dict[str, Any] = {}  # nlpflow.evaluation.stats.Interval of the main metric, as a dict
    slices: dict[str, dict[str, Any]] = {}
    behavioural: dict[str, Any] = {}  # pass_rate, and pass rate by test name
    baseline: dict[str, Any] = {}  # family, <main metric>, accuracy
    # a model of static word vectors (embeddings_logreg): vocab_size, vector_size,
    # word_sim_spearman (None under 3 covered pairs), word_sim_pairs, word_sim_total, and the
    # nearest words of each probe word (nlpflow.evaluation.embeddings); {} for other models
    embeddings: dict[str, Any] = {}

    def tracked_metrics(self) -> dict[str, float]:
        """The numbers for MLflow, grouped by the prefix before `/` (MLflow's UI charts each
        group apart): test/<metric> and its interval, test_class/<label>/<metric> (or
        test_type/<entity type>/<metric>),
        slice/<name>/<main>, behavioural/<test> pass rates, baseline/<main> and, for static
        word vectors, embeddings/<figure>."""
        main, out = self.main_metric, {}
        for key, value in self.metrics.items():
            if isinstance(value, float) and key != "behavioural_pass_rate":  # logged below
                out[f"test/{key}"] = value
        for label, scores in self.metrics.get("per_class", {}).items():
            label = metric_part(str(label))
            out |= {f"test_class/{label}/{k}": v for k, v in scores.items() if isinstance(v, float)}
        for kind, scores in self.metrics.get("per_type", {}).items():  # entity types
            kind = metric_part(str(kind))
            out |= {f"test_type/{kind}/{k}": v for k, v in scores.items() if isinstance(v, float)}
        if self.ci:
            out |= {f"test/{main}_ci_low": self.ci["low"], f"test/{main}_ci_high": self.ci["high"]}
        out |= {f"slice/{metric_part(name)}/{main}": s[main] for name, s in self.slices.items()}
        if self.behavioural.get("pass_rate") is not None:
            out["behavioural/pass_rate"] = self.behavioural["pass_rate"]
        for name, rate in self.behavioural.get("tests", {}).items():
            if rate is not None:
                out[f"behavioural/{metric_part(name)}"] = rate
        if main in self.baseline:
            out[f"baseline/{main}"] = self.baseline[main]
        for key, value in self.embeddings.items():  # the vectors' intrinsic evaluation
            if isinstance(value, int | float) and not isinstance(value, bool):
                out[f"embeddings/{key}"] = value
        return {k: float(v) for k, v in out.items()}


def metric_part(name: str) -> str:
    """A label or slice name as one segment of an MLflow metric key (letters, digits, _-. and
    spaces; a `/` would start another group)."""
    return re.sub(r"[^\w\-. ]", "_", name)
