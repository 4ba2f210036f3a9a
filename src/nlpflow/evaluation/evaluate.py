"""evaluate: score the test split in depth, through the Scoring module of the NLP task.

    nlpflow stage evaluate

Every task writes `reports/metrics.json` (DVC metrics: its numbers, a bootstrap interval of the
main metric (`ci`), the behavioural pass rate and the baseline's score),
`reports/evaluation/predictions.parquet` (one row per test row) and
`reports/evaluation/train_text_hashes.txt.gz`: what the model trained on (text_key of each train
and validation text), so a later gate can tell which of its own test rows this model saw.
The rest is the task's (text-classification: nlpflow.evaluation.nlp.text_classification).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from nlpflow.config.nlp_tasks import DEFAULT_NLP_TASK
from nlpflow.config.params import EvaluateParams
from nlpflow.evaluation.nlp import EvaluateInputs, scoring
from nlpflow.evaluation.report import EvaluateReport
from nlpflow.evaluation.training_texts import TRAINING_TEXTS, save_text_hashes, training_texts


def evaluate(
    *,
    model_dir: Path,
    src: Path,
    metrics_path: Path,
    plots_dir: Path,
    out_dir: Path,
    params: EvaluateParams,
    task: str = DEFAULT_NLP_TASK,
    baseline_dir: Path | None = None,
    behavioural: Path | None = None,
) -> EvaluateReport:
    """Predict the test split of `src` with the model in `model_dir` and write every report.
    `task`: the NLP task (params `task`) whose Scoring module scores it; `baseline_dir`: the
    baseline stage's model (None: not scored); `behavioural`: the behavioural test file (None:
    no tests, pass rate null)."""
    from nlpflow.training.families import baseline_folder

    inputs = EvaluateInputs(
        model_dir=model_dir, src=src, plots_dir=plots_dir, out_dir=out_dir, params=params,
        baseline_dir=baseline_folder(baseline_dir, model_dir), behavioural=behavioural,
    )  # fmt: skip
    # the folder is this stage's output: charts of another task's (or an earlier) run must not
    # pass for this one's (DVC removes outputs before a stage runs; nlpflow run does not)
    shutil.rmtree(plots_dir, ignore_errors=True)
    report = scoring(task).evaluate(inputs)
    metrics_path.parent.mkdir(parents=True, exist_ok=True)
    metrics_path.write_text(json.dumps(report.metrics, indent=2))
    save_text_hashes(out_dir / TRAINING_TEXTS, training_texts(src))
    return report


# read by the gate (nlpflow.release.evidence) and its tests from here
from nlpflow.evaluation.training_texts import load_text_hashes as load_text_hashes  # noqa: E402
from nlpflow.evaluation.training_texts import text_key as text_key  # noqa: E402
