"""Imports point one way: every import in src/nlpflow, module-level and inside functions.

    .venv/bin/python -m pytest tests/unit/test_architecture.py -q

Layers, low to high; a module imports its own layer and the layers below, never one above:

    base           nlpflow/*.py (errors, shutdown, hashing, ...): standard library and pydantic
    config         params, settings, naming, secrets
    data           sources, gather, validation, preprocess
    training | evaluation   peers: they may import each other, without cycles
    tracking       the MLflow adapter
    serving        the pyfunc shipped in every model, the HTTP server, batch scoring
    release        registry, gate, lineage: register a model, move the champion
    pipeline       the stage table, runs, locking, DVC
    orchestration  Prefect deployments, the temporary Prefect server
    tasks          Prefect tasks: call the library
    flows          Prefect flows: compose tasks
    cli            the command line: the top

Third-party rules, each its own test: `prefect` only in orchestration, tasks and flows (the CLI
reaches Prefect through them); `mlflow` only in tracking and in the few modules of the MLflow
model format (nlpflow.tracking.MLFLOW_MODEL_FORMAT, each with its reason). A cycle between
nlpflow modules fails wherever it is, with its path. Each test reports every violation at once,
as file:line.
"""

from __future__ import annotations

import ast
import itertools
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

from nlpflow.tracking import MLFLOW_MODEL_FORMAT  # module -> why it imports mlflow

SRC = Path(__file__).resolve().parents[2] / "src"
LAYERS: tuple[tuple[str, ...], ...] = (
    ("",),  # the base: nlpflow/__init__.py and the top-level modules (nlpflow/errors.py ...)
    ("config",),
    ("data",),
    (
        "training",
        "evaluation",
    ),  # peers: families score with evaluation.metrics, evaluate loads them
    ("tracking",),
    ("serving",),
    ("release",),
    ("pipeline",),
    ("orchestration",),
    ("tasks",),
    ("flows",),
    ("cli",),
)
RANK = {package: rank for rank, packages in enumerate(LAYERS) for package in packages}
PREFECT_LAYERS = ("orchestration", "tasks", "flows")


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, e.g. nlpflow.pipeline.runs
    where: str  # file:line, relative to the repository
    target: str  # what it imports: a module, or a package plus name (resolved below)
    statement: (
        str  # the module the statement names: `from mlflow.types import Schema` -> mlflow.types
    )


def module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def find_imports(src: Path) -> list[Import]:
    """Every import statement under src/nlpflow, at any depth (functions, TYPE_CHECKING)."""
    found = []
    for path in sorted((src / "nlpflow").rglob("*.py")):
        module = module_name(path, src)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        where = path.relative_to(src.parent)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
                named = targets
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from . import x, from ..data import y
                    anchor = package.split(".")[: package.count(".") + 2 - node.level]
                    base = ".".join([*anchor, *([base] if base else [])])
                targets = [f"{base}.{alias.name}" for alias in node.names]
                named = [base] * len(targets)
            else:
                continue
            found += [
                Import(module, f"{where}:{node.lineno}", t, n)
                for t, n in zip(targets, named, strict=True)
            ]
    return found


class Tree:
    """The nlpflow modules under one src folder, and the imports between them."""

    def __init__(self, src: Path) -> None:
        self.src = src
        self.imports = find_imports(src)
        self.modules = {module_name(p, src) for p in (src / "nlpflow").rglob("*.py")}
        self.packages = {
            p.name for p in (src / "nlpflow").iterdir() if p.is_dir() and p.name != "__pycache__"
        }

    def package_of(self, module: str) -> str:
        """nlpflow.pipeline.runs -> pipeline; nlpflow.errors and nlpflow -> "" (the base)."""
        parts = module.split(".")
        return parts[1] if len(parts) > 1 and parts[1] in self.packages else ""

    def resolve(self, target: str) -> str:
        """The module an import loads: `from nlpflow.x import y` is nlpflow.x.y when y is a
        module, else nlpflow.x."""
        while target not in self.modules and "." in target:
            target = target.rpartition(".")[0]
        return target

    def edges(self) -> list[tuple[Import, str]]:
        """(import, the nlpflow module it loads) for every import of nlpflow by nlpflow."""
        return [
            (imp, self.resolve(imp.target))
            for imp in self.imports
            if imp.target == "nlpflow" or imp.target.startswith("nlpflow.")
        ]


def layer_violations(src: Path) -> list[str]:
    tree, problems = Tree(src), set()
    for imp, target in tree.edges():
        low, high = tree.package_of(target), tree.package_of(imp.module)
        for package in {low, high} - RANK.keys():
            problems.add(f"{imp.where}: nlpflow.{package} has no layer: add it to LAYERS")
        if RANK.get(low, -1) > RANK.get(high, len(LAYERS)):
            problems.add(
                f"{imp.where}: {imp.module} ({high or 'base'}) imports {target} "
                f"({low or 'base'}), a higher layer"
            )
    return sorted(problems, key=_by_place)


