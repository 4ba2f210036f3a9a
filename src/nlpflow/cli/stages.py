"""The stage runner's commands: `nlpflow params`, `nlpflow stage NAME` (what dvc.yaml calls),
`nlpflow train-node` (another machine's share of a multi-node train stage) and
`nlpflow dvc-yaml` (dvc.yaml from the stage table).

    nlpflow params --set train.epochs=1
    nlpflow stage preprocess
    nlpflow train-node
    nlpflow dvc-yaml --check
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from nlpflow.cli.common import ConfigOption, SetOption, load_project, out
from nlpflow.config.settings import load_settings
from nlpflow.pipeline.stages import STAGE_NAMES


def params(set_: SetOption = None, config: ConfigOption = None) -> None:
    """Validate params.yaml (plus configs and overrides) and print the result."""
    import yaml

    _, loaded = load_project(set_, config)
    out.print(yaml.safe_dump(loaded.to_dict(), sort_keys=False), end="")


def stage(name: Annotated[str, typer.Argument(help="|".join(STAGE_NAMES))],
          set_: SetOption = None, config: ConfigOption = None) -> None:  # fmt: skip
    """Run one pipeline stage inside the pipeline's MLflow run (used by dvc.yaml)."""
    from nlpflow.pipeline.runs import make_context, run_cli_stage
    from nlpflow.pipeline.stages import get_stage

    tracked = get_stage(name).tracked  # unknown names fail before anything is opened
    settings, loaded = load_project(set_, config)
    show_library_lines()
    report = run_cli_stage(name, make_context(settings.root, loaded, settings, tracked=tracked))
    from rich.markup import escape

    out.print(f"[green]✓[/green] {name}: {escape(_summary(report))}", highlight=False)


def train_node() -> None:
    """This machine's share of a multi-node training that the train stage leads elsewhere.

    For train.distributed.nnodes > 1: waits for the lead's job in NLPFLOW_CHECKPOINT_DIR (a
    folder every node mounts), meets it at NLPFLOW_RDZV_ENDPOINT and trains on the lead's data
    and params. The lead writes the model and logs to MLflow; this command needs no params,
    data or tracking of its own."""
    from nlpflow.pipeline.paths import CHECKPOINTS
    from nlpflow.training.distributed import Rendezvous, join

    settings = load_settings()
    shared = settings.resolved_checkpoint_dir(settings.root / CHECKPOINTS)
    job = join(Rendezvous.from_settings(settings, shared=shared),
               say=lambda line: out.print(line, markup=False, highlight=False))  # fmt: skip
    out.print(f"[green]✓[/green] train-node: trained {job['nproc_per_node']} of "
              f"{job['nnodes'] * job['nproc_per_node']} processes; the lead node holds the model",
              highlight=False)  # fmt: skip


# The stage list comes from the table, so a new stage shows up here by itself.
stage.__doc__ = (
    "Run one pipeline stage inside the pipeline's MLflow run (used by dvc.yaml).\n\n"
    f"Stages, in pipeline order: {', '.join(STAGE_NAMES)}."
)


def dvc_yaml(
    check: Annotated[
        bool,
        typer.Option(
            "--check", help="Change nothing: exit 1 with a diff when dvc.yaml is out of date."
        ),
    ] = False,
    path: Annotated[
        Path | None, typer.Option(help="The file (default: dvc.yaml in the project folder).")
    ] = None,
) -> None:
    """Write dvc.yaml from the stage table: each stage's command, data, params, outputs and the
    code files it imports, so `dvc repro` and `nlpflow run` re-run the same stages on a change."""
    from nlpflow.pipeline import dvcyaml

    target = path or load_settings().root / "dvc.yaml"
    if not check:
        changed = dvcyaml.write(target)
        out.print(f"{target} {'written' if changed else 'unchanged'}", markup=False)
        return
    diff = dvcyaml.check(target)
    if diff is None:
        out.print(f"{target} is up to date with the stage table", markup=False)
        return
    typer.echo(diff, nl=False)  # as it is: no markup in YAML's [lists]
    out.print(f"{target} is out of date: run `nlpflow dvc-yaml`", markup=False)
    raise typer.Exit(1)


