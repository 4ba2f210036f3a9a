"""report.html: the validate stage's self-contained report, for a passing, a failing and a
quarantining run of the real gather and validate stages (real GX) on the bundled sample.

The page must open offline and in MLflow's artifact viewer (a sandboxed iframe, no scripts):
no URL of any kind to load, no script, and hostile data shown as text, never as markup.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from nlpflow.errors import DataValidationError
from nlpflow.config.params import load_params
from nlpflow.config.settings import Settings
from nlpflow.pipeline.stages import StageContext, run_stage
from tests.conftest import REPO, SAMPLE

SCRIPT = "<script>alert(1)</script> refund my order twice please"
LABEL = "<img src=https://evil.example/x.png onerror=alert(2)>"  # a label is data too
CHROMIUM = Path("/usr/bin/chromium")
SPLITS = ("train", "validation", "test")


@dataclass
class Page:
    """What html.parser sees in a page: tags, attributes, stylesheets, texts, table rows."""

    tags: list[str] = field(default_factory=list)
    attrs: list[tuple[str, str, str]] = field(default_factory=list)  # (tag, name, value)
    styles: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)  # cells' text, per <tr>

    @property
    def text(self) -> str:
        return " ".join(self.texts)

    def row(self, *cells: str) -> list[str]:
        """The one table row whose cells start with `cells` (each cell compared whole)."""
        found = [r for r in self.rows if r[: len(cells)] == list(cells)]
        assert len(found) == 1, f"{len(found)} rows start with {cells}: {self.rows}"
        return found[0]


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self._open: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.page.tags.append(tag)
        self.page.attrs += [(tag, name, value or "") for name, value in attrs]
        if tag in ("br", "meta", "wbr"):  # void elements: never closed
            if tag == "br" and self._cell is not None:
                self._cell.append(" ")
            return
        self._open.append(tag)
        if tag == "tr":
            self.page.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.page.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        if self._open and self._open[-1] == tag:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        if self._open and self._open[-1] == "style":
            self.page.styles.append(data)
            return
        self.page.texts.append(data)
        if self._cell is not None:
            self._cell.append(data)


def parse(html: str) -> Page:
    parser = _Parser()
    parser.feed(html)
    parser.close()
    return parser.page


@dataclass
class Run:
    html: str
    copy: Path  # the page as this run wrote it (the next run rewrites report.html)
    page: Page
    summary: dict[str, object]
    error: str | None
    root: Path
    manifest: dict[str, Any]  # gather's, of this run (the next run rewrites the folder)
    labels: dict[str, dict[str, int]]  # split -> label -> rows gathered


def _run(root: Path, csv: Path, *overrides: str) -> Run:
    """gather then validate, as `nlpflow stage` runs them; the report as it is after."""
    params = load_params(REPO / "params.yaml", [f"data.source={csv}", *overrides])
    ctx = StageContext(root=root, params=params, settings=Settings(project_dir=root))
    run_stage("gather", ctx)
    error = None
    try:
        run_stage("validate", ctx)
    except DataValidationError as exc:
        error = str(exc)
    folder = root / "reports" / "validation"
    html = (folder / "report.html").read_text(encoding="utf-8")
    copy = root / "pages" / f"{len(list(root.glob('pages/*.html')))}.html"
    copy.parent.mkdir(exist_ok=True)
    shutil.copy(folder / "report.html", copy)
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    gathered = root / "data" / "gathered"
    manifest = json.loads((gathered / "manifest.json").read_text(encoding="utf-8"))
    labels = {
        s: pd.read_parquet(gathered / f"{s}.parquet")["label"].value_counts().to_dict()
        for s in SPLITS
    }
    return Run(
        html=html, copy=copy, page=parse(html), summary=summary, error=error, root=root,
        manifest=manifest, labels=labels,
    )  # fmt: skip


def _hostile(csv: Path) -> None:
    """The sample plus three rows of a new label: too few to train on (class_min_count)."""
    frame = pd.read_csv(SAMPLE)
    extra = [SCRIPT, "refund me, order 1", "refund me, order 2"]
    frame = pd.concat([frame, pd.DataFrame({"text": extra, "label": [LABEL] * 3})])
    frame.to_csv(csv, index=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """One project, three runs in order: the clean sample passes (and becomes the accepted
    snapshot), the hostile data fails, then passes with its offending rows quarantined."""
    root = tmp_path_factory.mktemp("project")
    shutil.copytree(REPO / "gx", root / "gx")
    csv = root / "tickets.csv"
    shutil.copy(SAMPLE, csv)
    out = {"passed": _run(root, csv)}
    _hostile(csv)
    out["failed"] = _run(root, csv)
    out["quarantined"] = _run(root, csv, "validate.policy={class_min_count: quarantine}")
    return out


def _digest(name: str, path: Path) -> str:
    """A source file's digest as gather records it: SHA-256 of its name, then its bytes."""
    return hashlib.sha256(name.encode() + path.read_bytes()).hexdigest()


