"""Where the aliases point, and moving them: the champion by hand (promote, rollback, recorded
in the promotion log), and a registration undone when its run failed or was killed.

    move_champion(tracker, params, name=name, version=3, action="promote", by=actor(), reason="...")
    close_dead_runs(tracker, by="nlpflow doctor")

A read that fails for any reason but "not found" raises (RegistryUnavailableError, retryable):
read as "no alias", a registry that did not answer would let the gate skip every comparison,
or a withdrawal delete a real alias.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nlpflow.errors import RegistryError
from nlpflow.release.promotion_log import PromotionEvent, log_event, now, read_log
from nlpflow.tracking.refs import CHALLENGER, CHAMPION

if TYPE_CHECKING:
    from nlpflow.config.params import Params
    from nlpflow.tracking.tracker import Tracker

PREVIOUS = "nlpflow.previous_"  # + alias: the version it pointed at before this one


def champion_version(tracker: Tracker, name: str) -> int | None:
    """The version alias `champion` points at; None only when the model or the alias does not
    exist."""
    aliases = tracker.aliases(name, doing=f"looking up the champion of {name!r}")
    return (aliases or {}).get(CHAMPION)


def aliases_of(tracker: Tracker, name: str) -> dict[str, int | None]:
    """Where `champion` and `challenger` point (None: the alias or the model does not exist)."""
    aliases = tracker.aliases(name) or {}
    return {alias: aliases.get(alias) for alias in (CHAMPION, CHALLENGER)}


def _version_or_none(version: str | None) -> int | None:
    return int(version) if version else None


def move_champion(
    tracker: Tracker, params: Params, *, name: str, version: int, action: str, by: str, reason: str
) -> PromotionEvent:
    """Point `champion` at `version` by hand (promote, rollback), recording who and why."""
    if not reason.strip():
        raise RegistryError(f'{action} needs a reason: pass --reason "why this version".')
    if tracker.find_version(name, version) is None:
        raise RegistryError(
            f"model {name!r} has no version {version}: see `nlpflow registry history`."
        )
    before = champion_version(tracker, name)
    tracker.set_alias(name, CHAMPION, version)
    event = PromotionEvent(
        time=now(), action=action, model=name, version=version, decision="moved",
        champion_before=before, champion_after=version, by=by, reason=reason,
    )  # fmt: skip
    tags = {"by": by, "reason": reason, "at": event.time}
    tracker.set_version_tags(name, version, {f"champion.{action}.{k}": v for k, v in tags.items()})
    log_event(tracker, params, event)
    return event


def rollback_target(tracker: Tracker, params: Params, name: str) -> int:
    """The champion before the current one took over, from the promotion log."""
    current = champion_version(tracker, name)
    if current is None:
        raise RegistryError(f"model {name!r} has no champion to roll back.")
    for event in read_log(tracker, params, name):
        before = event.champion_before
        if event.champion_after == current and before is not None and before != current:
            return before
    raise RegistryError(
        f"the promotion log of {name!r} records no champion before version {current}: "
        "name one with `nlpflow registry rollback --to VERSION`."
    )


def withdraw_version(
    tracker: Tracker, name: str, version: int, *, run_id: str, restore: dict[str, int | None],
    reason: str,
) -> None:  # fmt: skip
    """Undo a registration whose run failed after it: give `champion` and `challenger` back
    to the versions in `restore` (or remove them) where they point at `version`, and delete
    the version. The logged model stays on the run, which says why in `registry.withdrawn`."""
    current = aliases_of(tracker, name)
    for alias, previous in restore.items():
        if current.get(alias) != version:
            continue
        if previous is None:
            tracker.delete_alias(name, alias)
        else:
            tracker.set_alias(name, alias, previous)
    tracker.delete_version(name, version)
    tracker.set_tags(run_id, {"registry.withdrawn": f"version {version} of {name}: {reason}"})


def close_dead_runs(tracker: Tracker, *, by: str) -> list[str]:
    """Close this project's runs whose process is gone as KILLED (tracking.close_stale_runs)
    and withdraw every version they registered: a run that did not finish keeps nothing in
    the registry, wherever it was killed. Returns the closed runs' ids."""
    from nlpflow.tracking.stale import close_stale_runs

    closed = [run.run_id for run in close_stale_runs(tracker, by=by)]
    for run_id in closed:
        for found in tracker.search_versions(f"run_id = '{run_id}'"):
            restore = {alias: _version_or_none(found.tags.get(f"{PREVIOUS}{alias}"))
                       for alias in (CHAMPION, CHALLENGER)}  # fmt: skip
            withdraw_version(tracker, found.name, found.version, run_id=run_id,
                             restore=restore, reason=f"its run was killed; withdrawn by {by}")  # fmt: skip
    return closed
