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

    nlpflow stage validate
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from nlpflow.config.nlp_tasks import DEFAULT_NLP_TASK
from nlpflow.config.params import DataParams, ValidateParams
from nlpflow.data.check_results import (
    CheckResult as CheckResult,
)
from nlpflow.data.check_results import (
    ValidationReport,
    check_results,
    format_failures,
    kept_splits,
    quarantine_rows,
    run_checks,
    write_quarantine,
)
from nlpflow.data.checks import RESULT_FORMAT
from nlpflow.data.splits import SPLITS, load_splits
from nlpflow.data.suites import suite_role
from nlpflow.errors import DataValidationError

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
) -> ValidationReport:
    """Validate `src/*.parquet` with the suite of the GX project in `gx_dir` (default: a
    project of its own under `dst/gx`); write `dst/report.html`, `dst/summary.json` and the
    run's GX results under `dst`, whether the data passes or not. Rows that pass go to
    `accepted/` (when given), quarantined rows to `quarantine/` (default `dst/quarantine`).
    `reference` is the accepted-snapshot profile: drift is measured against it, and it is
    replaced after a run that passes. The suite, its table and the profile are NLP task
    `task`'s (its Suite module, nlpflow.data.suites)."""
    from nlpflow.data.gx_project import checkpoint, open_project, suite_name, sync_suite

    start = time.perf_counter()
    role = suite_role(task)
    splits = load_splits(src)
    gathered = {s: len(splits[s]) for s in SPLITS}
    frame = role.build_frame(splits)
    allowed = role.allowed_labels(splits, data)
    checks = role.build_checks(params)
    context = open_project(gx_dir or dst / "gx", dst)
    suite, updated = sync_suite(context, [c.expectation for c in checks], suite_name(task))
    runner = checkpoint(context, suite, RESULT_FORMAT)
    ref = load_profile(reference)
    suite_params = role.suite_params(splits, data, ref)
    results = run_checks(runner, frame, suite_params)
    moved = quarantine_rows(checks, results, params)
    quarantined: dict[str, int] = {}
    # written even when empty: the folder is a pipeline output, and an empty file says "none"
    quarantine_file = write_quarantine(frame, moved, quarantine or dst / "quarantine")
    if moved:
        for row_checks in moved.values():
            for c in row_checks:
                quarantined[c.id] = quarantined.get(c.id, 0) + 1
        splits = kept_splits(frame, splits, set(moved))
        frame = role.build_frame(splits)  # what is left is validated again, as a whole
        results = run_checks(runner, frame, suite_params)
    checks_out = check_results(checks, results, frame, params=params, suite_params=suite_params)
    report = ValidationReport(
        success=all(c.success for c in checks_out), rows={s: len(splits[s]) for s in SPLITS},
        rows_gathered=gathered, quarantined_rows=len(moved),
        label_counts={s: role.target_counts(splits[s]) for s in SPLITS},
        allowed_labels=allowed, checks=checks_out, quarantined=quarantined,
        quarantine_file=str(quarantine_file), reference=ref,
        suite_updated=updated, seconds=round(time.perf_counter() - start, 3),
        report_html=str(dst / REPORT_HTML),
    )  # fmt: skip
    _save_reports(report, dst, source=load_source(src, data))
    if not report.success:
        raise DataValidationError(format_failures(report))
    role.refuse_untrainable(report, data)
    if accepted is not None:
        accepted.mkdir(parents=True, exist_ok=True)
        for name, split in splits.items():
            split.to_parquet(accepted / f"{name}.parquet", index=False)
    if reference is not None:
        reference.parent.mkdir(parents=True, exist_ok=True)
        reference.write_text(json.dumps(role.compute_profile(frame), indent=2))
    return report


def load_source(src: Path, data: DataParams) -> dict[str, Any]:
    """What data this is: the source param, and the gather manifest's digest when there is one."""
    info: dict[str, Any] = {"source": data.source}
    manifest = src / "manifest.json"
    if manifest.is_file():
        gathered = json.loads(manifest.read_text(encoding="utf-8"))
        info |= {k: gathered[k] for k in ("source", "source_sha256", "format") if gathered.get(k)}
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
