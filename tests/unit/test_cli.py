"""The command line's shape: every command registered once, in help order; `nlpflow stage`'s help
from the stage table; `nlpflow dvc-yaml [--check]` writing and checking dvc.yaml.

    .venv/bin/python -m pytest tests/unit/test_cli.py -q
"""

from __future__ import annotations

from pathlib import Path

import click
import pytest
import typer
from typer.testing import CliRunner

from nlpflow.cli.main import app
from nlpflow.pipeline import dvcyaml
from nlpflow.pipeline.stages import STAGE_NAMES


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("COLUMNS", "200")  # help tables unwrapped: one command a line
    return CliRunner()


def test_every_command_is_registered_once_in_help_order(cli: CliRunner) -> None:
    group = typer.main.get_command(app)
    names = group.list_commands(click.Context(group))
    assert names == [
        "params", "stage", "train-node", "run", "doctor", "infer", "sweep", "deploy", "worker", "ui",
        "serve", "predict", "lineage", "reproduce", "dvc-yaml", "registry",
    ]  # fmt: skip
    done = cli.invoke(app, ["--help"])
    assert done.exit_code == 0
    assert all(f"│ {name} " in done.output for name in names)


def test_stage_help_lists_the_stage_table(cli: CliRunner) -> None:
    done = cli.invoke(app, ["stage", "--help"])
    assert done.exit_code == 0
    assert f"Stages, in pipeline order: {', '.join(STAGE_NAMES)}." in done.output
    assert "baseline" in STAGE_NAMES


def test_dvc_yaml_writes_then_reports_unchanged(cli: CliRunner, tmp_path: Path) -> None:
    target = tmp_path / "dvc.yaml"
    first = cli.invoke(app, ["dvc-yaml", "--path", str(target)])
    assert (first.exit_code, first.output) == (0, f"{target} written\n")
    assert target.read_text() == dvcyaml.render()
    again = cli.invoke(app, ["dvc-yaml", "--path", str(target)])
    assert (again.exit_code, again.output) == (0, f"{target} unchanged\n")


def test_dvc_yaml_check_fails_with_a_diff_when_stale(cli: CliRunner, tmp_path: Path) -> None:
    target = tmp_path / "dvc.yaml"
    target.write_text(
        dvcyaml.render().replace("cmd: nlpflow stage train\n", "cmd: python train.py\n")
    )
    done = cli.invoke(app, ["dvc-yaml", "--check", "--path", str(target)])
    assert done.exit_code == 1
    assert "-    cmd: python train.py\n+    cmd: nlpflow stage train\n" in done.output
    assert done.output.endswith(f"{target} is out of date: run `nlpflow dvc-yaml`\n")
    assert "python train.py" in target.read_text()  # --check changes nothing


def test_dvc_yaml_check_passes_when_current_in_the_project_folder(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NLPFLOW_PROJECT_DIR", raising=False)
    (tmp_path / "dvc.yaml").write_text(dvcyaml.render())
    done = cli.invoke(app, ["dvc-yaml", "--check"])
    assert (done.exit_code, done.output) == (
        0,
        f"{tmp_path / 'dvc.yaml'} is up to date with the stage table\n",
    )


@pytest.mark.subprocess
def test_the_installed_command_exits_with_the_code_a_command_raises(tmp_path: Path) -> None:
    """`nlpflow` runs the app out of click's standalone mode, where a command's
    `raise typer.Exit(1)` comes back as a return value: the process must still exit 1 (CI's
    `make lint` relies on `dvc-yaml --check` failing on a stale file)."""
    import subprocess
    import sys

    nlpflow = Path(sys.executable).with_name("nlpflow")
    stale = tmp_path / "dvc.yaml"
    stale.write_text("stages: {}\n")
    done = subprocess.run(
        [str(nlpflow), "dvc-yaml", "--check", "--path", str(stale)],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "is out of date: run `nlpflow dvc-yaml`" in done.stdout
    assert stale.read_text() == "stages: {}\n"  # --check changes nothing
    missing = tmp_path / "no-such-folder" / "dvc.yaml"
    done = subprocess.run(
        [str(nlpflow), "dvc-yaml", "--path", str(missing)],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    assert f"the folder {missing.parent} does not exist" in done.stdout + done.stderr
    assert not missing.parent.exists()
