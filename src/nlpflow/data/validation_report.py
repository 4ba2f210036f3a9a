"""The validation report: one self-contained HTML page per validate run, passing or failing.

It opens from a file:// URL with no network and inside MLflow's artifact viewer (a sandboxed
iframe that runs no scripts): the stylesheet is inline, there is no script, no font or image to
fetch, and a Content-Security-Policy forbids every load, so the page cannot fetch anything even
if a future edit tried. Every value that comes from the data or the params is escaped: a text
in the dataset may well be `<script>...`.

    from nlpflow.data.validation_report import save_report
    save_report(report, Path("reports/validation/report.html"), source={"source": "data.csv"})
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nlpflow.data.check_results import CheckResult, ValidationReport

SPLITS = ("train", "validation", "test")
CSP = "default-src 'none'; style-src 'unsafe-inline'"
# Colours from a light and a dark palette, picked by the viewer's colour scheme; system fonts only
STYLE = """
:root{color-scheme:light dark;--bg:#fff;--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;
--head:#f6f8fa;--ok:#1a7f37;--ok-bg:#dafbe1;--bad:#c1121f;--bad-bg:#ffebe9;--warn:#8a5a00;
--warn-bg:#fff3c4}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--muted:#9198a1;
--line:#3d444d;--head:#161b22;--ok:#3fb950;--ok-bg:#132a1c;--bad:#ff7b72;--bad-bg:#2d1518;
--warn:#e3b341;--warn-bg:#2b2111}}
*{box-sizing:border-box}
body{margin:0;padding:20px;background:var(--bg);color:var(--fg);
font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1100px;margin:0 auto}
h1{font-size:22px;margin:0 0 6px}
h2{font-size:17px;margin:28px 0 10px;padding-bottom:4px;border-bottom:1px solid var(--line)}
h3{font-size:15px;margin:0 0 4px}
p{margin:6px 0}
code{font:12.5px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;overflow-wrap:anywhere}
.muted{color:var(--muted)}
.badge{display:inline-block;padding:1px 9px;border-radius:999px;font-size:12px;font-weight:600;
white-space:nowrap;vertical-align:middle}
.big{font-size:15px;padding:3px 14px}
.ok{background:var(--ok-bg);color:var(--ok)}
.bad{background:var(--bad-bg);color:var(--bad)}
.warn{background:var(--warn-bg);color:var(--warn)}
dl{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:3px 18px;margin:14px 0}
dt{color:var(--muted)}
dd{margin:0;overflow-wrap:anywhere}
.scroll{overflow-x:auto;border:1px solid var(--line);border-radius:6px;margin:8px 0}
.fit{display:inline-block;max-width:100%;min-width:min(100%,420px)}
table{border-collapse:collapse;width:100%}
th,td{padding:6px 10px;text-align:left;vertical-align:top;border-bottom:1px solid var(--line)}
th{background:var(--head);font-size:13px;font-weight:600;white-space:nowrap}
tr:last-child td{border-bottom:0}
tr.failed td:first-child{box-shadow:inset 4px 0 var(--bad)}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.text{white-space:pre-wrap;overflow-wrap:anywhere;min-width:10em}
.card{border:1px solid var(--line);border-left:4px solid var(--bad);border-radius:6px;
padding:10px 14px;margin:12px 0}
footer{margin-top:28px;font-size:12px}
@media (max-width:640px){body{padding:10px}th,td{padding:4px 6px}.wide{display:none}}
@media (max-width:420px){dl{grid-template-columns:1fr}dd{margin-bottom:6px}}
"""


def save_report(
    report: ValidationReport,
    path: Path,
    *,
    source: dict[str, Any] | None = None,
    created: datetime | None = None,
) -> Path:
    """Write the report page to `path` (its folder is made when missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(report, source=source, created=created), encoding="utf-8")
    return path


def render_report(
    report: ValidationReport,
    *,
    source: dict[str, Any] | None = None,
    created: datetime | None = None,
) -> str:
    """The whole page as one string: verdict, failures, every check, rows, quarantine, drift."""
    verdict = "passed" if report.success else "failed"
    body = [
        _header(report, source or {}, created or datetime.now(UTC)),
        _failures(report),
        _quarantine(report),
        _checks(report),
        _rows(report),
        _drift(report),
        '<footer class="muted">Written by nlpflow from the Great Expectations results of this '
        "run (<code>results/</code>; every number also in <code>summary.json</code>).</footer>",
    ]
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>Data validation {verdict} · nlpflow</title>\n"
        f"<style>{STYLE}</style>\n</head>\n<body>\n<main>\n"
        + "\n".join(part for part in body if part)
        + "\n</main>\n</body>\n</html>\n"
    )


# ---------------------------------------------------------------- sections


