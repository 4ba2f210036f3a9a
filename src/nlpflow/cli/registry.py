"""The registry's commands: `nlpflow registry history|promote|rollback` and `nlpflow lineage`.

nlpflow registry history
nlpflow registry promote 3 --reason "fixes the date bug"
nlpflow registry rollback --reason "v4 misroutes refunds"
nlpflow lineage nlpflow-support-tickets@champion --json
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from nlpflow.cli.common import ConfigOption, default_model, load_project, out
from nlpflow.config.settings import load_settings

registry_app = typer.Typer(
    no_args_is_help=True, help="Show the promotion log; move the champion by hand (who and why)."
)
ModelName = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="Registered model (default: NLPFLOW_REGISTERED_MODEL, else params "
        "register.model_name, else nlpflow- + the data's name).",
    ),
]
Reason = Annotated[str, typer.Option("--reason", help="Why: recorded in the promotion log.")]
By = Annotated[
    str | None, typer.Option("--by", help="Who (default: $NLPFLOW_USER, else the login name).")
]


def _registry(model: str | None, configs: list[Path] | None) -> tuple[str, Any, Any]:
    """The model the command is about, the params and the tracker."""
    from nlpflow.tracking.tracker import Tracker

    settings, loaded = load_project(None, configs)
    return default_model(model, settings, configs), loaded, Tracker(settings)


@registry_app.command("history")
def registry_history(
    model: ModelName = None,
    limit: Annotated[int, typer.Option(help="Newest events shown.")] = 20,
    config: ConfigOption = None,
) -> None:
    """The champion now, and the promotion log: every gate decision and manual move."""
    from rich.table import Table

    from nlpflow.release.registry import CHALLENGER, CHAMPION, read_log

    name, loaded, tracker = _registry(model, config)
    found = tracker.aliases(name) or {}  # None: no such model yet
    aliases = {alias: found.get(alias, "-") for alias in (CHAMPION, CHALLENGER)}
    out.print(f"{name}: champion v{aliases[CHAMPION]}, challenger v{aliases[CHALLENGER]}")
    events = read_log(tracker, loaded, name, limit=limit)
    if not events:
        out.print("The promotion log is empty: no version has been registered yet.")
        return
    table = Table("time (UTC)", "action", "version", "decision", "champion", "by", "reason")
    for e in events:
        move = f"v{e.champion_before or '-'} -> v{e.champion_after or '-'}"
        table.add_row(e.time, e.action, str(e.version), e.decision, move, e.by, e.reason)
    out.print(table)


@registry_app.command("promote")
def registry_promote(
    version: Annotated[int, typer.Argument(help="The version to make champion.")],
    reason: Reason,
    by: By = None,
    model: ModelName = None,
    config: ConfigOption = None,
) -> None:
    """Make VERSION champion by hand, past the gate; recorded with who and why."""
    from nlpflow.release.registry import actor, move_champion

    name, loaded, tracker = _registry(model, config)
    event = move_champion(
        tracker, loaded, name=name, version=version,
        action="promote", by=actor(by), reason=reason,
    )  # fmt: skip
    out.print(
        f"champion of {event.model}: v{event.champion_before} -> v{event.version} ({event.by})"
    )


@registry_app.command("rollback")
def registry_rollback(
    reason: Reason,
    to: Annotated[
        int | None, typer.Option(help="Version to return to (default: the previous champion).")
    ] = None,
    by: By = None,
    model: ModelName = None,
    config: ConfigOption = None,
) -> None:
    """Give the champion alias back to the previous champion (or --to VERSION)."""
    from nlpflow.release.registry import actor, move_champion, rollback_target

    name, loaded, tracker = _registry(model, config)
    target = to if to is not None else rollback_target(tracker, loaded, name)
    event = move_champion(
        tracker, loaded, name=name, version=target, action="rollback", by=actor(by), reason=reason
    )
    out.print(f"champion of {name}: v{event.champion_before} -> v{event.version} ({event.by})")


def lineage(
    spec: Annotated[
        str | None,
        typer.Argument(
            metavar="NAME@ALIAS|NAME/VERSION",
            help="The version (default: the project's registered model@champion, as "
            "`nlpflow registry history` names it).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The lineage as JSON.")] = False,
    config: ConfigOption = None,
) -> None:
    """Where a registered version came from: its run, git commit, data hashes, params, and the
    Prefect flow run, all read back from MLflow."""
    from nlpflow.release.lineage import load_lineage, resolve_version
    from nlpflow.tracking.tracker import Tracker

    settings = load_settings()
    ref = resolve_version(default_model(spec, settings, config), settings)
    found = load_lineage(Tracker(settings), ref.name, ref.version)
    # Plain echo, not rich: hashes, params and reasons are printed as stored (no markup, emoji).
    typer.echo(found.model_dump_json(indent=2) if as_json else _lineage_text(found))


def _lineage_text(found: Any) -> str:
    m, run, code, data = found.model, found.run, found.code, found.data
    dirty = {True: " (dirty: uncommitted changes)", False: " (clean)", None: ""}[code.git_dirty]
    rows = [
        ("model", f"{m.name} version {m.version}"),
        ("aliases", ", ".join(f"@{a}" for a in m.aliases) or "none"),
        ("created", m.created or "-"),
        ("gate", m.gate_decision or "not gated"),
        *([("gate reasons", m.gate_reasons)] if m.gate_reasons else []),
        ("run", run.run_id if run else "none recorded"),
        *([("experiment", f"{run.experiment or '(deleted)'} (id {run.experiment_id})"),
           ("status", run.status), ("started", run.start or "-"), ("ended", run.end or "-")]
          if run else []),
        ("git commit", f"{code.git_commit or 'not recorded'}{dirty}"),
        ("data source sha256", data.source_sha256 or "not recorded"),
        ("test set sha256", data.test_set_sha256 or "not recorded"),
        ("prefect flow run", _flow_run(found.orchestration)),
    ]  # fmt: skip
    lines = [f"{key:20} {value}" for key, value in rows]
    if data.dvc:
        width = max(map(len, data.dvc))
        lines.append(f"dvc.lock md5 ({len(data.dvc)})")
        lines += [f"  {path:{width}} {md5}" for path, md5 in data.dvc.items()]
    else:
        lines.append("dvc.lock md5         none recorded (no dvc.lock when it was registered)")
    lines.append(f"params ({len(found.params)})")
    lines += [f"  {key} = {value}" for key, value in found.params.items()]
    return "\n".join(lines)


def _flow_run(orchestration: Any) -> str:
    if orchestration.prefect_flow_run_id:
        return str(orchestration.prefect_flow_run_id)
    if orchestration.runner == "dvc":
        return "none (run by dvc repro / nlpflow stage)"
    return "none recorded"
