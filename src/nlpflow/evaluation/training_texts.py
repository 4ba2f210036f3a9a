"""What a model trained on, kept as hashes: a later promotion gate tells which of its own test
rows a model saw in training (text_key of each train and validation text).
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

from nlpflow.data.splits import load_splits

TRAINING_TEXTS = "train_text_hashes.txt.gz"  # in the evaluation folder; see save_text_hashes


def training_texts(src: Path) -> list[str]:
    """The raw texts the model learned from: the train and validation splits (validation
    chose its checkpoint)."""
    frames = load_splits(src, ("train", "validation")).values()
    column = [f["raw_text"] if "raw_text" in f.columns else f["text"] for f in frames]
    return [str(text) for texts in column for text in texts]


def text_key(text: str) -> str:
    """A text's identity for "did a model train on this test row?": the sha256 of the text
    NFKC-normalised, case-folded, its whitespace collapsed (a copy that differs only so is
    the same row to the model), cut to 16 hex digits: 64 bits, so two different texts share
    a key about once in 10^19 pairs, and 10,000 keys take 170 KB (93 KB gzipped)."""
    import unicodedata

    normal = " ".join(unicodedata.normalize("NFKC", text).casefold().split())
    return hashlib.sha256(normal.encode()).hexdigest()[:16]


def save_text_hashes(path: Path, texts: list[str]) -> int:
    """The sorted, distinct text_keys of `texts`, one a line, gzipped (no time stamp, so the
    same texts give the same bytes: DVC sees no change). Returns how many."""
    keys = sorted({text_key(t) for t in texts})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress("".join(f"{k}\n" for k in keys).encode(), mtime=0))
    return len(keys)


def load_text_hashes(path: Path) -> set[str]:
    return set(gzip.decompress(path.read_bytes()).decode().split())
