"""A stage's code: the nlpflow source files its entry module imports, directly or not.

    from nlpflow.pipeline.codedeps import code_deps, code_hash
    code_deps("nlpflow.pipeline.steps.train")  # ('nlpflow/__init__.py', ..., 'nlpflow/training/...')
    code_hash("nlpflow.pipeline.steps.train")  # sha256 of those files' names and bytes

Both runners use it: `dvc.yaml` lists these files as the stage's deps (nlpflow.pipeline.dvcyaml),
and the Prefect cache key of the stage's task hashes the same files (nlpflow.pipeline.fingerprint),
so a change to any file a stage imports re-runs that stage under either, and nothing else.

The imports are read from the source (ast), not by importing: module-level imports, imports
inside functions (heavy libraries and most nlpflow modules are imported where used), and
names handed to `importlib.import_module` (the model families are loaded by name): a string
that names an nlpflow module counts as importing it, and one that names a package followed by
a dot (`f"nlpflow.training.families.{code}"`) as importing every module in that package. The
walk stops at third-party packages. Imports under `if TYPE_CHECKING:` are left out: they never
run. Python runs a package's `__init__.py` before any module in it, so those count too.
"""

from __future__ import annotations

import ast
import hashlib
import re
from functools import cache
from pathlib import Path

PACKAGE = "nlpflow"
# Files no stage's deps list, each with the reason. Keep it short: every entry is a file whose
# change re-runs nothing, under either runner.
NOT_CODE: dict[str, str] = {
    # The error classes and their messages: what a failing stage says, never what a stage that
    # completes writes. Every stage imports it, so a reworded message would re-run them all.
    "nlpflow/errors.py": "error classes and messages only: they change no stage's outputs",
}
# A string that names an nlpflow module, as handed to importlib.import_module; or the start
# of one, a package and a dot, completed at run time (an f-string, a concatenation).
_MODULE_NAME = re.compile(rf"{PACKAGE}(\.[A-Za-z_][A-Za-z0-9_]*)+(?P<prefix>\.?)")
ANY = "*"  # "nlpflow.training.families.*": any module of the package


def package_root() -> Path:
    """The folder of the nlpflow package that runs (src/nlpflow in a checkout)."""
    import nlpflow

    return Path(nlpflow.__file__).parent


def module_file(name: str, root: Path) -> Path | None:
    """The source file of module `name` ("nlpflow.data.gather") under package folder `root`."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = root.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _named_module(node: ast.AST) -> str | None:
    """The nlpflow module a string constant names ("nlpflow.x.y", as importlib.import_module's
    argument), or "nlpflow.x.*" for a package and a dot (the rest of the name comes later)."""
    if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
        return None
    found = _MODULE_NAME.fullmatch(node.value)
    if found is None:
        return None
    return node.value + ANY if found["prefix"] else node.value


def imported_names(source: str) -> set[str]:
    """Every module name the source may import: `import a.b`, `from a import b` (a.b, if b is
    a module, and a), and strings that name an nlpflow module; not under TYPE_CHECKING."""
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for statement in node.orelse:
                visit(statement)
            return
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif (named := _named_module(node)) is not None:
            names.add(named)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source))
    return names


def _modules(name: str, root: Path) -> list[str]:
    """`name`, or for "pkg.*" the modules and subpackages in package pkg's folder."""
    if not name.endswith(f".{ANY}"):
        return [name]
    package = name.removesuffix(f".{ANY}")
    folder = root.joinpath(*package.split(".")[1:])
    if not folder.is_dir():
        return [package]
    found = [p.stem for p in folder.glob("*.py") if p.stem != "__init__"]
    found += [p.parent.name for p in folder.glob("*/__init__.py")]
    return [package, *(f"{package}.{module}" for module in sorted(found))]


def _with_packages(name: str) -> list[str]:
    """`name` and the packages above it ("nlpflow", "nlpflow.data", "nlpflow.data.gather"):
    importing a module runs their __init__.py first."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


@cache
def _imports_of(file: Path, stamp: tuple[int, int]) -> frozenset[str]:
    """The nlpflow names a file imports, parsed once per version of it (size, mtime)."""
    return frozenset(n for n in imported_names(file.read_text()) if n.startswith(PACKAGE))


def _closure(entry: str, root: Path) -> list[Path]:
    seen: dict[Path, None] = {}
    todo = [entry]
    while todo:
        for name in (n for m in _modules(todo.pop(), root) for n in _with_packages(m)):
            file = module_file(name, root)
            if file is None or file in seen:
                continue  # third-party, a name inside a module, or done
            seen[file] = None
            stat = file.stat()
            todo.extend(_imports_of(file, (stat.st_size, stat.st_mtime_ns)))
    return list(seen)


def code_deps(*entries: str, root: Path | None = None) -> tuple[str, ...]:
    """The files modules `entries` run, as sorted paths from the package's parent folder
    ("nlpflow/data/gather.py"), without the files in NOT_CODE. `root`: the package folder
    (default: the installed one; a copy of it in tests)."""
    base = root or package_root()
    files: set[str] = set()
    for entry in entries:
        if module_file(entry, base) is None:
            raise ValueError(f"no module {entry} under {base}")
        files.update(f.relative_to(base.parent).as_posix() for f in _closure(entry, base))
    return tuple(sorted(files - NOT_CODE.keys()))


def code_hash(*entries: str, root: Path | None = None) -> str:
    """sha256 of the names and bytes of `code_deps(*entries)`: equal while none changed.
    Without `root`, the code this process runs: read once per process, as it imports it (a
    file edited while a run goes on must not give that run's results the new code's key)."""
    if root is None:
        return _running_code_hash(entries)
    digest = hashlib.sha256()
    for rel in code_deps(*entries, root=root):
        digest.update(rel.encode() + b"\0")
        digest.update(hashlib.sha256((root.parent / rel).read_bytes()).digest())
    return digest.hexdigest()


@cache
def _running_code_hash(entries: tuple[str, ...]) -> str:
    return code_hash(*entries, root=package_root())
