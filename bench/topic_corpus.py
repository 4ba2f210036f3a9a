"""A labelled corpus for the topic-modeling benchmark: the docstrings of the installed Python
packages, each labelled with its top-level package (numpy, sklearn, torch, ...).

Every module, class and function docstring (ast, no import) of the *.py files under
site-packages with at least --min-words words, whitespace collapsed to single spaces, in a
fixed order (files by path, docstrings by line), exact repeats kept once (the first), and at
most --max-per-package per package (an evenly seeded sample, in corpus order).

    python bench/topic_corpus.py data/topics/docstrings.jsonl [--min-words 20]
        [--max-per-package 5000] [--site-packages PATH]

Writes JSONL rows {"text", "label"} and, beside them, <name>.manifest.json: the options, the
package versions (the distributions that install each top-level package) and the counts.
"""

from __future__ import annotations

import argparse
import ast
import json
import random
import sys
import sysconfig
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
SKIPPED_DIRS = {"__pycache__"}


def package_of(path: Path, root: Path) -> str | None:
    """The top-level package (or single-file module) a file belongs to; None outside one."""
    first = path.relative_to(root).parts[0]
    if first.endswith((".dist-info", ".egg-info", ".data")) or first in SKIPPED_DIRS:
        return None
    return first.removesuffix(".py")


def python_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*.py")):
        if path.is_file() and not SKIPPED_DIRS.intersection(path.parts):
            yield path


def docstrings(source: str) -> list[str]:
    """The module's, its classes' and functions' docstrings, by line, whitespace collapsed."""
    with warnings.catch_warnings():  # invalid escape sequences in old files
        warnings.simplefilter("ignore")
        tree = ast.parse(source)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, DOCUMENTED) and (doc := ast.get_docstring(node, clean=True)):
            found.append((getattr(node, "lineno", 0), " ".join(doc.split())))
    return [doc for _, doc in sorted(found, key=lambda item: item[0])]


def collect(root: Path, *, min_words: int) -> tuple[list[dict[str, str]], dict[str, int]]:
    rows: list[dict[str, str]] = []
    seen: set[str] = set()
    stats = Counter[str]()
    for path in python_files(root):
        label = package_of(path, root)
        if label is None:
            continue
        try:
            found = docstrings(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError, RecursionError):
            stats["files_unparsed"] += 1
            continue
        stats["files_parsed"] += 1
        for text in found:
            if len(text.split()) < min_words:
                stats["too_short"] += 1
            elif text in seen:
                stats["duplicates"] += 1
            else:
                seen.add(text)
                rows.append({"text": text, "label": label})
    return rows, dict(stats)


def cap_per_package(rows: list[dict[str, str]], cap: int | None, seed: int) -> list[dict[str, str]]:
    if cap is None:
        return rows
    by_label: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        by_label.setdefault(row["label"], []).append(i)
    rng = random.Random(seed)
    keep: set[int] = set()
    for label in sorted(by_label):
        indices = by_label[label]
        keep.update(indices if len(indices) <= cap else rng.sample(indices, cap))
    return [row for i, row in enumerate(rows) if i in keep]


def versions(labels: set[str]) -> dict[str, dict[str, str]]:
    """{package: {distribution: version}} for the distributions that install each package."""
    from importlib.metadata import PackageNotFoundError, packages_distributions, version

    by_package = packages_distributions()
    out: dict[str, dict[str, str]] = {}
    for label in sorted(labels):
        out[label] = {}
        for dist in sorted(set(by_package.get(label, []))):
            try:
                out[label][dist] = version(dist)
            except PackageNotFoundError:
                out[label][dist] = "unknown"
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the JSONL file to write")
    parser.add_argument("--min-words", type=int, default=20)
    parser.add_argument("--max-per-package", type=int, default=None)
    parser.add_argument("--seed", type=int, default=13, help="of the per-package sample")
    parser.add_argument(
        "--site-packages", type=Path, default=Path(sysconfig.get_paths()["purelib"])
    )
    args = parser.parse_args(argv)

    root = args.site_packages.resolve()
    rows, stats = collect(root, min_words=args.min_words)
    found = len(rows)
    rows = cap_per_package(rows, args.max_per_package, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as file:
        for row in rows:
            file.write(json.dumps(row, ensure_ascii=False) + "\n")
    counts = Counter(row["label"] for row in rows)
    manifest = {
        "site_packages": str(root),
        "python": sys.version.split()[0],
        "min_words": args.min_words,
        "max_per_package": args.max_per_package,
        "seed": args.seed,
        "documents": len(rows),
        "documents_before_cap": found,
        **stats,
        "packages": {
            label: {"documents": counts[label], "distributions": dists}
            for label, dists in versions(set(counts)).items()
        },
    }
    manifest_path = args.out.with_name(args.out.stem + ".manifest.json")
    manifest_path.write_text(json.dumps(manifest, indent=2))
    top = ", ".join(f"{label} {n}" for label, n in counts.most_common(8))
    print(f"{len(rows)} documents from {len(counts)} packages ({top}, ...) -> {args.out}")
    return manifest


if __name__ == "__main__":
    main()
