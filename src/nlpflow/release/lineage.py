"""Lineage of a registered version: where it came from, read back from MLflow alone.

A version records its run; the run records the code (git.commit, git.dirty), the data
(data.source_sha256 from gather, `dvc.<path>` md5s from dvc.lock at register time), the params
and the orchestrator (nlpflow.runner, prefect.flow_run_id), and its MLflow datasets (name and
digest of each split); the version itself holds the gate's decision, test_set_sha256 and the
logged model it was registered from. `load_lineage` gathers all of it into one `Lineage`.

    nlpflow lineage nlpflow-support-tickets@champion [--json]
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel

from nlpflow.config.dvcexp import EXP_BASELINE_TAG, EXP_NAME_TAG
from nlpflow.errors import RegistryError

if TYPE_CHECKING:
    from nlpflow.config.settings import Settings
    from nlpflow.tracking.refs import ModelRef
    from nlpflow.tracking.tracker import Tracker

DVC_TAG = "dvc."
NOT_HASHES = (EXP_NAME_TAG, EXP_BASELINE_TAG)  # a DVC experiment's name and commit


class VersionLineage(BaseModel):
    name: str
    version: int
    aliases: list[str]
    created: str | None  # ISO 8601, UTC
    gate_decision: str | None  # tag gate.decision: promoted | rejected; None if never gated
    gate_reasons: str | None
    logged_model_id: str | None = None  # the MLflow logged model it was registered from


class RunLineage(BaseModel):
    run_id: str
    experiment_id: str
    experiment: str | None  # None if the experiment was deleted
    status: str
    start: str | None
    end: str | None  # None while the run is open


class CodeLineage(BaseModel):
    git_commit: str | None  # "none" when the project was not a git repo
    git_dirty: bool | None  # tracked files differed from the commit when the run opened


class DatasetLineage(BaseModel):
    name: str
    digest: str


class DataLineage(BaseModel):
    source_sha256: str | None  # tag data.source_sha256 (gather's hash of the source)
    dvc: dict[str, str]  # path -> md5 of the data and model outputs in dvc.lock
    test_set_sha256: str | None  # version tag: the test rows the gate scored
    datasets: dict[str, DatasetLineage] = {}  # the run's MLflow datasets by context (train, ...)


class OrchestrationLineage(BaseModel):
    runner: str | None  # tag nlpflow.runner: prefect | dvc
    prefect_flow_run_id: str | None


class Lineage(BaseModel):
    model: VersionLineage
    run: RunLineage | None  # None for a version registered without a run
    code: CodeLineage
    data: DataLineage
    params: dict[str, str]  # the run's params, flattened (dotted keys), sorted
    orchestration: OrchestrationLineage


def resolve_version(spec: str | None, settings: Settings) -> ModelRef:
    """The version `spec` names (NAME@ALIAS, NAME/VERSION, NAME, or None for the default
    model's champion), resolved as `nlpflow serve` does (nlpflow.tracking.refs); a name, alias
    or version the registry lacks is a RegistryError."""
    from nlpflow.tracking.refs import resolve_spec

    return resolve_spec(spec, settings, option="the NAME@ALIAS or NAME/VERSION argument")


def _iso(millis: int | None) -> str | None:
    if not millis:
        return None
    return datetime.fromtimestamp(millis / 1000, UTC).isoformat(timespec="seconds")


def _flag(value: str | None) -> bool | None:
    return None if value is None else value.lower() == "true"


def load_lineage(tracker: Tracker, name: str, version: int) -> Lineage:
    """Everything MLflow records about where version `version` of `name` came from."""
    found = tracker.find_version(name, version)
    if found is None:
        raise RegistryError(
            f"model {name!r} has no version {version} in {tracker.uri}: see "
            "`nlpflow registry history`."
        )
    aliases = tracker.aliases(name) or {}
    vtags = found.tags
    model = VersionLineage(
        name=name, version=version,
        aliases=sorted(a for a, v in aliases.items() if v == version),
        created=_iso(found.created),
        gate_decision=vtags.get("gate.decision"), gate_reasons=vtags.get("gate.reasons"),
        logged_model_id=found.model_id,
    )  # fmt: skip
    run, tags, params, datasets = _run_lineage(tracker, found.run_id)
    dvc = {
        k.removeprefix(DVC_TAG): v
        for k, v in sorted(tags.items())
        if k.startswith(DVC_TAG) and k not in NOT_HASHES
    }
    return Lineage(
        model=model,
        run=run,
        code=CodeLineage(git_commit=tags.get("git.commit"), git_dirty=_flag(tags.get("git.dirty"))),
        data=DataLineage(
            source_sha256=tags.get("data.source_sha256"),
            dvc=dvc,
            test_set_sha256=vtags.get("test_set_sha256"),
            datasets=datasets,
        ),
        params=dict(sorted(params.items())),
        orchestration=OrchestrationLineage(
            runner=tags.get("nlpflow.runner"), prefect_flow_run_id=tags.get("prefect.flow_run_id")
        ),
    )


def _run_lineage(
    tracker: Tracker, run_id: str | None
) -> tuple[RunLineage | None, dict[str, str], dict[str, str], dict[str, DatasetLineage]]:
    """The run's summary, tags, params and datasets by context; empty when the version names
    no run."""
    if not run_id:
        return None, {}, {}, {}
    run = tracker.find_run(run_id)
    if run is None:
        raise RegistryError(
            f"the version's run {run_id} is not in {tracker.uri} (deleted, or another store): "
            "point NLPFLOW_TRACKING_URI at the store that holds it."
        )
    summary = RunLineage(
        run_id=run_id, experiment_id=run.experiment_id,
        experiment=tracker.experiment_name(run.experiment_id), status=run.status,
        start=_iso(run.start_time), end=_iso(run.end_time),
    )  # fmt: skip
    datasets = {
        found.context: DatasetLineage(name=found.name, digest=found.digest)
        for found in run.datasets
    }
    return summary, run.tags, run.params, datasets
