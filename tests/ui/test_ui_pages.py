"""What a user sees in the MLflow and Prefect UIs, and in the validation report, after two
`nlpflow run`s (tf-idf, C 10 and C 0.05): a headless Chromium against real servers.

.venv/bin/pytest tests/ui -q        (needs /usr/bin/chromium and /usr/bin/chromedriver)

Every test asserts on what the page shows (visible text, elements), then saves a screenshot of
the view under reports/ui/ (NLPFLOW_UI_SCREENSHOTS names another folder) for README.

The MLflow pages are opened through the links `nlpflow run` prints, as a user would: MLflow
3.17's UI picks GenAI or model-training mode per browser (default GenAI; the URL parameter
`workflowType` overrides it), and shows no metric column in the runs table unless the address
carries a saved view (`viewStateShareKey`); an experiment tag alone changes neither.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import suppress
from typing import Any
from urllib.parse import quote

import pytest

from tests.ui.conftest import Screenshots, Stack, browser_missing

# Without the browser, skip before the servers and runs are made; CI fails instead (conftest).
pytestmark = [
    pytest.mark.ui,
    pytest.mark.skipif(
        bool(browser_missing()) and not os.environ.get("CI"), reason=str(browser_missing())
    ),
]
WAIT = 30  # seconds for a single-page app to fetch and render on a busy machine
MAIN_METRIC = "test/macro_f1"
# Pages a user reaches from the experiment page keep its mode in the address; opened directly
# (compare, registered model), they are given it, so their sidebar is model training's.
ML_MODE = "workflowType=machine_learning"


# ------------------------------------------------------------------ page helpers


def _literal(text: str) -> str:
    """`text` as an XPath string literal (it may hold either kind of quote)."""
    if "'" not in text:
        return f"'{text}'"
    if '"' not in text:
        return f'"{text}"'
    return "concat(" + ', "\'", '.join(f"'{part}'" for part in text.split("'")) + ")"


def visible(driver: Any, text: str, *, exact: bool = True, timeout: float = WAIT) -> Any:
    """The first displayed element whose own text is (or contains) `text`, waiting for it."""
    from selenium.webdriver.support.ui import WebDriverWait

    test = (
        f"normalize-space(text())={_literal(text)}"
        if exact
        else (f"contains(normalize-space(.), {_literal(text)})")
    )
    xpath = f"//body//*[{test}]"

    def found(d: Any) -> Any:
        hits = [e for e in d.find_elements("xpath", xpath) if e.is_displayed()]
        # with `contains`, the innermost element holding the text, not <body>
        return hits[-1] if hits else False

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.3).until(found)
    except Exception as exc:
        raise AssertionError(
            f"{text!r} is not shown on {driver.current_url} after {timeout}s; the page shows:\n"
            f"{_page_text(driver)[:3000]}"
        ) from exc


def _wait_for(driver: Any, css: str) -> Any:
    """The first displayed element matching `css`, waiting for it."""
    from selenium.webdriver.support.ui import WebDriverWait

    def found(d: Any) -> Any:
        return next((e for e in d.find_elements("css selector", css) if e.is_displayed()), False)

    try:
        return WebDriverWait(driver, WAIT, poll_frequency=0.3).until(found)
    except Exception as exc:
        raise AssertionError(f"no {css} on {driver.current_url} after {WAIT}s") from exc


def shown(driver: Any, text: str) -> bool:
    """Whether an element whose own text is `text` is displayed now (no waiting)."""
    xpath = f"//body//*[normalize-space(text())={_literal(text)}]"
    return any(e.is_displayed() for e in driver.find_elements("xpath", xpath))


def _page_text(driver: Any) -> str:
    try:
        return str(driver.find_element("tag name", "body").text)
    except Exception:  # the page is gone or not loaded: say so rather than hide the first error
        return "<no page>"


def close_mlflow_assistant(driver: Any) -> None:
    """MLflow 3.17 opens its Assistant panel over a third of the page on a browser's first
    visit; a user closes it once, and so do the tests (nothing else is clicked away)."""
    for button in driver.find_elements(
        "css selector", '[data-component-id="mlflow.assistant.chat_panel.close"]'
    ):
        if button.is_displayed():  # a script's click: a GenAI-mode pop-over may cover it
            driver.execute_script("arguments[0].click()", button)


def first_visit(driver: Any, url: str) -> None:
    """Open `url` as a browser that never saw the site: MLflow keeps the mode, the columns
    and the table's layout in local storage, which one test must not hand to the next."""
    origin = re.match(r"[a-z]+://[^/]+", url)
    assert origin, url
    driver.get("about:blank")  # else a change of the #fragment alone keeps the app running
    driver.execute_cdp_cmd(
        "Storage.clearDataForOrigin",
        {"origin": origin.group(0), "storageTypes": "local_storage,session_storage,indexeddb"},
    )
    driver.get(url)


