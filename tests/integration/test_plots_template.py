"""DVC's plots page offline: nlpflow's template carries Vega inline and DVC is pointed at it.

A real `dvc init`; the page is filled by DVC's own renderer (dvc_render). Drawing it in a
browser is tests/integration/test_dvc_plots.py's part.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from nlpflow.pipeline.dvc_plots import TEMPLATE, ensure_offline_plots, vega_lite_version


def _dvc(root: Path, *args: str, env: dict[str, str]) -> str:
    done = subprocess.run(["dvc", *args], cwd=root, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_newest_vega_lite_5_is_chosen_as_dvc_templates_declare_v5() -> None:
    assert vega_lite_version(["5.8", "5.21", "5.14", "6.1", "6.4"]) == "5.21"
    assert vega_lite_version(["6.1", "6.4"]) == "6.4"  # no 5 left: the newest


def test_template_written_once_and_dvc_pointed_at_it(tmp_path: Path, venv_env) -> None:
    from dvc_render import VegaRenderer, render_html

    _dvc(tmp_path, "init", "--no-scm", "-q", env=venv_env)
    path = ensure_offline_plots(tmp_path / "reports" / "plots")  # below the project, not yet made
    assert path == tmp_path / ".dvc" / TEMPLATE and path.is_file()
    assert _dvc(tmp_path, "config", "plots.html_template", env=venv_env) == TEMPLATE
    assert (tmp_path / ".dvc" / "config.local").is_file()  # never the committed .dvc/config
    assert "html_template" not in (tmp_path / ".dvc" / "config").read_text()

    stamp = path.stat().st_mtime_ns
    assert ensure_offline_plots(tmp_path) == path and path.stat().st_mtime_ns == stamp

    points = [{"x": 1, "y": 2, "rev": "workspace"}, {"x": 2, "y": 3, "rev": "workspace"}]
    plot = VegaRenderer(points, "loss", x="x", y="y", template="linear")
    page = Path(render_html([plot], tmp_path / "out" / "index.html", html_template=str(path)))
    html = page.read_text()
    assert re.findall(r"<script[^>]*\bsrc=", html) == []  # DVC's CDN tags are gone
    assert "cdn." not in html
    assert html.count('<div id = "loss">') == 1 and "vegaEmbed('#loss', spec)" in html
    assert "window.vegaEmbed" in html and "vega-lite 5." in html  # the libraries, inline


def test_a_template_of_the_users_own_is_left_alone(tmp_path: Path, venv_env) -> None:
    _dvc(tmp_path, "init", "--no-scm", "-q", env=venv_env)
    _dvc(tmp_path, "config", "plots.html_template", "mine.html", env=venv_env)
    assert ensure_offline_plots(tmp_path) is None
    assert _dvc(tmp_path, "config", "plots.html_template", env=venv_env) == "mine.html"
    assert not (tmp_path / ".dvc" / TEMPLATE).exists()


def test_outside_a_dvc_project_nothing_is_written(tmp_path: Path) -> None:
    assert ensure_offline_plots(tmp_path / "reports" / "plots") is None
    assert list(tmp_path.iterdir()) == []
