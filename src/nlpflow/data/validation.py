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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel

from nlpflow.data.gather import SPLITS, load_splits
from nlpflow.errors import DataValidationError
from nlpflow.config.params import DataParams, ValidateParams
from nlpflow.data.text import label_key, normalize_text

ROW_ID = "row_id"
REPORT_HTML = "report.html"
LENGTH_BIN = "length_bin"


class CheckResult(BaseModel):
    id: str
    check: str
    expectation: str
    policy: str = "fail"
    success: bool
    unexpected_count: int = 0
    unexpected_percent: float | None = None  # GX's: of the non-null values checked
    by_split: dict[str, int] = {}  # offending rows per split
    observed: Any = None
    details: dict[str, Any] = {}  # e.g. a drift check's shares and their change
    examples: list[dict[str, Any]] = []


class ValidationReport(BaseModel):
    success: bool
    rows: dict[str, int]  # rows after quarantine (what goes on if the checks pass), per split
    rows_gathered: dict[str, int] = {}  # rows read, per split, before any quarantine
    label_counts: dict[str, dict[str, int]] = {}  # split -> label -> rows after quarantine
    allowed_labels: list[str]
    checks: list[CheckResult]
    quarantined: dict[str, int] = {}  # rows moved to quarantine, per check id
    quarantined_rows: int = 0  # distinct rows moved (a row can break several checks)
    quarantine_file: str
    reference: dict[str, Any] | None = None  # the accepted profile drift was measured against
    suite_updated: bool = False  # the gx/ suite file was rewritten from params in this run
    warnings: list[str] = []  # what the run should know but need not stop for
    seconds: float = 0.0
    # The page to open first: self-contained HTML, readable offline and in MLflow's viewer
    report_html: str

    @property
    def failed(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.success]


@dataclass(frozen=True)
class Check:
    id: str  # stable key, as in validate.policy
    name: str  # plain-language description, shown in reports and in the GX results
    expectation: Any


def length_bin(tokens: int) -> str:
    """Power-of-two bins of token counts: '0', '1', '2-3', '4-7', ... ."""
    if tokens <= 1:
        return str(max(tokens, 0))
    low = 1 << (int(tokens).bit_length() - 1)
    return f"{low}-{2 * low - 1}"


def _member(values: pd.Series, keys: pd.Series) -> pd.Series:
    """values.isin(keys), through Python objects: isin on Arrow strings took 4x longer."""
    return values.astype(object).isin(set(keys.dropna()))