def printed_links(stack: Stack) -> list[str]:
    """The MLflow server's addresses that the last `nlpflow run` printed, each once."""
    found = re.findall(re.escape(stack.mlflow) + r"/#/\S+", stack.outputs[-1])
    return list(dict.fromkeys(found))


def experiment_links(stack: Stack) -> list[str]:
    """The experiment page's addresses that `nlpflow run` printed (MLflow's own "View
    experiment at" line included: a user clicks whichever is there)."""
    page = re.compile(rf"/#/experiments/{stack.experiment_id}(/runs)?(\?|$)")
    links = [link for link in printed_links(stack) if page.search(link)]
    assert links, (
        f"`nlpflow run` printed no link to the experiment page ({stack.mlflow}/#/experiments/"
        f"{stack.experiment_id}...); it printed:\n{stack.outputs[-1][-2500:]}"
    )
    return links


def assert_model_training_mode(driver: Any, stack: Stack, link: str) -> None:
    """The runs table with both runs, and none of GenAI mode's traces dashboard."""
    for run in stack.runs:
        visible(driver, run.info.run_name)
    genai_only = ["Evaluation runs", "Usage", "Tool calls", "Detect Issues", "Token Usage"]
    assert [text for text in genai_only if shown(driver, text)] == [], (
        f"{link} opened in GenAI mode (at {driver.current_url})"
    )
    assert "/runs" in driver.current_url.split("#", 1)[1], driver.current_url


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """The browser, back online and on a blank page after each test."""
    from selenium.common.exceptions import WebDriverException

    yield browser
    with suppress(WebDriverException):  # none were set
        browser.delete_network_conditions()
    browser.get("about:blank")


# ------------------------------------------------------------------ MLflow


def test_experiment_page_opens_in_model_training_mode(
    stack: Stack, page: Any, screenshots: Screenshots
) -> None:
    """Through every link to the experiment that `nlpflow run` printed. (The run page's
    breadcrumb back to the experiment drops the mode from the address: MLflow's doing.)"""
    failures = []
    for link in experiment_links(stack):
        first_visit(page, link)
        try:
            assert_model_training_mode(page, stack, link)
        except AssertionError as exc:
            reason = str(exc).splitlines()[0].removesuffix("; the page shows:")
            failures.append(f"printed {link}\n  shows {page.current_url}\n  {reason}")
    first_visit(page, experiment_links(stack)[-1])  # nlpflow's summary comes last
    with suppress(AssertionError):  # the picture shows whatever the page became
        visible(page, stack.runs[0].info.run_name, timeout=5 if failures else WAIT)
    close_mlflow_assistant(page)
    screenshots.save(page, "mlflow-experiment",
                     "MLflow: the experiment opens in model-training mode on its runs table")  # fmt: skip

    assert not failures, "\n".join(failures)


def _row_value(driver: Any, run_name: str, column: str) -> str:
    """The text of the runs table's cell in `column` (its header text) on `run_name`'s row.

    The table is an ag-grid: the pinned name column and the scrolled columns are separate
    containers whose rows share a `row-index`, and cells name their column in `col-id`.
    """
    header = visible(driver, column)
    col_id = header.find_element("xpath", "ancestor-or-self::*[@col-id][1]").get_attribute("col-id")
    name = visible(driver, run_name)
    row = name.find_element("xpath", "ancestor::*[@row-index][1]").get_attribute("row-index")
    cells = [
        c
        for c in driver.find_elements("css selector", f'[row-index="{row}"] [col-id="{col_id}"]')
        if c.is_displayed()
    ]
    assert cells, f"no {column} cell shown on the row of {run_name!r}"
    return str(cells[0].text).strip()