def _by_place(problem: str) -> tuple[str, int, str]:
    """file:line order, line numbers as numbers."""
    place = re.match(r"(.+?):(\d+): ", problem)
    return (place[1], int(place[2]), problem) if place else (problem, 0, problem)


def find_cycles(src: Path) -> list[str]:
    """The shortest cycle through each module that is on one, each set of modules once, each
    step with its file:line."""
    graph: dict[str, dict[str, str]] = defaultdict(dict)
    for imp, target in Tree(src).edges():
        if target != imp.module:
            graph[imp.module].setdefault(target, imp.where)
    cycles: dict[frozenset[str], str] = {}
    for module in sorted(graph):
        path = _shortest_cycle(module, graph)
        if path and frozenset(path) not in cycles:
            steps = [f"{a} -> {b} ({graph[a][b]})" for a, b in itertools.pairwise(path)]
            cycles[frozenset(path)] = "cycle: " + "; ".join(steps)
    return sorted(cycles.values())


def _shortest_cycle(start: str, graph: dict[str, dict[str, str]]) -> list[str] | None:
    """start, ..., start by breadth-first search; None when no import leads back to start."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph.get(node, {})):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    return None


def third_party_violations(
    src: Path, library: str, *, packages: tuple[str, ...], modules: dict[str, str] | None = None
) -> list[str]:
    """Imports of `library` (and of its integrations: prefect_dask ...) anywhere but in
    `packages` and `modules`."""
    tree, problems = Tree(src), set()
    for imp in tree.imports:
        top = imp.statement.split(".")[0]
        if top != library and not top.startswith(f"{library}_"):
            continue
        if tree.package_of(imp.module) not in packages and imp.module not in (modules or {}):
            problems.add(f"{imp.where}: {imp.module} imports {imp.statement}")
    return sorted(problems, key=_by_place)


def _fail_on(problems: list[str], what: str) -> None:
    """Every problem at once, one a line, without pytest's repr of the list."""
    if problems:
        pytest.fail(f"{len(problems)} {what}:\n  " + "\n  ".join(problems), pytrace=False)


def test_imports_never_reach_a_higher_layer() -> None:
    _fail_on(layer_violations(SRC), "imports of a higher layer (see LAYERS)")


def test_no_import_cycles() -> None:
    _fail_on(find_cycles(SRC), "import cycles between nlpflow modules")


def test_prefect_only_in_orchestration_tasks_and_flows() -> None:
    _fail_on(
        third_party_violations(SRC, "prefect", packages=PREFECT_LAYERS),
        "imports of prefect outside orchestration, tasks and flows (the library never imports "
        "prefect; the CLI reaches it through orchestration and flows)",
    )


def test_mlflow_only_in_tracking_and_the_model_format() -> None:
    _fail_on(
        third_party_violations(SRC, "mlflow", packages=("tracking",), modules=MLFLOW_MODEL_FORMAT),
        "imports of mlflow outside tracking/ and MLFLOW_MODEL_FORMAT (go through the "
        "nlpflow.tracking adapter)",
    )


def test_every_package_has_a_layer_and_every_allowed_module_exists() -> None:
    tree = Tree(SRC)
    assert tree.packages - RANK.keys() == set()
    assert set(MLFLOW_MODEL_FORMAT) - tree.modules == set()  # no stale entry lets one through


def test_the_checks_find_what_they_look_for(tmp_path: Path) -> None:
    """A backwards import inside a function, a cycle (one edge relative) and a stray prefect
    import in a small tree are each found, with file:line: the checks above can fail."""
    files = {
        "nlpflow/__init__.py": "",
        "nlpflow/errors.py": "",
        "nlpflow/data/__init__.py": "from nlpflow.errors import x\n",
        "nlpflow/data/a.py": "import os\n\n\ndef f():\n    from nlpflow.pipeline import b\n",
        "nlpflow/pipeline/__init__.py": "",
        "nlpflow/pipeline/b.py": "from nlpflow.pipeline.c import x\n",
        "nlpflow/pipeline/c.py": "from . import b\nimport prefect.flows\nx = 1\n",
    }
    src = tmp_path / "src"
    for name, text in files.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text(text)

    assert layer_violations(src) == [
        "src/nlpflow/data/a.py:5: nlpflow.data.a (data) imports nlpflow.pipeline.b (pipeline), "
        "a higher layer"
    ]
    assert find_cycles(src) == [
        "cycle: nlpflow.pipeline.b -> nlpflow.pipeline.c (src/nlpflow/pipeline/b.py:1); "
        "nlpflow.pipeline.c -> nlpflow.pipeline.b (src/nlpflow/pipeline/c.py:1)"
    ]
    assert third_party_violations(src, "prefect", packages=PREFECT_LAYERS) == [
        "src/nlpflow/pipeline/c.py:2: nlpflow.pipeline.c imports prefect.flows"
    ]
    assert third_party_violations(src, "prefect", packages=("pipeline",)) == []
