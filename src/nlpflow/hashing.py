"""Content hashes of files and folders, for every layer (standard library only).

    from nlpflow.hashing import hash_path, digest
    hash_path(Path("models/model"))   # sha256 of the folder's file names and contents
    digest({"a": 1})                  # sha256 of a JSON-able value, keys sorted

Low in the package on purpose: train fingerprints the model it wrote, register checks that
fingerprint, and the pipeline keys its stage caches on the same hashes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

ABSENT = "absent"
# (path, size, mtime_ns, inode) -> sha256: re-hashing an unchanged 90 MB model is the bulk
# of a no-op re-run otherwise. A file rewritten in place keeps its inode but not its mtime.
_FILE_MEMO: dict[tuple[str, int, int, int], str] = {}


def hash_file(path: Path) -> str:
    stat = path.stat()
    memo_key = (str(path), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    found = _FILE_MEMO.get(memo_key)
    if found is None:
        sha = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                sha.update(block)
        found = _FILE_MEMO[memo_key] = sha.hexdigest()
    return found


def hash_path(path: Path) -> str:
    """sha256 of a file, or of a folder's relative file names and contents; ABSENT if missing."""
    if path.is_file():
        return hash_file(path)
    if not path.is_dir():
        return ABSENT
    sha = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        sha.update(file.relative_to(path).as_posix().encode() + b"\0")
        sha.update(hash_file(file).encode())
    return sha.hexdigest()


def digest(value: Any) -> str:
    """sha256 of a JSON-able value (keys sorted; other objects by str)."""
    text = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