# The part of a cell's text inside its clipping box: what is readable before the ellipsis.
SHOWN_PART = """
const text = arguments[0].firstChild, cell = arguments[0].closest('[role=gridcell]');
let edge = cell.getBoundingClientRect().right;
for (let box = arguments[0]; box && box !== cell.parentElement; box = box.parentElement) {
  const style = getComputedStyle(box);  // the innermost clipping box decides
  if (style.overflowX !== 'visible' || style.textOverflow === 'ellipsis')
    edge = Math.min(edge, box.getBoundingClientRect().right - parseFloat(style.paddingRight));
}
const range = document.createRange();
range.setStart(text, 0);
let shown = 0;
for (let i = 1; i <= text.length; i++) {
  range.setEnd(text, i);
  if (range.getBoundingClientRect().right > edge) break;
  shown = i;
}
return text.textContent.slice(0, shown);
"""


def _shown_part(driver: Any, run_name: str) -> str:
    """How much of `run_name` its cell in the runs table shows (a long name ends in "...")."""
    xpath = f"//*[@role='gridcell']//*[normalize-space(text())={_literal(run_name)}]"
    cells = [e for e in driver.find_elements("xpath", xpath) if e.is_displayed()]
    assert cells, f"{run_name!r} is in no cell of the runs table"
    return str(driver.execute_script(SHOWN_PART, cells[0]))


def test_runs_table_shows_run_names_and_main_metric(
    stack: Stack, page: Any, screenshots: Screenshots
) -> None:
    """As the table opens from each printed link to the experiment: no column picking."""
    for link in experiment_links(stack):
        first_visit(page, link)
        for run in stack.runs:
            visible(page, run.info.run_name)
        close_mlflow_assistant(page)
        screenshots.save(page, "mlflow-runs-table",
                         f"MLflow: runs named for what they train, with {MAIN_METRIC}")  # fmt: skip
        names = {run.info.run_name: _shown_part(page, run.info.run_name) for run in stack.runs}
        assert len(set(names.values())) == len(names), f"the table cuts the names alike: {names}"
        visible(page, MAIN_METRIC)
        for run in stack.runs:
            value = _row_value(page, run.info.run_name, MAIN_METRIC)
            assert float(value) == pytest.approx(run.data.metrics[MAIN_METRIC], abs=6e-4), (
                f"{run.info.run_name} from {link}"
            )


def test_comparing_two_runs_shows_the_params_that_differ(
    stack: Stack, page: Any, screenshots: Screenshots
) -> None:
    runs = json.dumps([r.info.run_id for r in stack.runs])
    experiments = json.dumps([stack.experiment_id])
    query = f"runs={quote(runs)}&experiments={quote(experiments)}&{ML_MODE}"
    first_visit(page, f"{stack.mlflow}/#/compare-runs?{query}")
    for run in stack.runs:
        visible(page, run.info.run_name)
    close_mlflow_assistant(page)
    # the plots fill the first screen: folded, the run names and the params share the picture
    visible(page, "Visualizations").click()
    switch = page.find_element("css selector", 'button[aria-label="Parameters - Show diff only"]')
    switch.click()
    table = switch.find_element(
        "xpath", "following::table[contains(@class, 'mlflow-compare-run-table')][1]"
    )
    rows = [r for r in table.find_elements("css selector", "tr") if r.is_displayed()]
    shown_rows = {
        r.find_element("css selector", "th").text: [
            td.text for td in r.find_elements("css selector", "td")
        ]
        for r in rows
    }
    screenshots.save(page, "mlflow-compare-runs",
                     "MLflow: two runs compared, only the param that differs (train.tfidf.C)")  # fmt: skip

    assert switch.get_attribute("aria-checked") == "true"
    logged = [r.data.params["train.tfidf.C"] for r in stack.runs]  # 10 and 0.05 (conftest)
    assert shown_rows == {"train.tfidf.C": logged}


def test_registered_model_page_shows_the_aliases(
    stack: Stack, page: Any, screenshots: Screenshots
) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=stack.mlflow, registry_uri=stack.mlflow)
    model = client.get_registered_model(stack.model)
    first_visit(page, f"{stack.mlflow}/#/models/{quote(stack.model)}?{ML_MODE}")
    visible(page, stack.model)
    close_mlflow_assistant(page)
    for alias in ("champion", "challenger"):
        visible(page, alias, exact=False)
    screenshots.save(page, "mlflow-registered-model",
                     "MLflow: the registered model's versions and their aliases")  # fmt: skip

    assert set(model.aliases) == {"champion", "challenger"}
    for alias, version in model.aliases.items():
        row = visible(page, f"Version {version}").find_element(
            "xpath", "ancestor::*[@role='row'][1]"
        )
        assert alias in row.text, f"version {version}'s row shows no {alias}: {row.text!r}"


