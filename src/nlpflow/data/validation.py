"""validate: check the gathered data with the Great Expectations suite of the `gx/` project.

The suite is written from params (nlpflow.data.gx_project keeps it in `gx/`) and run through the
project's Checkpoint; the GX results, `summary.json` and `report.html` (one self-contained page
to read, nlpflow.data.validation_report) go to the output folder. Each check has a policy: `fail`
stops the run (DataValidationError naming the check with a few offending rows); `quarantine`
moves the offending rows to the quarantine folder with a reason per row, validates the rest
again, and goes on. The gathered input is never changed: the rows that pass are written to a
separate folder, which preprocess reads.

Drift: label shares and the token-length histogram are compared with the profile of the last
accepted snapshot (saved after each run that passes), by total variation distance.

Data larger than memory: with runtime.max_memory_mb (or splits larger than half the free
memory) the splits are read and checked chunk by chunk, the data-wide checks from exact merged
counts, with the same results (nlpflow.data.streaming.validation).

    nlpflow stage validate
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from nlpflow.config.nlp_tasks import DEFAULT_NLP_TASK
from nlpflow.config.params import DataParams, RuntimeParams, ValidateParams
from nlpflow.data.check_results import (
    CheckResult as CheckResult,
)
from nlpflow.data.check_results import (
    ValidationReport,
    check_results,
    format_failures,
    frame_evidence,
    kept_splits,
    quarantine_rows,
    run_checks,
    warning_text,
    with_fixes,
    write_quarantine,
)
from nlpflow.data.checks import Check, result_format
from nlpflow.data.splits import SPLITS, load_splits, split_paths
from nlpflow.data.suites import Suite, streaming_role, suite_role
from nlpflow.errors import DataValidationError

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("nlpflow.validate")

REPORT_HTML = "report.html"


def load_profile(path: Path | None) -> dict[str, Any] | None:
    if path is None or not path.exists():
        return None
    try:
        profile: dict[str, Any] = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataValidationError(
            f"the accepted-snapshot profile {path} is not valid JSON ({exc}); "
            "delete it to start drift checks afresh from the next accepted run."
        ) from None
    return profile


def validate(
    *,
    src: Path,
    dst: Path,
    params: ValidateParams,
    data: DataParams,
    gx_dir: Path | None = None,
    accepted: Path | None = None,
    quarantine: Path | None = None,
    reference: Path | None = None,
    task: str = DEFAULT_NLP_TASK,
    runtime: RuntimeParams | None = None,
) -> ValidationReport:
    """Validate `src/*.parquet` with the suite of the GX project in `gx_dir` (default: a
    project of its own under `dst/gx`); write `dst/report.html`, `dst/summary.json` and the
    run's GX results under `dst`, whether the data passes or not. Rows that pass go to
    `accepted/` (when given), quarantined rows to `quarantine/` (default `dst/quarantine`).
    `reference` is the accepted-snapshot profile: drift is measured against it, and it is
    replaced after a run that passes. The suite, its table and the profile are NLP task
    `task`'s (its Suite module, nlpflow.data.suites). With `runtime` asking for it (or splits
    too large for memory) the splits are validated chunk by chunk, with the same results
    (nlpflow.data.streaming.validation)."""
    from nlpflow.data.gx_project import checkpoint, open_project, suite_name, sync_suite

    start = time.perf_counter()
    role = suite_role(task)
    checks = role.build_checks(params)
    context = open_project(gx_dir or dst / "gx", dst)
    suite, updated = sync_suite(context, [c.expectation for c in checks], suite_name(task))
    runner = checkpoint(context, suite, result_format())
    ref = load_profile(reference)
    folder = quarantine or dst / "quarantine"
    rows = _chunk_rows(src, runtime, task)
    stream = streaming_role(task)
    if rows is not None and stream is not None:
        from nlpflow.data.streaming.validation import validate_chunks

        streamed = validate_chunks(
            src, rows=rows, suite=stream, runner=runner, checks=checks, params=params,
            data=data, reference=ref, quarantine=folder,
        )  # fmt: skip
        streamed.save_results(dst / "results")
        done: Validated = streamed
    else:
        done = _validate_whole(
            src, role=role, runner=runner, checks=checks, params=params, data=data,
            reference=ref, quarantine=folder,
        )  # fmt: skip
    from_source = load_source(src, data).get("split_from_source")
    checks_out = with_fixes(
        done.checks, split_from_source=from_source,
        subphrases_grouped=data.split.group_subphrases,
    )  # fmt: skip
    warned = [warning_text(c) for c in checks_out if not c.success and c.policy == "warn"]
    for text in warned:
        log.warning("validate: %s", text)
    report = ValidationReport(
        success=all(c.success or c.policy == "warn" for c in checks_out), rows=done.rows,
        rows_gathered=done.gathered, quarantined_rows=done.quarantined_rows,
        label_counts=done.label_counts, allowed_labels=done.allowed, checks=checks_out,
        warnings=warned, split_from_source=from_source,
        quarantined=done.quarantined, quarantine_file=str(done.quarantine_file), reference=ref,
        suite_updated=updated, seconds=round(time.perf_counter() - start, 3),
        report_html=str(dst / REPORT_HTML), streamed=done.info or None,
    )  # fmt: skip
    _save_reports(report, dst, source=load_source(src, data))
    if not report.success:
        raise DataValidationError(format_failures(report))
    role.refuse_untrainable(report, data)
    if accepted is not None:
        done.write_accepted(accepted)
    if reference is not None:
        reference.parent.mkdir(parents=True, exist_ok=True)
        reference.write_text(json.dumps(done.profile, indent=2))
    return report


class Validated(Protocol):
    """What a run of the suite gives validate, in memory or chunk by chunk."""

    checks: list[CheckResult]
    rows: dict[str, int]
    gathered: dict[str, int]
    label_counts: dict[str, dict[str, int]]
    allowed: list[str]
    quarantined: dict[str, int]
    quarantined_rows: int
    quarantine_file: Path
    info: dict[str, Any]

    @property
    def profile(self) -> dict[str, Any]: ...

    def write_accepted(self, folder: Path) -> None: ...


def _chunk_rows(src: Path, runtime: RuntimeParams | None, task: str) -> int | None:
    """Rows per chunk, or None for the in-memory path (nlpflow.data.streaming.plan_chunks)."""
    from nlpflow.data.streaming import plan_chunks
    from nlpflow.data.streaming.parquet import bytes_per_row, parquet_rows
    from nlpflow.data.streaming.validation import VALIDATE_COST

    paths = list(split_paths(src).values())
    plan = plan_chunks(
        runtime, stage="validate", rows=sum(parquet_rows(p) for p in paths),
        bytes_per_row=bytes_per_row(paths), cost=VALIDATE_COST,
    )  # fmt: skip
    if plan is not None and streaming_role(task) is None:
        log.warning("validate: task %s is validated in memory (%s is ignored)", task, plan.why)
    return None if plan is None else plan.rows


@dataclass
class _Whole:
    """The in-memory run's outcome: the splits as frames."""

    checks: list[CheckResult]
    rows: dict[str, int]
    gathered: dict[str, int]
    label_counts: dict[str, dict[str, int]]
    allowed: list[str]
    quarantined: dict[str, int]
    quarantined_rows: int
    quarantine_file: Path
    splits: dict[str, pd.DataFrame]
    frame: pd.DataFrame
    role: Suite
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def profile(self) -> dict[str, Any]:
        return self.role.compute_profile(self.frame)

    def write_accepted(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for name, split in self.splits.items():
            split.to_parquet(folder / f"{name}.parquet", index=False)


def _validate_whole(
    src: Path,
    *,
    role: Suite,
    runner: Any,
    checks: list[Check],
    params: ValidateParams,
    data: DataParams,
    reference: dict[str, Any] | None,
    quarantine: Path,
) -> _Whole:
    """All splits in one frame, the suite run on it once (and again on what quarantine left)."""
    splits = load_splits(src)
    gathered = {s: len(splits[s]) for s in SPLITS}
    frame = role.build_frame(splits)
    allowed = role.allowed_labels(splits, data)
    suite_params = role.suite_params(splits, data, reference)
    results = run_checks(runner, frame, suite_params)
    moved = quarantine_rows(checks, results, params)
    quarantined: dict[str, int] = {}
    # written even when empty: the folder is a pipeline output, and an empty file says "none"
    quarantine_file = write_quarantine(frame, moved, quarantine)
    if moved:
        for row_checks in moved.values():
            for c in row_checks:
                quarantined[c.id] = quarantined.get(c.id, 0) + 1
        splits = kept_splits(frame, splits, set(moved))
        frame = role.build_frame(splits)  # what is left is validated again, as a whole
        results = run_checks(runner, frame, suite_params)
    evidence = frame_evidence(checks, results, frame, limit=params.show_examples)
    return _Whole(
        checks=check_results(checks, results, evidence, params=params, suite_params=suite_params),
        rows={s: len(splits[s]) for s in SPLITS}, gathered=gathered,
        label_counts={s: role.target_counts(splits[s]) for s in SPLITS}, allowed=allowed,
        quarantined=quarantined, quarantined_rows=len(moved), quarantine_file=quarantine_file,
        splits=splits, frame=frame, role=role,
    )  # fmt: skip


def load_source(src: Path, data: DataParams) -> dict[str, Any]:
    """What data this is: the source param, and the gather manifest's digest when there is one."""
    info: dict[str, Any] = {"source": data.source}
    manifest = src / "manifest.json"
    if manifest.is_file():
        gathered = json.loads(manifest.read_text(encoding="utf-8"))
        info |= {k: gathered[k] for k in ("source", "source_sha256", "format") if gathered.get(k)}
        if "split_from_source" in gathered:
            info["split_from_source"] = bool(gathered["split_from_source"])
    return info


def _save_reports(report: ValidationReport, dst: Path, *, source: dict[str, Any]) -> None:
    from nlpflow.data.validation_report import save_report

    # GX Data Docs are no longer built (nlpflow.data.gx_project says why); a site an older nlpflow
    # left here would still be logged to MLflow beside this run's report, showing another run.
    shutil.rmtree(dst / "data_docs", ignore_errors=True)
    (dst / "summary.json").write_text(
        json.dumps(report.model_dump(mode="json"), indent=2, default=str)
    )
    save_report(report, Path(report.report_html), source=source)
