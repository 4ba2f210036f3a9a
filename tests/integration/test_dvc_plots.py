"""DVC as its get-started project shows it: metrics, params and plots compared across commits
and experiments, and `dvc plots show` drawn offline, each chart once.

One project (the repository's .gitignore and dvc.yaml, tfidf_logreg on the sample): `dvc repro`,
commit, change train.tfidf.C, `dvc repro` again; the DVC commands then compare HEAD with the
workspace; finally `dvc exp run -S` makes an experiment that `dvc exp show` lists with its metrics.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from tests.conftest import REPO, SAMPLE, _git, fast_params, make_project

pytestmark = pytest.mark.slow

LABELS = sorted(pd.read_csv(SAMPLE)["label"].unique())
CHARTS = {"validation", "confusion", "reliability"} | {
    f"reports/plots/{kind}/{label}.csv" for kind in ("roc", "pr") for label in LABELS
}
CHROMIUM = Path("/usr/bin/chromium")


def _dvc(root: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(["dvc", *args], cwd=root, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _set_c(root: Path, value: float) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["train"]["tfidf"]["C"] = value
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def _metrics(root: Path) -> dict[str, Any]:
    return json.loads((root / "reports" / "metrics.json").read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two runs (C=10 committed, C=1 in the workspace), what DVC says of them, then an experiment."""
    from tests.conftest import _venv_env

    root = make_project(tmp_path_factory.mktemp("dvc-plots") / "project",
                        fast_params(family="tfidf_logreg"))  # fmt: skip
    shutil.copy(REPO / ".gitignore", root / ".gitignore")  # what git keeps of reports/
    env = _venv_env() | {"NLPFLOW_PROJECT_DIR": str(root), "NLPFLOW_REGISTERED_MODEL": "plots"}
    env.pop("NLPFLOW_TRACKING_URI", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    _set_c(root, 10.0)
    _dvc(root, env, "repro")
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "C=10")
    out: dict[str, Any] = {"root": root, "committed": _metrics(root)}
    out["tracked"] = subprocess.run(["git", "ls-files", "reports"], cwd=root, text=True,
                                    capture_output=True, check=True).stdout.split()  # fmt: skip
    _set_c(root, 1.0)
    _dvc(root, env, "repro")
    out["workspace"] = _metrics(root)
    out["metrics_diff"] = json.loads(_dvc(root, env, "metrics", "diff", "--json"))
    out["params_diff"] = json.loads(_dvc(root, env, "params", "diff", "--json"))
    out["plots_json"] = json.loads(_dvc(root, env, "plots", "show", "--json"))["data"]
    pages = root.parent  # outside the repository: the pages are not committed below
    _dvc(root, env, "plots", "show", "-o", str(pages / "shown"))
    _dvc(root, env, "plots", "diff", "HEAD", "-o", str(pages / "diffed"))
    out["shown"], out["diffed"] = pages / "shown" / "index.html", pages / "diffed" / "index.html"
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "C=1")
    _dvc(root, env, "exp", "run", "-S", "train.tfidf.C=3.0", "-n", "c-three")
    out["experiment"] = _metrics(root)  # DVC applies the experiment's results to the workspace
    out["exp_show"] = json.loads(_dvc(root, env, "exp", "show", "--json"))
    return out


def test_metrics_and_plot_data_are_committed_the_rest_of_reports_is_not(runs) -> None:
    tracked = set(runs["tracked"])
    wanted = {"reports/metrics.json", "reports/train_history.csv", "reports/plots/confusion.csv",
              "reports/plots/calibration.csv"} | {c for c in CHARTS if c.endswith(".csv")}  # fmt: skip
    assert wanted <= tracked
    assert not [p for p in tracked if p.startswith(("reports/evaluation/", "reports/validation/"))]


def test_metrics_diff_and_params_diff_compare_the_commit_with_the_workspace(runs) -> None:
    diff = runs["metrics_diff"]["reports/metrics.json"]
    old, new = runs["committed"], runs["workspace"]
    assert old["macro_f1"] != new["macro_f1"]  # C=1 regularises harder (0.938 -> 0.924 measured)
    for name in ("accuracy", "macro_f1", "mcc"):
        assert (diff[name]["old"], diff[name]["new"]) == (old[name], new[name]), name
    changed = runs["params_diff"]["params.yaml"]
    assert set(changed) == {"train.tfidf.C"}
    assert (changed["train.tfidf.C"]["old"], changed["train.tfidf.C"]["new"]) == (10.0, 1.0)


def test_each_chart_once_with_no_script_from_a_network(runs) -> None:
    from dvc_render.base import Renderer

    shown = runs["plots_json"]
    assert set(shown) == CHARTS  # no PNG: the same charts are drawn from their data once
    assert all([entry["type"] for entry in entries] == ["vega"] for entries in shown.values())
    titles = {shown[i][0]["content"]["title"]["text"] for i in ("validation", "confusion")}
    assert titles == {"validation scores by epoch", "confusion matrix (test split)"}
    for page in (runs["shown"], runs["diffed"]):
        html = page.read_text()
        ids = re.findall(r'<div id = "([^"]+)"', html)
        assert sorted(ids) == sorted(Renderer.remove_special_chars(c) for c in CHARTS)
        assert re.findall(r"<script[^>]*\bsrc=", html) == [] and "cdn." not in html
    diffed = runs["diffed"].read_text()
    assert '"rev": "HEAD"' in diffed and '"rev": "workspace"' in diffed


def test_exp_show_lists_the_experiment_with_its_own_metrics(runs) -> None:
    rows = runs["exp_show"]
    baseline = next(r for r in rows if r["rev"] != "workspace")
    [experiment] = [e for group in baseline["experiments"] for e in group["revs"]]
    assert experiment["name"] == "c-three"
    metrics = experiment["data"]["metrics"]["reports/metrics.json"]["data"]
    assert metrics["macro_f1"] == runs["experiment"]["macro_f1"]
    assert experiment["data"]["params"]["params.yaml"]["data"]["train"]["tfidf"]["C"] == 3.0
    committed = baseline["data"]["metrics"]["reports/metrics.json"]["data"]
    assert committed["macro_f1"] == runs["workspace"]["macro_f1"]  # the C=1 commit's own


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium package")
def test_chromium_draws_every_chart_with_name_resolution_off(runs, tmp_path: Path) -> None:
    from dvc_render.base import Renderer

    dom = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--host-resolver-rules=MAP * ~NOTFOUND",  # any request to a host fails
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000", "--dump-dom",
         runs["shown"].as_uri()],
        capture_output=True, text=True, timeout=180, check=True,
    ).stdout  # fmt: skip
    charts = {m.group(1): chunk for chunk in re.split(r'(?=<div id=")', dom)
              if (m := re.match(r'<div id="([^"]+)"', chunk))}  # fmt: skip
    assert set(charts) == {Renderer.remove_special_chars(c) for c in CHARTS}
    for name, chunk in charts.items():
        # Vega drew the chart: an SVG whose mark groups hold drawn items (lines, cells, points)
        drawn = re.findall(
            r'role-mark[^>]*>\s*<(?:path|text|rect)\b[^>]*?(?:d="M|translate)', chunk
        )
        assert "<svg" in chunk and drawn, name
