"""The docs work as written: every `nlpflow`, `make` and `dvc` command shown in a ```bash or
```console block of README.md, docs/ and tests/README.md runs and exits 0, and the site builds
with `mkdocs build --strict` from bundled assets only.

    .venv/bin/python -m pytest tests/integration/test_docs_commands.py -q

The commands run in one throw-away project (the sample data, a tf-idf model so each run takes
seconds), page by page in the order a reader meets them (README, then the site's nav, then
tests/README.md), so a later page may use what an earlier one made (the registry page promotes
the version the usage page's `nlpflow run --force` registered). The project has had one
`nlpflow run` before the first page. Commands that start a server or take minutes are in SKIP,
each with the test that covers it instead; a SKIP entry that matches no command fails, so the
table cannot outlive the docs.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, _venv_env, fast_params, make_project

PROGRAMS = ("nlpflow", "make", "dvc")
# pattern (re.search on the command) -> why it does not run here, and what runs it instead
SKIP: dict[str, str] = {
    r"^make\b": "make's targets install, lint, build the docs or run this suite: .ci/run runs "
    "make lint, make docs and make test; `make run` is `nlpflow run` on the checkout",
    r"^nlpflow (serve|worker|ui)\b": "a server that runs until stopped: tests/integration/"
    "test_serving.py, tests/flows/test_deploy.py and tests/integration/test_ui_command.py",
    r"^nlpflow (sweep|run --config reports/sweep/)": "an Optuna study of sweep.n_trials "
    "trainings, minutes: tests/flows/test_sweep.py runs a small one and merges its output",
    r"^nlpflow run -c configs/": "a model on ../shared/datasets or a bundled sample, "
    "minutes: bench/quality.py, bench/ner.py, bench/topics.py; tests/integration/"
    "test_real_data.py, tests/flows/test_ner_flow.py and tests/flows/test_topic_flow.py "
    "(configs/ner_sample.yaml and configs/topics.yaml as shipped)",
    r"^nlpflow train-node$|^nlpflow run .*train\.distributed\.nnodes=[2-9]": "a multi-node training "
    "waits for its other machines: tests/model/test_multinode.py runs two nodes on one machine",
    r"^nlpflow reproduce\b": "rebuilds a run in a git worktree, minutes: "
    "tests/integration/test_reproduce.py",
    r"^dvc (exp run|queue)\b": "runs the whole pipeline again as a DVC experiment, minutes: "
    "tests/integration/test_dvc_experiments.py",
    r"postgresql://|s3://|endpointurl": "needs a PostgreSQL table (tests/integration/"
    "test_batch_inference.py) or an S3 endpoint (MinIO; untested here, see docs/limits.md)",
}
RAN: set[tuple[str, ...]] = set()  # a command shown on several pages (comments aside) runs once
FENCE = re.compile(r"^\s*```\s*([\w-]*)[^`]*$")  # an opening or closing fence line
SHELL_BLOCKS = ("bash", "console", "sh", "shell")


@dataclass(frozen=True)
class Command:
    page: str  # relative to the repository
    line: int  # where the command starts
    text: str

    def __str__(self) -> str:
        return f"{self.page}:{self.line}: {self.text}"


def pages() -> list[Path]:
    """README.md, the site's pages in nav order, tests/README.md."""
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    nav = [REPO / "docs" / next(iter(entry.values())) for entry in config["nav"]]
    return [REPO / "README.md", *nav, REPO / "tests" / "README.md"]


def shell_lines(text: str) -> list[tuple[int, str]]:
    """The command lines of a page's shell blocks, with their line numbers: `\\` continuations
    joined, `$ ` prompts of console blocks stripped (their output lines dropped)."""
    found: list[tuple[int, str]] = []
    language: str | None = None
    pending, start = "", 0
    for number, line in enumerate(text.splitlines(), start=1):
        fence = FENCE.match(line)
        if fence:
            language = None if language is not None else fence.group(1)
            continue
        if language not in SHELL_BLOCKS:
            continue
        if language == "console" and not pending:
            if not line.lstrip().startswith("$ "):
                continue
            line = line.lstrip()[2:]
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1].strip() + " "
            continue
        found.append((start, pending + line.strip()))
        pending = ""
    return found


def program(command: str) -> str:
    """The program a command line runs: its first word after any VAR=value assignments."""
    words = command.split()
    while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=\S*", words[0]):
        words.pop(0)
    return words[0] if words else ""


