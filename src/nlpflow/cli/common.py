"""What every command shares: the consoles, the --set and --config options, loading params.

from nlpflow.cli.common import ConfigOption, SetOption, load_project, out
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from nlpflow.config.settings import load_settings

console = Console(stderr=True)
out = Console(soft_wrap=True)  # commands and paths must stay copy-pasteable

SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override one param: dotted.key=value (repeatable)."),
]
ConfigOption = Annotated[
    list[Path] | None,
    typer.Option("--config", "-c", help="A params file merged over params.yaml (repeatable)."),
]


def load_project(overrides: list[str] | None, configs: list[Path] | None = None) -> tuple[Any, Any]:
    from nlpflow.config.params import load_params

    settings = load_settings()
    return settings, load_params(settings.root / "params.yaml", overrides, configs)


def default_model(model: str | None, settings: Any, configs: list[Path] | None = None) -> str:
    """--model as given; not given, the project's registered model (NLPFLOW_REGISTERED_MODEL,
    else params register.model_name, else the data's name: nlpflow.config.naming), said in one
    line on stderr so the answer on stdout stays clean."""
    if model:
        return model
    from nlpflow.config.naming import project_model_name

    name = project_model_name(settings, configs)
    console.print(f"{name.line}; or name one with --model", markup=False, highlight=False,
                  soft_wrap=True)  # fmt: skip
    return name.name