def _check(run: Run, check_id: str) -> dict[str, object]:
    checks = run.summary["checks"]
    assert isinstance(checks, list)
    return next(c for c in checks if c["id"] == check_id)


# ---------------------------------------------------------------- offline, no markup from data


@pytest.mark.parametrize("case", ["passed", "failed", "quarantined"])
def test_the_page_loads_nothing(runs: dict[str, Run], case: str) -> None:
    page = runs[case].page
    # nothing that could fetch: no script, stylesheet link, image, frame, object, font
    assert not {"script", "link", "img", "iframe", "object", "embed", "base"} & set(page.tags)
    for tag, name, value in page.attrs:
        if name in ("src", "href", "srcset", "action", "data", "poster", "formaction"):
            pytest.fail(f"<{tag} {name}={value!r}>: the report must not reference any resource")
        assert "url(" not in value.lower(), (tag, name, value)
    css = "".join(page.styles)
    assert css.count("{") > 20  # the stylesheet is inline, and not empty
    assert "@import" not in css and "url(" not in css and "@font-face" not in css
    # and a policy forbidding every load, should a future edit add one
    csp = [v for t, n, v in page.attrs if t == "meta" and n == "content" and "default-src" in v]
    assert csp == ["default-src 'none'; style-src 'unsafe-inline'"]


def test_hostile_text_and_label_are_escaped(runs: dict[str, Run]) -> None:
    run = runs["failed"]
    assert "<script>alert(1)" not in run.html and "<img src=https://evil" not in run.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; refund my order twice please" in run.html
    # shown as text, in the failed check's examples and the label table
    examples = [r for r in run.page.rows if SCRIPT in r]
    assert examples and all(LABEL in r for r in examples)
    assert run.page.row(
        LABEL, *(str(run.labels[s].get(LABEL, 0)) for s in SPLITS)
    )  # the label table's row of the label


# ---------------------------------------------------------------- what the report says


def test_failing_run_names_the_failed_check_with_its_counts(runs: dict[str, Run]) -> None:
    run = runs["failed"]
    assert run.error is not None
    assert f"Full report: {run.root / 'reports' / 'validation' / 'report.html'}." in run.error
    check = _check(run, "class_min_count")
    assert check["success"] is False and check["unexpected_count"] == 3
    assert sum(check["by_split"].values()) == 3  # type: ignore[attr-defined]
    failed = [c for c in run.summary["checks"] if not c["success"]]  # type: ignore[attr-defined]
    # the sample's greetings ("Hey team! <a train ticket>") make sub-phrase leaks: a warning
    assert [(c["id"], c["policy"]) for c in failed] == [
        ("class_min_count", "fail"), ("leak_subphrase", "warn"), ("class_imbalance", "fail")]  # fmt: skip
    assert run.page.row("warned", _check(run, "leak_subphrase")["check"] + " leak_subphrase")
    text = run.page.text
    assert "FAILED" in text and "PASSED" not in text
    assert f"2 of {len(run.summary['checks'])} checks failed" in text  # type: ignore[arg-type]
    headings = [" ".join(t.split()) for t in run.page.texts]
    start = headings.index("Failed checks")
    assert headings.index("each label has at least 5 train examples", start)
    assert headings.index("largest class is at most 20x each class in train", start)
    # the check's row in the table of all checks: status, name with id, unexpected count (%)
    row = run.page.row("failed", "each label has at least 5 train examples class_min_count")
    percent = float(check["unexpected_percent"])  # type: ignore[arg-type]
    assert row[2] == f"3 ({percent:.2f}%)"
    assert row[6] == "fail"
    assert row[5] == "expect_column_values_to_be_between"
    splits: dict[str, int] = check["by_split"]  # type: ignore[assignment]
    assert row[3] == " · ".join(f"{s} {n}" for s, n in splits.items())


def test_passing_run_says_what_data_was_checked(runs: dict[str, Run]) -> None:
    run = runs["passed"]
    assert run.error is None and run.summary["success"] is True
    text = run.page.text
    assert "PASSED" in text and "FAILED" not in text and "Failed checks" not in text
    checks = len(run.summary["checks"])  # type: ignore[arg-type]
    # the sample's 14 greeting-prefixed copies of train tickets: leak_subphrase warns
    assert f"{checks - 1} of {checks} checks passed" in text and "1 checks warn" in text
    statuses = [r[0] for r in run.page.rows if len(r) == 7 and r[0] != "Status"]
    warned = [c["id"] for c in run.summary["checks"] if c["policy"] == "warn" and not c["success"]]  # type: ignore[index,union-attr]
    assert warned == ["leak_subphrase"] and _check(run, "leak_subphrase")["unexpected_count"] == 14
    assert sorted(statuses) == ["passed"] * (checks - 1) + ["warned"]
    sha = _digest("tickets.csv", SAMPLE)  # the clean sample, copied
    assert run.manifest["source_sha256"] == sha
    assert sha in text
    rows = run.manifest["rows"]
    for split in SPLITS:
        assert run.page.row(split)[1:4] == [str(rows[split]), "0", str(rows[split])]
    for label in sorted(pd.read_csv(SAMPLE)["label"].unique()):
        counts = [str(run.labels[s].get(label, 0)) for s in SPLITS]
        assert run.page.row(label) == [label, *counts]
    assert "No accepted snapshot yet" in text  # the first run: nothing to measure drift from