def commands(page: Path) -> list[Command]:
    name = str(page.relative_to(REPO))
    return [
        Command(name, number, text)
        for number, text in shell_lines(page.read_text())
        if program(text) in PROGRAMS
    ]


def skip_reason(command: Command) -> str | None:
    return next((why for pattern, why in SKIP.items() if re.search(pattern, command.text)), None)


def test_shell_blocks_are_read_as_a_reader_types_them() -> None:
    page = "\n".join([
        "```bash", "nlpflow run   # a comment stays: bash drops it", "# a comment line",
        "nlpflow infer --set a=1 \\", "              --set b=2", "```",
        "```console", "$ dvc repro", "Stage 'gather' didn't change, skipping", "```",
        "```python", "nlpflow = 1", "```", "```text", "make test", "```",
        "```bash", "CI=true make test", "source .venv/bin/activate", "```",
    ])  # fmt: skip
    lines = shell_lines(page)
    assert lines == [
        (2, "nlpflow run   # a comment stays: bash drops it"), (3, "# a comment line"),
        (4, "nlpflow infer --set a=1 --set b=2"), (8, "dvc repro"),
        (18, "CI=true make test"), (19, "source .venv/bin/activate"),
    ]  # fmt: skip
    assert [program(text) for _, text in lines] == [
        "nlpflow", "#", "nlpflow", "dvc", "make", "source",
    ]  # fmt: skip


def test_every_skip_entry_matches_a_command_and_most_commands_run() -> None:
    found = [command for page in pages() for command in commands(page)]
    unused = [p for p in SKIP if not any(re.search(p, c.text) for c in found)]
    assert not unused, f"SKIP entries that match no command in the docs: {unused}"
    ran = [command for command in found if skip_reason(command) is None]
    assert len(ran) >= 30, [str(c) for c in ran]  # the docs show the CLI, not only its servers
    assert len(ran) > len(found) - len(ran), "more docs commands skipped than run"


def test_the_site_builds_strict_from_bundled_assets(tmp_path: Path, venv_env) -> None:
    site = tmp_path / "site"
    done = subprocess.run(
        ["mkdocs", "build", "--strict", "--site-dir", str(site)], cwd=REPO, env=venv_env,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    html = "\n".join(p.read_text() for p in site.rglob("*.html"))
    remote = re.findall(r"<(?:script|link|img)\b[^>]*(?:src|href)=\"(https?://[^\"]+)", html)
    assert not remote, f"the site loads from the network: {sorted(set(remote))}"
    assert "tiny_encoder" in (site / "testing" / "index.html").read_text()  # tests/README.md


@pytest.fixture(scope="module")
def project(
    tmp_path_factory: pytest.TempPathFactory, prefect_api: str
) -> tuple[Path, dict[str, str]]:
    """A project that has had one `nlpflow run` (a champion, version 1)."""
    root = make_project(
        tmp_path_factory.mktemp("docs") / "project", fast_params(family="tfidf_logreg")
    )
    shutil.copytree(REPO / "configs", root / "configs")  # the data page's configs
    drop = ("NLPFLOW_TRACKING_URI", "MLFLOW_TRACKING_URI", "NLPFLOW_REGISTERED_MODEL")
    env = {k: v for k, v in _venv_env().items() if k not in drop}
    env |= {
        "NLPFLOW_PROJECT_DIR": str(root),
        "PREFECT_API_URL": prefect_api,
        "NLPFLOW_USER": "docs",
    }
    first = _run("nlpflow run", root, env)  # README's first run, here so any page can run alone
    assert first.returncode == 0, first.stdout[-3000:]
    RAN.add(("nlpflow", "run"))
    return root, env


def _run(command: str, root: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], cwd=root, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600,
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_command_on_the_page_runs(page: Path, project: tuple[Path, dict[str, str]]) -> None:
    root, env = project
    failed = []
    for command in commands(page):
        words = tuple(shlex.split(command.text, comments=True))
        if skip_reason(command) is not None or words in RAN:
            continue
        RAN.add(words)
        started = time.monotonic()
        done = _run(command.text, root, env)
        seconds = time.monotonic() - started
        if done.returncode != 0 or "Traceback (most recent call last)" in done.stdout:
            failed.append(
                f"{command}\n  exit {done.returncode} after {seconds:.0f} s:\n{done.stdout[-2000:]}"
            )
    assert not failed, "\n\n".join(failed)