def _header(report: ValidationReport, source: dict[str, Any], created: datetime) -> str:
    failed, total = len(report.failed), len(report.checks)
    if report.success:
        passed = total - len(report.warned)
        badges = [_badge("ok big", "PASSED"), f"{passed} of {total} checks passed"]
    else:
        badges = [_badge("bad big", "FAILED"), f"{failed} of {total} checks failed"]
    if report.quarantined_rows:
        badges.append(_badge("warn big", f"{report.quarantined_rows} rows quarantined"))
    if report.warned:
        badges.append(_badge("warn big", f"{len(report.warned)} checks warn"))
    facts = {
        "Data source": _e(source.get("source", "")) or "—",
        "Source digest (SHA-256)": f"<code>{_e(source['source_sha256'])}</code>"
        if source.get("source_sha256")
        else '<span class="muted">not recorded</span>',
        "Format": _e(source.get("format", "")) or "—",
        "Rows read": _e(_split_counts(report.rows_gathered or report.rows)),
        "Validated at": _e(created.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")),
        "Took": _e(f"{report.seconds:.1f} s"),
        "Suite": "rewritten from params in this run" if report.suite_updated else "unchanged",
    }
    rows = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts.items())
    if report.success:
        advice = ""
    elif report.split_from_source and all(c.fix for c in report.failed):
        # quarantine would cut the source's own test set: each failed check says its fix
        advice = "<p>Fix the data, or the <code>validate.*</code> params: each failed check says how.</p>"
    else:
        advice = (
            "<p>Fix the data, or the <code>validate.*</code> params "
            "(<code>validate.policy.&lt;check id&gt;: quarantine</code> moves offending rows aside "
            "instead of stopping the run).</p>"
        )
    return (
        f"<header><h1>Data validation</h1><p>{' '.join(badges)}</p>{advice}<dl>{rows}</dl></header>"
    )


def _failures(report: ValidationReport) -> str:
    if report.success:
        return ""
    cards = []
    for check in report.failed:
        cards.append(
            f'<section class="card" id="{_e(_anchor(check.id))}">'
            f"<h3>{_e(check.check)}</h3>"
            f"<p><code>{_e(check.id)}</code> · <code>{_e(check.expectation)}</code> · "
            f"policy {_e(check.policy)}</p>"
            f"<p>{_unexpected(check, plain=True)}{_observed_line(check)}</p>"
            + (f"<p>Fix: {_e(check.fix)}</p>" if check.fix else "")
            + f"{_examples(check)}</section>"
        )
    return "<h2>Failed checks</h2>" + "".join(cards)


def _checks(report: ValidationReport) -> str:
    rows = []
    for check in report.checks:
        state = "passed" if check.success else "warned" if check.policy == "warn" else "failed"
        status = _badge({"passed": "ok", "warned": "warn"}.get(state, "bad"), state)
        rows.append(
            f'<tr class="{state}"><td>{status}</td>'
            f"<td>{_e(check.check)}<br><code class=muted>{_e(check.id)}</code></td>"
            f'<td class="num">{_unexpected(check)}</td>'
            f"<td>{_e(_split_counts(check.by_split)) or '—'}</td>"
            f"<td>{_e(_format(check.observed))}</td>"
            f'<td class="wide"><code>{_breakable(check.expectation)}</code></td>'
            f'<td class="wide">{_e(check.policy)}</td></tr>'
        )
    # what a reader scans for first, the status and the offending rows, comes leftmost: in a
    # narrow iframe the columns on the right scroll out of view (and the last two are hidden)
    head = _head(
        "Status", "Check", ("Unexpected rows", "num"), "By split", "Observed",
        ("Expectation", "wide"), ("Policy", "wide"),
    )  # fmt: skip
    return f"<h2>All checks</h2>{_table(head, rows)}"


def _rows(report: ValidationReport) -> str:
    splits = [s for s in SPLITS if s in report.rows]
    head = _head(
        "Split", ("Rows read", "num"), ("Quarantined", "num"), ("After quarantine", "num"),
        ("Labels", "num"),
    )  # fmt: skip
    rows = []
    for s in splits:
        read = report.rows_gathered.get(s, report.rows[s])
        rows.append(
            f"<tr><td>{_e(s)}</td><td class=num>{read}</td><td class=num>{read - report.rows[s]}"
            f"</td><td class=num>{report.rows[s]}</td>"
            f"<td class=num>{len(report.label_counts.get(s, {}))}</td></tr>"
        )
    labels = sorted(
        {label for counts in report.label_counts.values() for label in counts}
        | set(report.allowed_labels)
    )
    label_head = _head("Label", *((s, "num") for s in splits))
    label_rows = [
        f"<tr><td>{_e(label)}</td>"
        + "".join(
            f"<td class=num>{report.label_counts.get(s, {}).get(label, 0)}</td>" for s in splits
        )
        + "</tr>"
        for label in labels
    ]
    return (
        f"<h2>Rows per split</h2>{_table(head, rows, fit=True)}"
        f"<h2>Labels per split</h2><p class=muted>Rows after quarantine.</p>"
        f"{_table(label_head, label_rows, fit=True)}"
    )


