"""DVC's plots offline: a page template for `dvc plots show` / `dvc plots diff` with Vega inlined.

    python -m nlpflow.pipeline.dvc_plots [PROJECT_DIR]     (`make install` runs it; so does evaluate)

DVC's default page loads vega, vega-lite and vega-embed from a CDN, so offline every chart is
blank. DVC fills a page template of our own instead (`plots.html_template`, a path relative to
`.dvc/`): ours has no `{scripts}` placeholder, so DVC's CDN tags are dropped, and carries the
three libraries inline, bundled by vl-convert-python (the Vega project's own package) from the
copies inside its wheel. Nothing third-party is committed: the page is generated into
`.dvc/tmp/` (git-ignored by DVC) and the setting goes to `.dvc/config.local` (likewise).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from nlpflow.errors import NlpflowError

# Relative to .dvc/, as DVC resolves plots.html_template.
TEMPLATE = "tmp/nlpflow-plots.html"
_MARK = "nlpflow offline DVC plots template v1"  # bump when the page below changes
_PLACEHOLDERS = ("{plot_divs}", "{scripts}", "{refresh_tag}")
# What DVC's chart divs call: `vegaEmbed('#id', spec)`, a global.
_GLOBALS = "window.vega = vega; window.vegaLite = vegaLite; window.vegaEmbed = vegaEmbed;"

_PAGE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
{refresh_tag}
<title>DVC plots</title>
<!-- MARK: LIBRARIES -->
<script>
(function () {  // the bundle's own names stay inside; it sets window.vega, vegaLite, vegaEmbed
BUNDLE
})();
</script>
<style>
  body { font-family: sans-serif; margin: 16px; }
  body > div { display: inline-block; vertical-align: top; margin: 8px 16px 24px 0; }
</style>
</head>
<body>
{plot_divs}
</body>
</html>
"""


def find_dvc_dir(start: Path) -> Path | None:
    """The `.dvc` folder of the DVC project holding `start`, as DVC looks for it (upwards)."""
    for folder in (start.resolve(), *start.resolve().parents):
        if (folder / ".dvc").is_dir():
            return folder / ".dvc"
    return None


def ensure_offline_plots(start: Path) -> Path | None:
    """Make the DVC project holding `start` render its plots offline: write the page template
    if it is missing or stale, and point `plots.html_template` at it unless the user set their
    own. Returns the template's path; None outside a DVC project or under the user's template."""
    dvc_dir = find_dvc_dir(start)
    if dvc_dir is None:
        return None
    configured = _configured_template(dvc_dir)
    if configured not in (None, TEMPLATE):
        return None  # the user's own template: theirs to keep
    path = dvc_dir / TEMPLATE
    if not _is_current(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.partial")
        tmp.write_text(build_page(), encoding="utf-8")
        tmp.replace(path)  # a concurrent `dvc plots show` never reads half a page
    if configured is None:
        _set_local_template(dvc_dir)
    return path


def build_page() -> str:
    """The page: DVC's placeholders, and vega, vega-lite and vega-embed inline."""
    import vl_convert

    version = vega_lite_version(vl_convert.get_vegalite_versions())
    bundle = vl_convert.javascript_bundle(_GLOBALS, vl_version=version)
    if any(p in bundle for p in _PLACEHOLDERS):
        # DVC substitutes these anywhere in the page; inside the script they would corrupt it
        raise NlpflowError(
            f"vl-convert-python {_package_version()}'s bundle contains one of DVC's "
            f"placeholders {_PLACEHOLDERS}: pin vl-convert-python to a release that works "
            "(pyproject.toml) and run `make install` again."
        )
    libraries = (
        f"{_MARK}: vega {vl_convert.get_vega_version()}, vega-lite {version}, vega-embed "
        f"{vl_convert.get_vega_embed_version()}, bundled by vl-convert-python "
        f"{_package_version()}"
    )
    # "</script" inside the code would end the element early; "<\/" means the same to JS
    bundle = bundle.replace("</script", "<\\/script")
    return _PAGE.replace("MARK: LIBRARIES", libraries).replace("BUNDLE", bundle)


def vega_lite_version(available: list[str]) -> str:
    """The newest Vega-Lite 5 (DVC's plot templates declare the v5 schema); the newest of all
    where a vl-convert release has none left (v6 still renders v5 specs, with a warning)."""

    def key(version: str) -> tuple[int, ...]:
        return tuple(int(part) for part in version.lstrip("v").split("."))

    fives = [v for v in available if key(v)[0] == 5]
    return max(fives or available, key=key)


def _is_current(path: Path) -> bool:
    if not path.is_file():
        return False
    with path.open(encoding="utf-8") as fh:
        head = fh.read(400)
    return _MARK in head and f"vl-convert-python {_package_version()}" in head


def _package_version() -> str:
    from importlib.metadata import version

    return version("vl-convert-python")


def _configured_template(dvc_dir: Path) -> str | None:
    from dvc.config import Config

    config = Config(dvc_dir=str(dvc_dir), validate=False)
    value = config.get("plots", {}).get("html_template")
    return str(value) if value is not None else None


def _set_local_template(dvc_dir: Path) -> None:
    """`dvc config --local plots.html_template TEMPLATE`, without a subprocess."""
    from dvc.config import Config

    with Config(dvc_dir=str(dvc_dir), validate=False).edit("local") as conf:
        conf.setdefault("plots", {})["html_template"] = TEMPLATE


def main(argv: list[str]) -> int:
    root = Path(argv[0]) if argv else Path.cwd()
    path = ensure_offline_plots(root)
    if path is None:
        where = "no DVC project" if find_dvc_dir(root) is None else "your own plots.html_template"
        print(f"DVC plots template: left alone ({where} at {root.resolve()})")
    else:
        print(f"DVC plots template: {path} (vega inline: `dvc plots show` works offline)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
