"""Whole-word sub-phrases: which texts occur, after normalisation, inside another text.

A text is normalised (normalize_text: case, accents, spacing, punctuation) and cut into words;
a text of k words occurs in another when k consecutive words of the other equal it ("not good"
in "the film is not good", never "good" in "goodness"). SST-2's train file holds phrases of
its sentences as rows of their own, so a split that only groups equal texts leaks.

    found = contained_in(["not good at all"], ["the film is not good at all"], min_tokens=2)
    index = PhraseIndex.of(queries, min_tokens=4); index.scan(train_chunk); ...; index.found

How: every run of k words of the scanned texts is hashed (a polynomial hash of its words'
64-bit hashes, mod 2^64, computed for all runs at once from numpy prefix sums) and looked up
among the hashes of the texts searched for, for each length k searched for. Time: the words
scanned times the number of distinct lengths searched for; memory: 16 bytes a text searched
for, plus one chunk's words. So the streaming path (millions of rows) holds only the searched
texts' hashes and scans train a chunk at a time, with the same results as in memory.
Measured (python bench/subphrase.py [--sentences 120000 --streamed], 2 shared, busy cores):
12,800 validation and test phrases in 51,200 train phrases (SST-2's size) in 0.5 s, where
`in` on each pair would take ~19 s; 192,000 in 768,000 in 10-20 s; in chunks of 50,000
rows, the scan of 768,000 train rows ~20 s beside ~10 s for the rest of the first pass, with
the same rows flagged. group_subphrases' first containers: 64,000 rows in ~1 s, 960,000 in
30-55 s. Most of it is normalising and hashing words, in Python. An Aho-Corasick
automaton (pyahocorasick) scans once whatever the lengths, but holds every searched text's
characters as trie nodes (tens of bytes each): gigabytes for millions of test rows, and a new
compiled dependency. Hashes stand for word runs: a false match has probability about
(runs scanned x texts searched) / 2^64, 5e-5 for 10^9 runs against 10^6 texts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nlpflow.data.text import normalize_text

_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd: invertible mod 2^64
_BASE_INV = np.uint64(pow(int(_BASE), -1, 1 << 64))
_LENGTH_MIX = np.uint64(0xC2B2AE3D27D4EB4F)  # folds a run's length into its key


@dataclass
class Words:
    """Texts as one array of word hashes: text i's words are hashes[starts[i]:starts[i + 1]]."""

    hashes: np.ndarray
    starts: np.ndarray

    @classmethod
    def of(cls, texts: Iterable[object]) -> Words:
        lists = [normalize_text(t).split() if isinstance(t, str) else [] for t in texts]
        lengths = np.fromiter((len(w) for w in lists), dtype=np.int64, count=len(lists))
        starts = np.zeros(len(lists) + 1, dtype=np.int64)
        np.cumsum(lengths, out=starts[1:])
        flat = np.fromiter((w for ws in lists for w in ws), dtype=object, count=int(starts[-1]))
        hashes = pd.util.hash_array(flat) if len(flat) else np.zeros(0, np.uint64)
        return cls(hashes.astype(np.uint64, copy=False), starts)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.starts)

    def __post_init__(self) -> None:
        n = len(self.hashes)
        self._inverse = np.ones(n + 1, dtype=np.uint64)
        self._prefix = np.zeros(n + 1, dtype=np.uint64)
        with np.errstate(over="ignore"):
            powers = np.ones(n, dtype=np.uint64)
            powers[1:] = np.cumprod(np.full(n - 1, _BASE, np.uint64), dtype=np.uint64)
            self._inverse[1:] = np.cumprod(np.full(n, _BASE_INV, np.uint64), dtype=np.uint64)
            np.cumsum(self.hashes * powers, out=self._prefix[1:], dtype=np.uint64)

    def run_keys(self, first: np.ndarray, k: int) -> np.ndarray:
        """The key of the run of `k` words starting at each word position `first`: the sum of
        h[first + m] * B^m, the same wherever the run sits, its length folded in."""
        with np.errstate(over="ignore"):
            run = (self._prefix[first + k] - self._prefix[first]) * self._inverse[first]
            return run ^ (np.uint64(k) * _LENGTH_MIX)