def show_library_lines() -> None:
    """The library's INFO lines (training progress: nlpflow.training.progress) on stderr. The library
    adds no handler, and `nlpflow stage` (what dvc repro runs) has no Prefect to show them."""
    from nlpflow.training.progress import show_info_lines

    logger = show_info_lines()
    if not logger.hasHandlers():  # one that shows them already (the root's) would duplicate
        handler = logging.StreamHandler()  # stderr: stdout holds the stage's result line
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)


def _summary(report: Any) -> str:
    """A stage's report in one line for people (`dvc repro` prints one per stage): a few chosen
    fields per report type; a report type not listed shows its first plain fields."""
    fields = report.model_dump(mode="json")
    pick = _SUMMARIES.get(type(report).__name__)
    if pick is None:
        plain = [(k, v) for k, v in fields.items() if isinstance(v, str | int | float)]
        return ", ".join(f"{k} {v}" for k, v in plain[:4])
    return ", ".join(part for part in pick(fields) if part)


def _score(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _best(history: list[dict[str, float]], key: str) -> float | None:
    """The best epoch's score: the epoch whose weights the model keeps."""
    return max((row[key] for row in history if key in row), default=None)


def _val_f1(history: list[dict[str, float]]) -> str:
    """The validation F1 a family reports: val_macro_f1 (classification), val_entity_f1
    (named entities)."""
    keys = {k for row in history for k in row if k.startswith("val_") and k.endswith("f1")}
    return min(keys, key=lambda k: (k != "val_macro_f1", k), default="val_macro_f1")


def _counts(counts: dict[str, int]) -> str:
    return f"{sum(counts.values())} ({', '.join(f'{k} {v}' for k, v in counts.items())})"


def _warnings(warnings: list[str]) -> str:
    return f"{len(warnings)} warning{'s' if len(warnings) > 1 else ''}" if warnings else ""


def _sampled(info: dict[str, Any] | None) -> str:
    """data.sample's rows kept of each sampled split, e.g. "a sample (train 2000/67349)"."""
    if not info:
        return ""
    kept = [f"{s} {v['kept']}/{v['rows']}" for s, v in info.items() if s != "seed"]
    return f"a sample ({', '.join(kept)})"


_SUMMARIES: dict[str, Any] = {  # report type -> fields -> the parts of its line
    "GatherReport": lambda r: [
        f"rows {_counts(r['rows'])}",
        f"{len(r['labels'])} labels",
        _sampled(r.get("sampled")),
    ],
    "ValidationReport": lambda r: [
        f"{sum(c['success'] for c in r['checks'])}/{len(r['checks'])} checks passed",
        _warnings(r.get("warnings") or []),
        f"{r.get('quarantined_rows') or sum(r['quarantined'].values())} rows quarantined"
        if r["quarantined"]
        else "",
        f"{r['seconds']:.1f} s",
    ],
    "PreprocessReport": lambda r: [
        f"{sum(r['rows'].values())} texts",
        "kept as written (the task's targets point into it)"
        if r.get("kept_as_written")
        else "from cache"
        if r["cached"]
        else f"{r['texts_per_second']:.0f} texts/s",
        f"{r['seconds']:.1f} s",
    ],
    "TrainReport": lambda r: [
        r["family"],
        f"{r['epochs']} epoch{'s' * (r['epochs'] != 1)}",
        f"resumed from {Path(r['resumed_from']).name}" if r["resumed_from"] else "",
        f"{_val_f1(r['history']).replace('_', ' ', 1)} {_score(_best(r['history'], _val_f1(r['history'])))}",
        f"{r['seconds']:.1f} s",
    ],
    "EvaluateReport": lambda r: [
        f"test {r['main_metric']} {_score(r['metrics'].get(r['main_metric']))}"
        + (f" [{_score(r['ci']['low'])}, {_score(r['ci']['high'])}]" if r["ci"] else ""),
        f"baseline {_score(r['baseline'].get(r['main_metric']))}" if r["baseline"] else "",
        f"behavioural {r['behavioural']['pass_rate']:.0%}"
        if r["behavioural"].get("pass_rate") is not None
        else "",
    ],
    "RegistrationReport": lambda r: [
        f"{r['model_name']} v{r['version']} ({', '.join(r['aliases']) or 'no alias'})"
        if r["version"] is not None
        else f"{r['model_name']} not registered ({r.get('not_registered')})",
        f"{r['metric']} {_score(r['score'])}",
        ("promoted: " if r["promoted"] else "not promoted: ") + r["reasons"],
        r.get("name_line", ""),  # which name, why, and how to choose another
    ],
}
