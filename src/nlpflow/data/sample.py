"""data.sample: a seeded subsample of the gathered splits, stratified by label, for quick
iteration (a transformer tried on 2,000 rows of a 67k set before the whole run).

    frame, info = sample_frame(frame, SampleParams(train=2000))   # gather, after the split

Train is sampled; validation and test stay whole unless asked (they measure the model, and a
smaller test set only makes its figure noisier). Each label keeps its share, rounded by the
largest remainder, and at least one row where the sample has room for every label. The rows
kept keep their order. The same picks, from label codes alone, in gather in memory and in
chunks (nlpflow.data.streaming.gather), so a sample never depends on runtime.max_memory_mb.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pandas as pd

from nlpflow.config.params import SampleParams
from nlpflow.data.splits import SPLIT_COLUMN, SPLITS


def sample_size(size: int | float, rows: int) -> int:
    """Rows to keep of `rows`: a count (at most all of them) or a share (at least one)."""
    if isinstance(size, int):
        return min(size, rows)
    return min(rows, max(1, round(size * rows))) if rows else 0


def quotas(counts: np.ndarray, keep: int) -> np.ndarray:
    """Rows to keep per group: shares of `keep` by largest remainder (ties: the earlier
    group), then one for each group left empty, taken from the largest quotas."""
    total = int(counts.sum())
    if keep >= total:
        return counts.copy()
    exact = counts * keep / total
    out = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - out), kind="stable")
    out[order[: keep - int(out.sum())]] += 1
    if keep >= int((counts > 0).sum()):
        for g in np.flatnonzero((counts > 0) & (out == 0)):
            out[int(np.argmax(out))] -= 1
            out[g] = 1
    return out


def sample_mask(codes: np.ndarray, size: int | float, rng: random.Random) -> np.ndarray:
    """Which of the rows (label codes, ranked as sorted labels; -1 missing) a sample keeps."""
    keep = np.zeros(len(codes), dtype=bool)
    groups = sorted(int(c) for c in np.unique(codes) if c >= 0) + ([-1] if (codes < 0).any() else [])
    members = [np.flatnonzero(codes == g) for g in groups]
    counts = np.array([len(m) for m in members], dtype=np.int64)
    for rows, n in zip(members, quotas(counts, sample_size(size, len(codes))).tolist(), strict=True):
        keep[rows[sorted(rng.sample(range(len(rows)), n))]] = True
    return keep


def sample_splits(
    codes: np.ndarray, split: np.ndarray, params: SampleParams
) -> tuple[np.ndarray, dict[str, Any]]:
    """The rows kept (of rows whose split is split[i]: 0 train, 1 validation, 2 test, -1
    none) and what the manifest records: per sampled split, the rows before and after."""
    keep = np.ones(len(codes), dtype=bool)
    rng = random.Random(params.seed)
    info: dict[str, Any] = {"seed": params.seed}
    for i, name in enumerate(SPLITS):
        size = getattr(params, name)
        if size is None:
            continue
        rows = np.flatnonzero(split == i)
        keep[rows] = sample_mask(codes[rows], size, rng)
        info[name] = {"rows": len(rows), "kept": int(keep[rows].sum())}
    return keep, info


def label_ranks(labels: pd.Series) -> np.ndarray:
    """Each row's label as its rank among the sorted labels (as text); -1 for a missing one."""
    text = labels.map(lambda v: v if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
    codes, _ = pd.factorize(text, sort=True)
    return np.asarray(codes, dtype=np.int64)


def sample_frame(frame: pd.DataFrame, params: SampleParams) -> tuple[pd.DataFrame, dict[str, Any]]:
    """gather's frame (its split column assigned) with the sampled splits' rows left out."""
    labels = frame["label"] if "label" in frame else pd.Series([None] * len(frame))
    split = frame[SPLIT_COLUMN].map({s: i for i, s in enumerate(SPLITS)}).fillna(-1)
    keep, info = sample_splits(label_ranks(labels), split.to_numpy(dtype=np.int64), params)
    return frame[keep], info