# ------------------------------------------------------------------ the validation report


def test_validation_report_renders_styled_with_no_network(
    stack: Stack, page: Any, screenshots: Screenshots
) -> None:
    report = stack.root / "reports" / "validation" / "report.html"
    assert report.is_file(), f"the validate stage wrote no {report.relative_to(stack.root)}"
    page.set_network_conditions(offline=True, latency=0, download_throughput=0,
                                upload_throughput=0)  # fmt: skip
    page.get(report.as_uri())
    visible(page, "Data validation")
    screenshots.save(page, "validation-report",
                     "The data validation report, opened from the file with no network")  # fmt: skip

    assert_styled_and_self_contained(page)


def assert_styled_and_self_contained(driver: Any) -> None:
    """The report's own stylesheet applies, and nothing was or would be fetched."""
    loaded = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert [u for u in loaded if not u.startswith(("file:", "data:", "blob:"))] == []
    style = driver.execute_script(STYLE_FACTS)
    assert style["rules"] > 10, style
    assert "serif" not in style["font"].replace("sans-serif", ""), style  # not the UA's Times
    assert style["th"] not in (None, "rgba(0, 0, 0, 0)", "transparent"), style
    assert style["external"] == [], style


STYLE_FACTS = """const s = e => getComputedStyle(e);
const rules = [...document.styleSheets].reduce((n, sheet) => n + sheet.cssRules.length, 0);
const th = document.querySelector('th');
return {rules: rules, font: s(document.body).fontFamily,
        th: th ? s(th).backgroundColor : null,
        external: [...document.querySelectorAll('link[href], script[src], img[src]')]
                  .map(e => e.href || e.src)};"""


def test_validation_report_renders_in_mlflow_artifact_viewer(
    stack: Stack, page: Any, screenshots: Screenshots
) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=stack.mlflow)
    # the run that validated: the second one reused that stage's cached result
    found = [(run.info.run_id, a.path) for run in stack.runs
             for a in _artifacts(client, run.info.run_id) if a.path.endswith("report.html")]  # fmt: skip
    assert found, "no run logged a report.html"
    run_id, path = found[0]
    first_visit(page, f"{stack.mlflow}/#/experiments/{stack.experiment_id}/runs/{run_id}"
                      f"/artifacts/{path}?{ML_MODE}")  # fmt: skip
    frame = _wait_for(page, "iframe.mlflow-html-iframe")
    close_mlflow_assistant(page)
    page.switch_to.frame(frame)
    try:
        visible(page, "Data validation")
        page.switch_to.default_content()
        screenshots.save(page, "mlflow-validation-artifact",
                         "MLflow: the validation report in the run's artifact viewer")  # fmt: skip
        page.switch_to.frame(frame)
        assert_styled_and_self_contained(page)
    finally:
        page.switch_to.default_content()


def _artifacts(client: Any, run_id: str, path: str | None = None) -> list[Any]:
    """Every file the run logged, folders walked."""
    files = []
    for item in client.list_artifacts(run_id, path):
        files += _artifacts(client, run_id, item.path) if item.is_dir else [item]
    return files


# ------------------------------------------------------------------ Prefect


def test_prefect_flow_run_page_shows_name_and_tags(
    stack: Stack, page: Any, screenshots: Screenshots
) -> None:
    run = stack.runs[-1]
    flow_run_id = run.data.tags["prefect.flow_run_id"]
    page.get(f"{stack.prefect}/runs/flow-run/{flow_run_id}")
    heading = visible(page, run.info.run_name)  # the flow run is named as its MLflow run
    visible(page, "Completed")
    screenshots.save(page, "prefect-flow-run",
                     "Prefect: the training flow run, named and tagged for what it trains")  # fmt: skip

    assert heading.find_elements("xpath", "ancestor::header"), "the name is not the page heading"
    tags = {t.text for t in page.find_elements("css selector", "header .p-tag") if t.is_displayed()}
    expected = {f"project:{stack.root.name}", "family:tfidf_logreg", "data:support_tickets"}
    assert expected <= tags, tags