def build_frame(splits: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """All splits in one table, plus the derived columns the cross-row checks need."""
    frame = pd.concat([df.assign(split=name) for name, df in splits.items()], ignore_index=True)
    frame.insert(0, ROW_ID, range(len(frame)))
    train = frame[frame["split"] == "train"]
    counts = train["label"].value_counts()
    frame["train_examples_of_label"] = frame["label"].map(counts).fillna(0).astype(int)
    largest = float(counts.max()) if len(counts) else 0.0
    examples = frame["train_examples_of_label"]
    frame["label_imbalance_ratio"] = (largest / examples.where(examples > 0)).fillna(0.0)
    variants = label_variants(frame["label"])
    frame["label_is_variant"] = (
        frame["label"].map(lambda label: isinstance(label, str) and label in variants).astype(bool)
    )
    text = frame["text"]
    frame["is_repeat"] = text.duplicated(keep="first") & text.notna()
    is_test = frame["split"] == "test"
    frame["test_text_in_train"] = is_test & _member(text, train["text"])
    is_train = frame["split"] == "train"
    normalized = text[is_train | is_test].map(normalize_text, na_action="ignore")  # not validation
    train_keys = normalized[is_train]
    frame["test_text_in_train_normalized"] = is_test & _member(normalized, train_keys).reindex(
        frame.index, fill_value=False
    )
    # a regex count runs in Arrow's C++ kernels; split().len() builds a list per row (5x slower)
    frame["text_tokens"] = text.fillna("").str.count(r"\S+").astype(int)
    frame[LENGTH_BIN] = frame["text_tokens"].map(length_bin)
    return frame


def label_variants(labels: pd.Series) -> dict[str, str]:
    """Each label spelled differently from another of the same label_key ("billing ",
    "Billing"), mapped to the spelling most rows use (ties: the first in sorted order)."""
    counts = labels.dropna().astype(str).value_counts()
    groups: dict[str, list[str]] = {}
    for label in sorted(counts.index):
        groups.setdefault(label_key(label), []).append(label)
    out: dict[str, str] = {}
    for spellings in groups.values():
        if len(spellings) > 1:
            keep = max(spellings, key=lambda s: (counts[s], -spellings.index(s)))
            out |= {s: keep for s in spellings if s != keep}
    return out


def build_checks(params: ValidateParams) -> list[Check]:
    """The suite, one Check per id; values that depend on the data are suite parameters
    (filled at run time), so the suite file only changes when params do."""
    import great_expectations.expectations as gxe

    import nlpflow.data.expectations as nx

    p = params
    checks = [
        Check("text_column", "column 'text' is present", gxe.ExpectColumnToExist(column="text")),
        Check("label_column", "column 'label' is present", gxe.ExpectColumnToExist(column="label")),
        Check("text_not_null", "no null text", gxe.ExpectColumnValuesToNotBeNull(column="text")),
        Check("label_not_null", "no null label", gxe.ExpectColumnValuesToNotBeNull(column="label")),
        Check("text_not_blank", "no empty or whitespace-only text",
              gxe.ExpectColumnValuesToNotMatchRegex(column="text", regex=r"^\s*$")),
        Check("label_in_set", "labels are in the allowed set",
              gxe.ExpectColumnValuesToBeInSet(column="label", value_set={"$PARAMETER": "allowed_labels"})),
        Check("label_variants", "no two labels differ only in case, spacing, Unicode form or control characters",
              gxe.ExpectColumnValuesToBeInSet(column="label_is_variant", value_set=[False])),
        Check("text_length", f"text length is {p.min_chars}..{p.max_chars} characters",
              gxe.ExpectColumnValueLengthsToBeBetween(column="text", min_value=p.min_chars, max_value=p.max_chars)),
        Check("class_min_count", f"each label has at least {p.min_examples_per_class} train examples",
              gxe.ExpectColumnValuesToBeBetween(column="train_examples_of_label", min_value=p.min_examples_per_class)),
        Check("duplicates", f"at most {p.max_duplicate_rate:.1%} of texts repeat an earlier text",
              gxe.ExpectColumnValuesToBeInSet(column="is_repeat", value_set=[False], mostly=1.0 - p.max_duplicate_rate)),
        Check("leak_exact", "no test text appears in train",
              gxe.ExpectColumnValuesToBeInSet(column="test_text_in_train", value_set=[False])),
        Check("leak_normalized", "no test text appears in train up to case, accents, spacing and punctuation",
              gxe.ExpectColumnValuesToBeInSet(column="test_text_in_train_normalized", value_set=[False])),
        Check("class_imbalance", f"largest class is at most {p.max_imbalance_ratio:g}x each class in train",
              gxe.ExpectColumnValuesToBeBetween(column="label_imbalance_ratio", max_value=p.max_imbalance_ratio)),
        Check("encoding_damage", f"at most {p.max_damaged_share:.2%} of texts hold U+FFFD or control characters",
              nx.ExpectColumnValuesToHaveNoEncodingDamage(column="text", mostly=1.0 - p.max_damaged_share)),
        Check("median_tokens", f"median length is at least {p.min_median_tokens} tokens",
              gxe.ExpectColumnMedianToBeBetween(column="text_tokens", min_value=p.min_median_tokens)),
        Check("p95_tokens", f"95th percentile length is at most {p.max_p95_tokens} tokens",
              gxe.ExpectColumnValuesToBeBetween(column="text_tokens", max_value=p.max_p95_tokens, mostly=0.95)),
        Check("p95_chars", f"95th percentile length is at most {p.max_p95_chars} characters",
              gxe.ExpectColumnValueLengthsToBeBetween(column="text", max_value=p.max_p95_chars, mostly=0.95)),
    ]  # fmt: skip
    if p.script is not None:
        checks.append(Check(
            "script", f"at least {p.min_script_share:.0%} of texts are mostly {p.script.title()} script",
            nx.ExpectColumnValuesToBeMostlyInScript(column="text", script=p.script.upper(), mostly=p.min_script_share),
        ))  # fmt: skip
    if p.max_label_drift is not None:
        checks.append(Check(
            "label_drift", f"label shares within {p.max_label_drift:g} TVD of the accepted snapshot",
            nx.ExpectColumnDistributionToStayNear(column="label", reference={"$PARAMETER": "accepted_labels"}, max_distance=p.max_label_drift),
        ))  # fmt: skip
    if p.max_length_drift is not None:
        checks.append(Check(
            "length_drift", f"length histogram within {p.max_length_drift:g} TVD of the accepted snapshot",
            nx.ExpectColumnDistributionToStayNear(column=LENGTH_BIN, reference={"$PARAMETER": "accepted_lengths"}, max_distance=p.max_length_drift),
        ))  # fmt: skip
    for check in checks:
        check.expectation.meta = {"nlpflow_check": check.id}
        check.expectation.description = check.name
    return checks


RESULT_FORMAT = {"result_format": "COMPLETE", "unexpected_index_column_names": [ROW_ID]}


def compute_profile(frame: pd.DataFrame) -> dict[str, Any]:
    """What drift is measured on: label shares and length-bin shares of all rows."""

    def shares(column: str) -> dict[str, float]:
        counts = frame[column].dropna().astype(str).value_counts(normalize=True)
        return {str(k): round(float(v), 6) for k, v in counts.sort_index().items()}

    return {"rows": len(frame), "labels": shares("label"), "lengths": shares(LENGTH_BIN)}


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


def _run(checkpoint: Any, frame: pd.DataFrame, suite_params: dict[str, Any]) -> dict[str, Any]:
    """Run the checkpoint; results keyed by check id (a user's own expectation by its type)."""
    result = checkpoint.run(
        batch_parameters={"dataframe": frame}, expectation_parameters=suite_params
    )
    outcome = next(iter(result.run_results.values()))
    by_check: dict[str, Any] = {}
    for res in outcome.results:  # GX does not keep suite order
        config = res.expectation_config
        key = (config.meta or {}).get("nlpflow_check") or f"user:{config.type}:{config.id}"
        by_check[key] = res
    return by_check


def _offending(result: Any) -> list[int]:
    return [int(row[ROW_ID]) for row in (result.result or {}).get("unexpected_index_list") or []]


def _quarantine_rows(
    checks: list[Check], results: dict[str, Any], params: ValidateParams
) -> dict[int, list[Check]]:
    """row id -> the quarantine-policy checks it breaks (even within a `mostly` tolerance:
    quarantine means these rows are not trained on)."""
    rows: dict[int, list[Check]] = {}
    for check in checks:
        if params.action(check.id) == "quarantine":
            for row in _offending(results[check.id]):
                rows.setdefault(row, []).append(check)
    return rows


def write_quarantine(frame: pd.DataFrame, rows: dict[int, list[Check]], folder: Path) -> Path:
    """The quarantined rows with the checks they broke, one JSON object a line."""
    folder.mkdir(parents=True, exist_ok=True)
    keep = [c for c in ("split", "source_row", "source_file", "text", "label") if c in frame]
    out = frame[frame[ROW_ID].isin(rows)].set_index(ROW_ID)[keep]
    out["checks"] = [[c.id for c in rows[i]] for i in out.index]
    out["reasons"] = [[c.name for c in rows[i]] for i in out.index]
    path = folder / "quarantined.jsonl"
    out.to_json(path, orient="records", lines=True, force_ascii=False)
    return path


def _kept_splits(
    frame: pd.DataFrame, splits: dict[str, pd.DataFrame], drop: set[int]
) -> dict[str, pd.DataFrame]:
    kept: dict[str, pd.DataFrame] = {}
    for name, original in splits.items():
        ids = frame.loc[(frame["split"] == name) & ~frame[ROW_ID].isin(drop), ROW_ID]
        offset = int(frame.loc[frame["split"] == name, ROW_ID].min()) if len(original) else 0
        kept[name] = original.iloc[(ids - offset).to_numpy()].reset_index(drop=True)
        if len(original) and kept[name].empty:
            raise DataValidationError(
                f"quarantine moved every {name} row: nothing is left to {name} on. "
                "See the quarantine file, fix the data or set the checks' policy to fail."
            )
    return kept


def _examples(frame: pd.DataFrame, result: Any, limit: int) -> list[dict[str, Any]]:
    ids = _offending(result)[:limit]
    rows = frame.set_index(ROW_ID).loc[ids, ["split", "source_row", "text", "label"]]
    return [
        {k: (v[:80] + "…" if isinstance(v, str) and len(v) > 80 else v) for k, v in row.items()}
        | {"row_id": int(i)}
        for i, row in zip(ids, rows.to_dict("records"), strict=True)
    ]


def _label_counts(split: pd.DataFrame) -> dict[str, int]:
    counts = split["label"].dropna().astype(str).value_counts().sort_index()
    return {str(k): int(v) for k, v in counts.items()}


def _by_split(split_of: pd.Series, rows: list[int]) -> dict[str, int]:
    counts = split_of.loc[rows].value_counts()
    return {str(s): int(counts[s]) for s in SPLITS if s in counts}


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers, so reports serialise as numbers, not strings."""
    return value.item() if hasattr(value, "item") else value


def _check_results(
    checks: list[Check],
    results: dict[str, Any],
    frame: pd.DataFrame,
    *,
    params: ValidateParams,
    allowed: list[str],
) -> list[CheckResult]:
    # the report names the allowed labels; the suite cannot, as they are a run-time parameter
    named = {c.id: c.name for c in checks} | {
        "label_in_set": f"labels are in the allowed set {allowed}"
    }
    split_of = frame.set_index(ROW_ID)["split"]
    out = []
    for key, res in results.items():
        detail = res.result or {}
        percent = detail.get("unexpected_percent")
        details = detail.get("details")
        out.append(CheckResult(
            id=key, check=named.get(key, res.expectation_config.description or key),
            expectation=res.expectation_config.type,
            policy=params.action(key) if key in named else "fail",
            success=bool(res.success), unexpected_count=int(detail.get("unexpected_count") or 0),
            unexpected_percent=None if percent is None else float(percent),
            by_split=_by_split(split_of, _offending(res)),
            observed=_plain(detail.get("observed_value")),
            details=_variant_details(frame) if key == "label_variants" and not res.success
            else details if isinstance(details, dict) else {},
            examples=[] if res.success else _examples(frame, res, params.show_examples),
        ))  # fmt: skip
    order = {c.id: i for i, c in enumerate(checks)}
    return sorted(out, key=lambda c: order.get(c.id, len(order)))


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
) -> ValidationReport:
    """Validate `src/*.parquet` with the suite of the GX project in `gx_dir` (default: a
    project of its own under `dst/gx`); write `dst/report.html`, `dst/summary.json` and the
    run's GX results under `dst`, whether the data passes or not. Rows that pass go to
    `accepted/` (when given), quarantined rows to `quarantine/` (default `dst/quarantine`).
    `reference` is the accepted-snapshot profile: drift is measured against it, and it is
    replaced after a run that passes."""
    from nlpflow.data.gx_project import checkpoint, open_project, sync_suite

    start = time.perf_counter()
    splits = load_splits(src)
    gathered = {s: len(splits[s]) for s in SPLITS}
    frame = build_frame(splits)
    allowed = (
        list(data.labels) if data.labels else sorted(splits["train"]["label"].dropna().unique())
    )
    checks = build_checks(params)
    context = open_project(gx_dir or dst / "gx", dst)
    suite, updated = sync_suite(context, [c.expectation for c in checks])
    runner = checkpoint(context, suite, RESULT_FORMAT)
    ref = load_profile(reference)
    suite_params = {
        "allowed_labels": allowed,
        "accepted_labels": (ref or {}).get("labels", {}),
        "accepted_lengths": (ref or {}).get("lengths", {}),
    }
    results = _run(runner, frame, suite_params)
    moved = _quarantine_rows(checks, results, params)
    quarantined: dict[str, int] = {}
    # written even when empty: the folder is a pipeline output, and an empty file says "none"
    quarantine_file = write_quarantine(frame, moved, quarantine or dst / "quarantine")
    if moved:
        for row_checks in moved.values():
            for c in row_checks:
                quarantined[c.id] = quarantined.get(c.id, 0) + 1
        splits = _kept_splits(frame, splits, set(moved))
        frame = build_frame(splits)  # what is left is validated again, as a whole
        results = _run(runner, frame, suite_params)
    checks_out = _check_results(checks, results, frame, params=params, allowed=allowed)
    report = ValidationReport(
        success=all(c.success for c in checks_out), rows={s: len(splits[s]) for s in SPLITS},
        rows_gathered=gathered, quarantined_rows=len(moved),
        label_counts={s: _label_counts(splits[s]) for s in SPLITS},
        allowed_labels=allowed, checks=checks_out, quarantined=quarantined,
        quarantine_file=str(quarantine_file), reference=ref,
        suite_updated=updated, seconds=round(time.perf_counter() - start, 3),
        report_html=str(dst / REPORT_HTML),
    )  # fmt: skip
    _save_reports(report, dst, source=load_source(src, data))
    if not report.success:
        raise DataValidationError(format_failures(report))
    _refuse_untrainable(report, data)
    if accepted is not None:
        accepted.mkdir(parents=True, exist_ok=True)
        for name, split in splits.items():
            split.to_parquet(accepted / f"{name}.parquet", index=False)
    if reference is not None:
        reference.parent.mkdir(parents=True, exist_ok=True)
        reference.write_text(json.dumps(compute_profile(frame), indent=2))
    return report


def _refuse_untrainable(report: ValidationReport, data: DataParams) -> None:
    """What training would fail on, or train wrongly, found before it starts: fewer than two
    classes left to train on, or a listed label without one train row (a class the model
    would be built for and never see)."""
    present = set(report.label_counts.get("train", {}))
    if len(present) < 2:
        raise DataValidationError(
            f"the train split holds {len(present)} label(s) ({', '.join(sorted(present))}) after "
            "validation: a classifier needs at least two. Check data.label_column, "
            "data.label_map and the quarantine file."
        )
    absent = [label for label in data.labels or [] if label not in present]
    if absent:
        raise DataValidationError(
            f"data.labels lists {', '.join(absent)}, which no train row has (after quarantine): "
            "remove them from data.labels, or add training rows for them."
        )


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


def _variant_details(frame: pd.DataFrame) -> dict[str, Any]:
    """The groups of labels that differ only in spelling, and the label_map that merges them."""
    mapping = label_variants(frame["label"])
    groups: dict[str, list[str]] = {}
    for variant, keep in mapping.items():
        groups.setdefault(keep, []).append(variant)
    return {"groups": groups, "label_map": mapping}


def label_map_hint(mapping: dict[str, str]) -> str:
    """A params.yaml line that merges the variants: YAML's double-quoted strings read JSON's
    escapes, so a label holding a line break or a trailing space survives the copy."""
    pairs = ", ".join(f"{_quoted(k)}: {_quoted(v)}" for k, v in mapping.items())
    return f"data.label_map: {{{pairs}}}"


def _quoted(text: str) -> str:
    """A double-quoted string with invisible characters (a zero-width space) escaped: a
    terminal shows them as nothing, and a copy would lose them."""
    import unicodedata

    return "".join(
        f"\\u{ord(ch):04x}" if unicodedata.category(ch) in ("Cf", "Zl", "Zp") else ch
        for ch in json.dumps(text, ensure_ascii=False)
    )


def format_failures(report: ValidationReport) -> str:
    lines = [f"data validation failed: {len(report.failed)} of {len(report.checks)} checks."]
    for check in report.failed:
        count = (
            f"{check.unexpected_count} rows"
            if check.unexpected_count
            else f"observed {check.observed}"
        )
        lines.append(f"  ✗ {check.check} [{check.id}] ({check.expectation}): {count}")
        for ex in check.examples:
            lines.append(
                f"      {ex['split']} row {ex['source_row']}: label={ex['label']!r} text={ex['text']!r}"
            )
        if check.id == "label_variants" and check.details.get("label_map"):
            for keep, variants in check.details["groups"].items():
                shown = ", ".join(repr(v) for v in variants)
                lines.append(f"      {shown} look like {keep!r} (the spelling most rows use)")
            lines.append(
                "      Merge them in params.yaml (add to any label_map you have): "
                + label_map_hint(check.details["label_map"])
            )
    if report.quarantined:
        lines.append(f"  Quarantined first: {report.quarantined} (see {report.quarantine_file}).")
    lines.append(
        f"  Full report: {report.report_html}. Fix the data, or the validate.* params "
        "(validate.policy.<check id>: quarantine moves offending rows aside instead)."
    )
    return "\n".join(lines)
