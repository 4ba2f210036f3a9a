"""Batch inference: score a file or a SQL table with one registered model version.

    nlpflow infer --set inference.source=postgresql://me@db/shop --set inference.table=tickets \\
                  --set inference.id_column=id --set inference.output=ticket_predictions

Each step is one function in this package and one task in `tasks/inference.py`:

1. `plan_inference`: where the rows come from and where predictions go; refuses to write into
   the input (table or file).
2. `resolve_model` (nlpflow.tracking.refs) + `load_version`: the alias is resolved to a version
   number once, and that version is loaded (`models:/NAME/<version>`), so every row is scored by
   the same model even if the alias moves while the run goes on.
3. `read_rows`: the whole file, or the table / query's rows.
4. `validate_rows`: Great Expectations checks the text column (present, not null, not blank,
   at most the model's max_chars) and the id column (present, not null, unique). Failing rows
   stop the run (`on_invalid: fail`) or are set aside with their reasons (`skip`).
5. `score_rows`: the registered pyfunc, in batches of `batch_size` (at most the model's
   max_batch).
6. `write_outputs`: predictions (a file by extension, or rows appended to a table of the same
   database) and the rejected rows beside them, each with model version, run id and timestamp.
7. `build_report` / `log_report`: counts, to the MLflow experiment `<register.experiment>-inference`.

The input is only ever read. Modules by concern: plan (1), read (3), checks (4), score (2, 5),
write (6), report (7).
"""

from nlpflow.serving.batch.checks import CheckedRows, RowCheck, build_row_checks, validate_rows
from nlpflow.serving.batch.plan import (
    INPUT_FORMATS,
    OUTPUT_FORMATS,
    ROW,
    InferencePlan,
    Target,
    plan_inference,
)
from nlpflow.serving.batch.read import read_rows
from nlpflow.serving.batch.report import (
    InferenceReport,
    build_report,
    log_report,
    report_markdown,
    start_inference_run,
)
from nlpflow.serving.batch.score import (
    LoadedModel,
    build_predictions,
    load_version,
    rejected_rows,
    score_rows,
)
from nlpflow.serving.batch.write import write_outputs

__all__ = [
    "INPUT_FORMATS",
    "OUTPUT_FORMATS",
    "ROW",
    "CheckedRows",
    "InferencePlan",
    "InferenceReport",
    "LoadedModel",
    "RowCheck",
    "Target",
    "build_predictions",
    "build_report",
    "build_row_checks",
    "load_version",
    "log_report",
    "plan_inference",
    "read_rows",
    "rejected_rows",
    "report_markdown",
    "score_rows",
    "start_inference_run",
    "validate_rows",
    "write_outputs",
]
