"""Batch inference: score a file or a SQL table with one registered model version, chunk by
chunk, on the workers NLPFLOW_ENGINE names; a killed run resumes from its last committed chunk.

    nlpflow infer --set inference.source=postgresql://me@db/shop --set inference.table=tickets \\
                  --set inference.id_column=id --set inference.output=ticket_predictions

Each step is one function in this package and one task in `tasks/inference.py`:

1. `plan_inference`: where the rows come from and where predictions go; refuses to write into
   the input (table or file).
2. `open_job` (progress): the unfinished job of the same input and output, resumed, or a new one.
3. `resolve_model` (nlpflow.tracking.refs): the alias resolved to a version number once (a
   resumed job keeps its version), so every row is scored by the same model even if the alias
   moves while the run goes on; `describe_model` loads it on a worker.
4. `iter_chunks`: the rows, `inference.chunk_rows` at a time (a file streamed, a table through
   a server-side cursor); `id_hashes` / `repeated_ids`: the ids repeated anywhere in the input.
5. `process_chunk` (chunks), per chunk on a worker: `validate_rows` (Great Expectations checks
   the text column: present, not null, not blank, at most the model's max_chars; and the id
   column: present, not null, unique across the input), `score_rows` (the registered pyfunc in
   batches of at most its max_batch), then `commit_chunk` (progress): its predictions and
   rejected rows, each with model version, run id and timestamp, committed with its counts.
   Failing rows are set aside with their reasons (`on_invalid: skip`), or stop the run before
   anything is written (`fail`: every chunk is checked first).
6. `finish_job` (progress): the parts joined into the output files, or the table job marked done.
7. `build_report` / `log_report`: counts over all chunks, to the MLflow experiment
   `<register.experiment>-inference`.

The input is only ever read. Modules by concern: plan (1), progress (2, 5, 6), read (4),
checks (5), score and chunks (3, 5), report (7).
"""

from nlpflow.serving.batch.checks import (
    CheckedRows,
    RowCheck,
    build_row_checks,
    id_hashes,
    invalid_examples,
    invalid_message,
    repeated_ids,
    shape_rows,
    validate_rows,
)
from nlpflow.serving.batch.chunks import ChunkJob, ModelInfo, process_chunk
from nlpflow.serving.batch.plan import (
    INPUT_FORMATS,
    OUTPUT_FORMATS,
    ROW,
    InferencePlan,
    Target,
    plan_inference,
)
from nlpflow.serving.batch.progress import ChunkSummary
from nlpflow.serving.batch.read import iter_chunks, read_rows
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

__all__ = [
    "INPUT_FORMATS",
    "OUTPUT_FORMATS",
    "ROW",
    "CheckedRows",
    "ChunkJob",
    "ChunkSummary",
    "InferencePlan",
    "InferenceReport",
    "LoadedModel",
    "ModelInfo",
    "RowCheck",
    "Target",
    "build_predictions",
    "build_report",
    "build_row_checks",
    "id_hashes",
    "invalid_examples",
    "invalid_message",
    "iter_chunks",
    "load_version",
    "log_report",
    "plan_inference",
    "process_chunk",
    "read_rows",
    "rejected_rows",
    "repeated_ids",
    "report_markdown",
    "score_rows",
    "shape_rows",
    "start_inference_run",
    "validate_rows",
]
