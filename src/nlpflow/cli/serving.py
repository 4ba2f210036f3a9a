"""A registered model's commands: `nlpflow serve` (HTTP) and `nlpflow predict` (here).

nlpflow serve --model nlpflow-support-tickets@champion --port 5001
nlpflow predict --text "the refund never came"
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Annotated, Any

import typer

from nlpflow.cli.common import ConfigOption, console, default_model, out
from nlpflow.config.settings import load_settings
from nlpflow.errors import NlpflowError

ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model", "-m",
        help="NAME@ALIAS or NAME/VERSION (default: the champion of the project's registered "
        "model: NLPFLOW_REGISTERED_MODEL, else params register.model_name, else nlpflow- + "
        "the data's name).",
    ),
]  # fmt: skip


def serve(
    model: ModelOption = None,
    host: Annotated[str, typer.Option(help="Interface to listen on (0.0.0.0: all).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 5001,
    workers: Annotated[int, typer.Option(min=1, help="Server worker processes.")] = 1,
    threads: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="torch threads per worker (default: OMP_NUM_THREADS, else physical cores / workers).",
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Serve a registered model: MLflow's scoring server behind a request guard (size, JSON
    depth, texts checked before parsing), offline, in this environment (never a new
    virtualenv). POST raw text to /invocations."""
    from nlpflow.serving import server as serving
    from nlpflow.tracking.refs import resolve_spec

    settings = load_settings()
    # unknown model or alias: fails before the server
    ref = resolve_spec(default_model(model, settings, config), settings)
    serving.check_port_free(host, port)
    console.print(
        f"serving {ref} from {settings.resolved_tracking_uri} at http://{host}:{port}/invocations"
        f""" (POST {{"inputs": ["some text"]}}); Ctrl-C stops it""",
        markup=False, highlight=False, soft_wrap=True,
    )  # fmt: skip
    code = serving.serve_registered(
        ref, settings, host=host, port=port, workers=workers, threads=threads
    )
    # A server ended by a stop signal (the SIGTERM or Ctrl-C nlpflow forwards to it) stopped
    # as asked: exit 0. Any other code is the server failing, and the command fails with it.
    raise typer.Exit(0 if code in _STOPPED else code)


_STOPPED = {128 + signal.SIGTERM, 128 + signal.SIGINT, 128 + signal.SIGHUP}  # as run_server reports


def predict(
    model: ModelOption = None,
    text: Annotated[
        list[str] | None, typer.Option("--text", "-t", help="A text to classify (repeatable).")
    ] = None,
    input_: Annotated[
        Path | None,
        typer.Option(
            "--input",
            "-i",
            help="A file of texts: .txt (one a line), .csv/.tsv/.jsonl/.parquet (a text column).",
        ),
    ] = None,
    record: Annotated[
        list[str] | None,
        typer.Option(
            "--record",
            "-r",
            help='A JSON object of the fields the model was trained on, e.g. \'{"title": '
            '"...", "description": "..."}\' (repeatable); joined as gather joined them.',
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines, not a table.")] = False,
    config: ConfigOption = None,
) -> None:
    """Answer texts with a registered model: a label and its probabilities, entities, or topics."""
    import pandas as pd

    from nlpflow.serving.nlp import output
    from nlpflow.serving.predict import predict_registered, read_input
    from nlpflow.tracking.refs import resolve_spec as resolve_model

    if sum(x is not None for x in (text, input_, record)) != 1:
        raise NlpflowError(
            "give texts with --text (repeatable), records with --record (repeatable) or a "
            "file with --input: one of them."
        )
    settings = load_settings()
    ref = resolve_model(default_model(model, settings, config), settings)
    rows: list[str] | pd.DataFrame = list(text or [])
    if input_ is not None:
        rows = read_input(input_)
    elif record is not None:
        rows = pd.DataFrame([_record(r) for r in record])
    frame = predict_registered(ref, settings, rows)
    texts = frame.attrs["texts"]
    shape = output(frame.attrs["task"])  # the model's NLP task shapes the answer
    if as_json:
        for row in shape.json_rows(texts, frame):
            out.print(json.dumps(row, ensure_ascii=False), markup=False, highlight=False)
        return
    _print_predictions(shape.display(texts, frame), title=str(ref))


def _record(value: str) -> dict[str, Any]:
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise NlpflowError(f"--record {value[:60]!r} is not JSON ({exc.msg}): give an object "
                           'like \'{"title": "...", "description": "..."}\'.') from None  # fmt: skip
    if not isinstance(parsed, dict):
        raise NlpflowError(
            f"--record {value[:60]!r} is not a JSON object: give one like "
            '\'{"title": "...", "description": "..."}\'.'
        )
    return parsed


def _print_predictions(frame: Any, *, title: str) -> None:
    from rich.table import Table

    table = Table(title=title)
    for column in frame.columns:
        left = not any(isinstance(v, float) for v in frame[column])
        table.add_column(str(column), overflow="fold", justify="left" if left else "right")
    for row in frame.itertuples(index=False):
        cells = [f"{v:.4f}" if isinstance(v, float) else str(v) for v in row]
        cells[0] = cells[0] if len(cells[0]) <= 80 else cells[0][:79] + "…"
        table.add_row(*cells)
    out.print(table)