def test_sha256_and_drift_of_a_later_run(runs: dict[str, Run]) -> None:
    run = runs["failed"]
    text = run.page.text
    assert _digest("tickets.csv", run.root / "tickets.csv") in text  # the data this run read,
    assert _digest("tickets.csv", SAMPLE) not in text  # not the clean sample of the first run
    # label shares against the clean run's accepted snapshot: the new label was 0% there
    new_label = [r for r in run.page.rows if r[0] == LABEL and len(r) == 4 and "%" in r[1]]
    assert len(new_label) == 1 and new_label[0][1] == "0.0%"
    rows_read = sum(run.manifest["rows"].values())
    assert new_label[0][2] == f"{3 / rows_read:.1%}" == new_label[0][3].lstrip("+")
    drift = _check(run, "label_drift")
    assert f"distance {drift['observed']:.4g}" in text


def test_quarantine_is_reported(runs: dict[str, Run]) -> None:
    run = runs["quarantined"]
    assert run.error is None and run.summary["success"] is True
    assert run.summary["quarantined_rows"] == 3
    text = run.page.text
    assert "PASSED" in text and "3 rows quarantined" in text
    assert run.page.row("each label has at least 5 train examples class_min_count", "3")
    gathered = run.manifest["rows"]
    moved = {s: gathered[s] - run.summary["rows"][s] for s in gathered}  # type: ignore[index]
    assert sum(moved.values()) == 3
    for split, n in moved.items():
        assert run.page.row(split)[1:4] == [str(gathered[split]), str(n), str(gathered[split] - n)]
    assert run.page.row(LABEL, "0", "0", "0")  # an allowed label, all of its rows moved aside


def test_no_gx_data_docs_are_built_or_left_behind(runs: dict[str, Run], tmp_path: Path) -> None:
    """Data Docs load their assets from CDNs (nlpflow.data.gx_project): the checkpoint of an older
    nlpflow, which built them, loses that action, and an old site is removed."""
    folder = runs["quarantined"].root / "reports" / "validation"
    assert sorted(p.name for p in folder.iterdir()) == ["report.html", "results", "summary.json"]
    saved = json.loads((REPO / "gx" / "checkpoints" / "nlpflow_validate.json").read_text())
    docs = {"name": "data_docs", "site_names": ["nlpflow"], "type": "update_data_docs"}
    old = saved | {"actions": [docs]}
    root = tmp_path / "project"
    shutil.copytree(REPO / "gx", root / "gx")
    (root / "gx" / "checkpoints" / "nlpflow_validate.json").write_text(json.dumps(old))
    (root / "reports" / "validation" / "data_docs").mkdir(parents=True)
    (root / "reports" / "validation" / "data_docs" / "index.html").write_text("<html>")
    _run(root, SAMPLE)
    stored = json.loads((root / "gx" / "checkpoints" / "nlpflow_validate.json").read_text())
    assert stored["actions"] == []
    assert not (root / "reports" / "validation" / "data_docs").exists()


# ---------------------------------------------------------------- in a real browser


@pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent (apt-get install chromium)"
)
def test_renders_styled_in_headless_chromium_with_no_network(
    runs: dict[str, Run], tmp_path: Path
) -> None:
    Image = pytest.importorskip("PIL.Image", reason="Pillow is needed to read the screenshot")
    report = runs["failed"].copy
    png = tmp_path / "report.png"
    subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--no-first-run",
         "--disable-sync", "--host-resolver-rules=MAP * ~NOTFOUND",  # no name resolves
         f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={png}",
         "--window-size=1200,900", report.as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    image = Image.open(png).convert("RGB")
    assert image.size == (1200, 900)
    colours = image.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50  # text, badges, borders: not blank
    # the stylesheet applied: the red FAILED badge and the failed check's red card border
    red = sum(n for n, (r, g, b) in colours if r > 150 and g < 60 and b < 70)
    assert red > 500, f"only {red} red pixels: the page looks unstyled"
    assert max(colours)[1] == (255, 255, 255)  # the background, by far the commonest colour
