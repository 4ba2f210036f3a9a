"""Error codes live in one place: every NlpflowError subclass is defined in nlpflow/errors.py,
each code belongs to one class, and the numbers run without a gap."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from nlpflow import errors
from nlpflow.errors import NlpflowError

SRC = Path(errors.__file__).parent
CLASSES = [
    c
    for _, c in inspect.getmembers(errors, inspect.isclass)
    if issubclass(c, NlpflowError) and c.__module__ == errors.__name__
]


def test_every_error_class_is_defined_in_errors_py() -> None:
    names = {c.__name__ for c in CLASSES}
    elsewhere = []
    for file in sorted(SRC.rglob("*.py")):
        if file.name == "errors.py" and file.parent == SRC:
            continue
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            bases = {b.id for b in getattr(node, "bases", []) if isinstance(b, ast.Name)}
            bases |= {b.attr for b in getattr(node, "bases", []) if isinstance(b, ast.Attribute)}
            if isinstance(node, ast.ClassDef) and bases & names:
                elsewhere.append(f"{file.relative_to(SRC.parent)}:{node.lineno} {node.name}")
    assert not elsewhere, "define these in nlpflow/errors.py (with a code):\n" + "\n".join(
        elsewhere
    )


def test_each_code_is_one_class_and_the_numbers_have_no_gap() -> None:
    owners: dict[str, list[str]] = {}
    for cls in CLASSES:
        if "code" in vars(cls):
            owners.setdefault(cls.code, []).append(cls.__name__)
    shared = {code: names for code, names in owners.items() if len(names) > 1}
    assert not shared, f"one code per class: {shared}"
    numbers = sorted(int(code.removeprefix("NLP")) for code in owners)
    main = [n for n in numbers if n < 30]
    assert main == list(range(len(main))), f"a gap in NLP000..NLP{main[-1]:03d}: {numbers}"
    bookkeeping = [n for n in numbers if n >= 30]
    assert bookkeeping == list(range(30, 30 + len(bookkeeping))), f"a gap from NLP030: {numbers}"
    assert errors.DeployError.code == "NLP010" and errors.DiskFullError.code == "NLP009"


def test_the_docstring_table_names_every_code() -> None:
    doc = errors.__doc__ or ""
    for cls in CLASSES:
        assert f"{cls.code} {cls.__name__}" in doc or f"({cls.__name__})" in doc, cls.__name__


def test_errors_are_still_importable_where_they_were_raised() -> None:
    from nlpflow.orchestration.deployments import DeployError

    assert DeployError is errors.DeployError
    assert str(DeployError("x")) == "[NLP010] x"