@dataclass
class PhraseIndex:
    """Texts searched for (by key), and which of them a scan has found inside another text."""

    keys: np.ndarray  # per searched text; 0 where it is not searched for (too short, missing)
    lengths: np.ndarray  # words per searched text
    min_tokens: int
    strict: bool = False  # only inside a longer text (a text never contains itself)
    _found: list[np.ndarray] = field(default_factory=list)
    _sorted: tuple[np.ndarray, list[int]] | None = None

    @classmethod
    def of(cls, texts: Iterable[object], *, min_tokens: int, strict: bool = False) -> PhraseIndex:
        words = Words.of(texts)
        lengths = words.lengths
        searched = lengths >= max(min_tokens, 1)
        keys = np.zeros(len(lengths), dtype=np.uint64)
        for k in np.unique(lengths[searched]).tolist():
            rows = np.flatnonzero(lengths == k)
            keys[rows] = words.run_keys(words.starts[rows], k)
        return cls(keys, lengths, min_tokens, strict)

    def _wanted(self) -> tuple[np.ndarray, list[int]]:
        if self._sorted is None:  # once: every chunk of a scan looks them up
            searched = self.lengths >= max(self.min_tokens, 1)
            self._sorted = np.unique(self.keys[searched]), np.unique(self.lengths[searched]).tolist()
        return self._sorted

    def scan(self, texts: Iterable[object]) -> None:
        """Look for the searched texts inside `texts` (one chunk of them)."""
        self._found.append(self.matches(Words.of(texts))[0])

    def matches(self, words: Words) -> tuple[np.ndarray, np.ndarray]:
        """Keys of searched texts found in `words`, and for each the scanned text it is in (a
        key found in several: once per text)."""
        wanted, lengths = self._wanted()
        if not len(wanted):
            return np.zeros(0, np.uint64), np.zeros(0, np.int64)
        text_of = np.repeat(np.arange(len(words.starts) - 1), words.lengths)
        ends = words.starts[1:][text_of] if len(text_of) else np.zeros(0, np.int64)
        found_keys, found_in = [np.zeros(0, np.uint64)], [np.zeros(0, np.int64)]
        positions = np.arange(len(words.hashes))
        for k in lengths:
            room = ends - positions
            first = positions[room >= k]
            if self.strict:  # a run of k words of a text of more than k words
                first = first[words.lengths[text_of[first]] > k]
            if not len(first):
                continue
            keys = words.run_keys(first, k)
            at = np.searchsorted(wanted, keys).clip(max=len(wanted) - 1)
            hit = wanted[at] == keys
            found_keys.append(keys[hit])
            found_in.append(text_of[first[hit]])
        return np.concatenate(found_keys), np.concatenate(found_in)

    @property
    def found(self) -> np.ndarray:
        """Per searched text: found inside a scanned text."""
        searched = self.lengths >= max(self.min_tokens, 1)
        hits = np.unique(np.concatenate(self._found)) if self._found else np.zeros(0, np.uint64)
        return searched & np.isin(self.keys, hits)


def contained_in(
    queries: Sequence[object], texts: Iterable[object], *, min_tokens: int
) -> np.ndarray:
    """Per query: does it occur, whole words after normalisation, in one of `texts` (an equal
    text counts)? Queries of fewer than `min_tokens` words are never flagged."""
    index = PhraseIndex.of(queries, min_tokens=min_tokens)
    index.scan(texts)
    return index.found


def first_container(texts: Sequence[object]) -> np.ndarray:
    """Per text: the position of the first text (in order) holding it as a whole-word run of a
    longer text, after normalisation; -1 where none does. Texts without words hold nothing."""
    index = PhraseIndex.of(texts, min_tokens=1, strict=True)
    keys, where = index.matches(Words.of(texts))
    out = np.full(len(index.keys), -1, dtype=np.int64)
    if not len(keys):
        return out
    order = np.lexsort((where, keys))  # by key, then the earliest container first
    keys, where = keys[order], where[order]
    first = np.ones(len(keys), dtype=bool)
    first[1:] = keys[1:] != keys[:-1]
    keys, where = keys[first], where[first]
    searched = index.lengths >= 1
    at = np.searchsorted(keys, index.keys).clip(max=len(keys) - 1)
    hit = searched & (keys[at] == index.keys)
    out[hit] = where[at[hit]]
    return out
