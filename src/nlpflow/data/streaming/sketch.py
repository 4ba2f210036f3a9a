"""Data-wide facts of text splits, gathered chunk by chunk: exact counts, not estimates.

What the cross-row checks need from all rows at once (repeats, test texts in train, class
counts, the median length, shares for drift) is kept per row as fixed-size numbers: a 64-bit
hash of the text and of its normalised form, its token count, a few flags. About 40 bytes a
row, whatever the text's length: 40 MB for a million rows; validation and test rows keep 16
more, the key and word count of their normalised text, looked for inside train's texts by a
second read of train (`scan_train`, nlpflow.data.subphrase). Hashes stand for texts: two
different texts share one with probability about n²/2⁶⁵ (3e-8 for a million rows), the
price of never holding the texts themselves.

    sketch = TextSketch()
    for split, frame in chunks:
        sketch.add(split, frame)
    sketch.finish()                  # then sketch.is_repeat[i], sketch.leak_exact[i], ...
    for texts in train_chunks:
        sketch.scan_train(texts)
    sketch.finish_scan()             # then sketch.subphrase_words[i]
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from nlpflow.data.splits import SPLITS
from nlpflow.data.subphrase import PhraseIndex
from nlpflow.data.text import normalize_text

_SPLIT_CODE = {name: code for code, name in enumerate(SPLITS)}
_TRAIN, _TEST = _SPLIT_CODE["train"], _SPLIT_CODE["test"]


def text_hashes(values: pd.Series) -> np.ndarray:
    """A 64-bit hash of each value (pandas' SipHash of its bytes); a null's is meaningless."""
    return pd.util.hash_pandas_object(values, index=False).to_numpy(dtype=np.uint64)


def normalized_hashes(values: pd.Series) -> np.ndarray:
    """text_hashes of normalize_text of each text (nulls stay null)."""
    normal = pd.Series(
        [normalize_text(t) if isinstance(t, str) else None for t in values], dtype=object
    )
    return text_hashes(normal)


def first_seen(keys: np.ndarray) -> np.ndarray:
    """True where a key occurs for the first time (in order): np.unique's first indices,
    by a stable sort so that equal keys keep their order."""
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    first = np.ones(len(keys), dtype=bool)
    first[1:] = ordered[1:] != ordered[:-1]
    out = np.empty(len(keys), dtype=bool)
    out[order] = first
    return out


def _joined(arrays: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(arrays) if arrays else np.zeros(0, dtype=dtype)


class TextSketch:
    """Rows of all splits in order (train, validation, test), numbered from 0 as
    build_frame numbers them; `add` each chunk once, then `finish`."""

    def __init__(self) -> None:
        self.rows: dict[str, int] = dict.fromkeys(SPLITS, 0)
        self.labels: dict[str, Counter[str]] = {s: Counter() for s in SPLITS}
        self.columns: list[str] = []
        self._parts: list[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self._phrases: list[PhraseIndex] = []  # validation and test texts, chunk by chunk
        self._phrase_rows: list[np.ndarray] = []
        self.phrases: PhraseIndex | None = None

    @property
    def total(self) -> int:
        return sum(self.rows.values())

    def add(self, split: str, frame: pd.DataFrame) -> None:
        self.rows[split] += len(frame)
        self.columns = self.columns or list(frame.columns)
        text = frame["text"]
        labels = frame["label"].dropna().astype(str)
        self.labels[split].update(labels.value_counts().to_dict())
        notnull = text.notna().to_numpy()
        exact = text_hashes(text)
        # normalised texts of train and test only: the normalised leak check compares those
        normal = (
            normalized_hashes(text) if split != "validation" else np.zeros(len(text), np.uint64)
        )
        tokens = text.fillna("").str.count(r"\S+").to_numpy(dtype=np.int32)
        if split != "train":
            self._phrases.append(PhraseIndex.of(text, min_tokens=1))
            self._phrase_rows.append(np.arange(self.total - len(frame), self.total))
        self._parts.append((_SPLIT_CODE[split], notnull, exact, normal, tokens))

    def finish(self) -> None:
        """Turn the per-chunk hashes into the per-row flags the checks read, and drop them."""
        parts, self._parts = self._parts, []
        split = _joined([np.full(len(p[1]), p[0], np.int8) for p in parts], np.int8)
        notnull = _joined([p[1] for p in parts], np.bool_)
        exact = _joined([p[2] for p in parts], np.uint64)
        normal = _joined([p[3] for p in parts], np.uint64)
        self.tokens = _joined([p[4] for p in parts], np.int32)
        self.is_repeat = np.zeros(len(exact), dtype=bool)
        present = np.flatnonzero(notnull)
        self.is_repeat[present] = ~first_seen(exact[present])
        train, test = notnull & (split == _TRAIN), notnull & (split == _TEST)
        self.leak_exact = np.zeros(len(exact), dtype=bool)
        self.leak_exact[test] = np.isin(exact[test], exact[train])
        self.leak_normalized = np.zeros(len(exact), dtype=bool)
        self.leak_normalized[test] = np.isin(normal[test], normal[train])
        self.subphrase_words = np.zeros(len(exact), dtype=np.int32)
        self._phrase_at = _joined(self._phrase_rows, np.int64)
        self.phrases = PhraseIndex(
            _joined([p.keys for p in self._phrases], np.uint64),
            _joined([p.lengths for p in self._phrases], np.int64), min_tokens=1,
        )  # fmt: skip
        self._phrases, self._phrase_rows = [], []

    def scan_train(self, texts: pd.Series) -> None:
        """Look for the validation and test texts inside these train texts (after finish,
        every train chunk once, then finish_scan)."""
        assert self.phrases is not None, "finish() first"
        self.phrases.scan(texts)

    def finish_scan(self) -> None:
        """subphrase_words: per row, the words of a validation or test text found inside a
        train text (0: none found, and for train rows)."""
        assert self.phrases is not None, "finish() first"
        found = self.phrases.found
        self.subphrase_words[self._phrase_at] = np.where(found, self.phrases.lengths, 0)

    def all_labels(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for counts in self.labels.values():
            total.update(counts)
        return total

    def token_median(self) -> float:
        return float(np.median(self.tokens)) if len(self.tokens) else float("nan")