def _quarantine(report: ValidationReport) -> str:
    if not report.quarantined:
        return "<h2>Quarantine</h2><p>No rows quarantined.</p>"
    names = {c.id: c.check for c in report.checks}
    rows = [
        f"<tr><td>{_e(names.get(key, key))}<br><code class=muted>{_e(key)}</code></td>"
        f"<td class=num>{count}</td></tr>"
        for key, count in report.quarantined.items()
    ]
    return (
        f"<h2>Quarantine</h2><p>{report.quarantined_rows} rows moved aside, not trained on; "
        f"each with its reasons in <code>{_e(report.quarantine_file)}</code>.</p>"
        f"{_table(_head('Check', ('Rows', 'num')), rows, fit=True)}"
    )


def _drift(report: ValidationReport) -> str:
    drift = [c for c in report.checks if c.expectation.endswith("distribution_to_stay_near")]
    if not drift:
        return ""
    parts = ["<h2>Drift from the last accepted snapshot</h2>"]
    if report.reference is None:
        parts.append(
            "<p>No accepted snapshot yet: drift is measured from the next run, against the "
            "data of this one if it passes.</p>"
        )
    for check in drift:
        status = _badge("ok", "within") if check.success else _badge("bad", "drifted")
        tvd = "—" if check.observed is None else _format(check.observed)
        parts.append(f"<h3>{status} {_e(check.check)}: distance {_e(tvd)}</h3>")
        parts.append(_shares(check.details))
    return "".join(parts)


def _shares(details: dict[str, Any]) -> str:
    shares, change = details.get("shares") or {}, details.get("change") or {}
    if not change:
        return ""
    head = _head("Value", ("Accepted", "num"), ("This run", "num"), ("Change", "num"))
    rows = []
    for key in sorted(change, key=_natural):
        now = float(shares.get(key, 0.0))
        before = now - float(change[key])
        rows.append(
            f"<tr><td>{_e(key)}</td><td class=num>{before:.1%}</td><td class=num>{now:.1%}</td>"
            f"<td class=num>{float(change[key]):+.1%}</td></tr>"
        )
    return _table(head, rows, fit=True)


# ---------------------------------------------------------------- pieces


def _examples(check: CheckResult) -> str:
    if not check.examples:
        return ""
    head = _head("Split", ("Row", "num"), "Label", "Text")
    rows = [
        f"<tr><td>{_e(ex.get('split'))}</td><td class=num>{_e(ex.get('source_row'))}</td>"
        f"<td>{_cell(ex.get('label'))}</td><td class=text>{_cell(ex.get('text'))}</td></tr>"
        for ex in check.examples
    ]
    more = check.unexpected_count > len(rows)
    shown = f"The first {len(rows)} of the offending rows" if more else "The offending rows"
    return f"<p class=muted>{shown} (row: its position in the split):</p>{_table(head, rows)}"


def _unexpected(check: CheckResult, *, plain: bool = False) -> str:
    if not check.unexpected_count:
        return "" if plain else "0"
    percent = check.unexpected_percent
    share = (
        "" if percent is None else f" ({percent:.2f}%)" if percent < 10 else f" ({percent:.0f}%)"
    )
    if plain:
        return f"<strong>{check.unexpected_count} unexpected rows</strong>{_e(share)}. "
    return f"{check.unexpected_count}{_e(share)}"


def _observed_line(check: CheckResult) -> str:
    return "" if check.observed is None else f"Observed: {_e(_format(check.observed))}."


def _cell(value: Any) -> str:
    """A data value as a cell: null and blank strings made visible."""
    if value is None:
        return "<em class=muted>null</em>"
    if isinstance(value, str) and not value.strip():
        return f'<code class=muted>"{_e(value)}"</code>'
    return _e(value)


def _table(head: str, rows: list[str], *, fit: bool = False) -> str:
    """A table in a scroll box: a wide table scrolls instead of widening a narrow iframe.
    `fit`: as wide as its content, for tables of a few narrow columns."""
    box = "scroll fit" if fit else "scroll"
    table = f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"
    return f'<div class="{box}">{table}</div>'


def _head(*columns: str | tuple[str, str]) -> str:
    cells = [
        f"<th>{_e(c)}</th>" if isinstance(c, str) else f'<th class="{c[1]}">{_e(c[0])}</th>'
        for c in columns
    ]
    return f"<tr>{''.join(cells)}</tr>"


def _badge(kind: str, text: str) -> str:
    return f'<span class="badge {kind}">{_e(text)}</span>'


def _split_counts(counts: dict[str, int]) -> str:
    return " · ".join(f"{split} {counts[split]}" for split in SPLITS if split in counts)


def _format(value: Any, limit: int = 160) -> str:
    """An observed value in a few words: numbers to 4 significant digits, JSON for the rest."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _natural(key: str) -> tuple[int, int, str]:
    """Length bins ('2-3', '16-31') in numeric order, other values alphabetically."""
    number = re.match(r"\d+", key)
    return (0, int(number.group()), key) if number else (1, 0, key)


def _anchor(check_id: str) -> str:
    return "check-" + re.sub(r"[^A-Za-z0-9_-]+", "-", check_id)


def _breakable(name: str) -> str:
    """A snake_case name that wraps at its underscores, not mid-word."""
    return _e(name).replace("_", "_<wbr>")


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)
