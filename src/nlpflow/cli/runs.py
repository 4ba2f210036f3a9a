"""Past runs: `nlpflow doctor` (what killed runs left behind) and `nlpflow reproduce RUN_ID`.

nlpflow doctor --dry-run
nlpflow reproduce 0123456789abcdef --tolerance 1e-6
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from nlpflow.cli.common import console, out
from nlpflow.config.settings import load_settings


def doctor(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only report: change nothing.")
    ] = False,
) -> None:
    """Find what killed runs left behind and repair what is safe: close this project's MLflow
    runs whose process is gone as KILLED (reason in tag nlpflow.closed_reason), drop stale
    markers. Reports the lock's holder, live runs and other hosts' runs, never touching them."""
    from rich.markup import escape

    from nlpflow.pipeline.doctor import diagnose

    found = diagnose(load_settings(), repair=not dry_run)
    out.print(f"[bold]nlpflow doctor[/bold] {escape(found.project)}")
    for item in found.findings:
        mark = "fixed" if item.repaired else item.state
        out.print(f"  {item.what:7} {mark:10} {escape(item.detail)}", highlight=False)
    if dry_run and found.needs_repair:
        out.print("  run `nlpflow doctor` (without --dry-run) to repair")


def reproduce(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="The MLflow run to rebuild.")],
    tolerance: Annotated[
        float, typer.Option(help="Largest |reproduced - original| accepted per metric.")
    ] = 0.0,
    keep: Annotated[bool, typer.Option("--keep", help="Keep the temporary worktree.")] = False,
    allow_dirty: Annotated[
        bool, typer.Option("--allow-dirty", help="Reproduce a run made from uncommitted code.")
    ] = False,
    remote: Annotated[
        str | None, typer.Option(help="DVC remote URL to pull from (default: the run's).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The comparison as JSON.")] = False,
) -> None:
    """Rebuild a run from its MLflow record (commit, params, dvc.lock, data from the DVC remote)
    in a temporary git worktree, run `dvc repro` there, and compare metrics (exit 1 if any
    differs by more than --tolerance)."""
    from nlpflow.pipeline.reproduce import reproduce as rebuild

    def progress(line: str) -> None:  # on stderr: stdout holds the table (or the JSON)
        console.print(line, highlight=False, markup=False)

    found = rebuild(
        run_id, settings=load_settings(), tolerance=tolerance, keep=keep,
        allow_dirty=allow_dirty, remote_url=remote, progress=progress,
    )  # fmt: skip
    typer.echo(found.model_dump_json(indent=2) if as_json else _reproduction_text(found))
    if not found.within:
        raise typer.Exit(1)


def _reproduction_text(found: Any) -> str:
    def show(value: Any) -> str:
        return "-" if value is None else f"{value:.6g}" if isinstance(value, float) else str(value)

    width = max(len("metric"), *(len(row.metric) for row in found.metrics))
    lines = [f"{'metric':{width}}  {'original':>12}  {'reproduced':>12}  {'diff':>10}"]
    for row in found.metrics:
        diff = "0" if row.diff == 0 else "-" if row.diff is None else f"{row.diff:+.3g}"
        mark = "" if row.within else "  <- differs"
        lines.append(
            f"{row.metric:{width}}  {show(row.original):>12}  {show(row.reproduced):>12}  {diff:>10}{mark}"
        )
    off = sum(not row.within for row in found.metrics)
    verdict = "reproduced" if found.within else f"NOT reproduced: {off} metric(s) differ"
    lines.append(
        f"run {found.run_id} at {found.commit[:12]}: {verdict} (tolerance {found.tolerance:g})"
    )
    if found.worktree:
        lines.append(f"worktree kept: {found.worktree} (git worktree remove --force it when done)")
    return "\n".join(lines)
