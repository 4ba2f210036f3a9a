"""The three splits: their names, how gather assigns rows to them, and reading them back.

load_splits(Path("data/processed"))   # {"train": DataFrame, "validation": ..., "test": ...}
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from nlpflow.config.params import SplitParams
from nlpflow.data.text import normalize_text, normalized_or_none
from nlpflow.errors import DataSourceError, StageInputError

SPLITS = ("train", "validation", "test")
SPLIT_ALIASES = {
    "train": "train", "training": "train",
    "validation": "validation", "valid": "validation", "val": "validation", "dev": "validation",
    "test": "test", "testing": "test",
}  # fmt: skip
SPLIT_COLUMN = "split"


def split_name(value: object, path: Path) -> str:
    name = SPLIT_ALIASES.get(str(value).strip().lower())
    if name is None:
        raise DataSourceError(
            f"{path}: split value {value!r} is not one of train/validation/test (or dev/val)."
        )
    return name


def split_stratified(frame: pd.DataFrame, params: SplitParams) -> pd.DataFrame:
    """Assign each row to a split, per label, with a seeded shuffle.

    Written by hand (not sklearn's train_test_split) because that refuses classes with one
    member; here small classes still split and the validate stage reports them instead.
    """
    rng = random.Random(params.seed)
    # Units of assignment: single rows, or (group_duplicates) all rows sharing a normalised
    # text, labelled by their first row. Units keep the order of their first row.
    if params.group_duplicates:
        keys = [
            normalize_text(t) if isinstance(t, str) else f"\0{i}"
            for i, t in zip(frame.index, frame["text"], strict=True)
        ]
        unit_of = pd.Series(keys, index=frame.index)
    else:
        unit_of = pd.Series(frame.index, index=frame.index)
    if params.group_subphrases:
        unit_of = follow_containers(frame["text"], unit_of)
    first = ~unit_of.duplicated()
    unit_label = frame.loc[first, "label"].set_axis(unit_of[first])
    assigned: dict[object, str] = {}
    for _, units in unit_label.groupby(unit_label, dropna=False, sort=True):
        order = list(units.index)
        rng.shuffle(order)
        n_test = round(len(order) * params.test)
        n_val = round(len(order) * params.validation)
        assigned |= dict.fromkeys(order[:n_test], "test")
        assigned |= dict.fromkeys(order[n_test : n_test + n_val], "validation")
    out = frame.copy()
    out[SPLIT_COLUMN] = [assigned.get(u, "train") for u in unit_of]
    return out


def follow_containers(text: pd.Series, unit_of: pd.Series) -> pd.Series:
    """group_subphrases: each row takes the unit of the outermost text holding it, following
    first containers (nlpflow.data.subphrase.first_container) up the chain: "not good" ->
    "is not good" -> "the film is not good". Each text follows one container, strictly
    longer, so chains end and groups stay a sentence and its phrases."""
    import numpy as np

    from nlpflow.data.subphrase import first_container

    parent = first_container(text.tolist())
    root = np.arange(len(parent))
    while True:  # a step up a round: a chain is at most as long as its longest text's words
        step = parent[root]
        moving = step >= 0
        if not moving.any():
            break
        root = np.where(moving, step, root)
    return pd.Series(unit_of.to_numpy()[root], index=unit_of.index)


def drop_test_overlap(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Drop non-test rows whose text repeats a test text: a given test set (a benchmark's
    official one) stays whole and comparable, and nothing leaks into it. Returns rows dropped."""
    keys = frame["text"].map(normalized_or_none)
    is_test = frame[SPLIT_COLUMN] == "test"
    drop = ~is_test & keys.isin(set(keys[is_test].dropna()))
    return frame[~drop], int(drop.sum())


def complete_splits(frame: pd.DataFrame, params: SplitParams) -> pd.DataFrame:
    """The source brought splits; carve validation out of train when it has none."""
    present = set(frame[SPLIT_COLUMN])
    if "train" not in present or "test" not in present:
        raise DataSourceError(
            f"the source's splits are {sorted(present)}: it needs at least train and test, "
            "or no split column at all (then nlpflow splits it)."
        )
    if "validation" in present or params.validation == 0:
        return frame
    train = frame[frame[SPLIT_COLUMN] == "train"]
    share = params.model_copy(update={"test": min(params.validation, 0.49)})
    carved = split_stratified(train.drop(columns=SPLIT_COLUMN), share)
    frame = frame.copy()
    frame.loc[carved.index[carved[SPLIT_COLUMN] == "test"], SPLIT_COLUMN] = "validation"
    return frame


def split_paths(src: Path, splits: Iterable[str] = SPLITS) -> dict[str, Path]:
    """The Parquet files a stage wrote; a clear error when an earlier stage has not run."""
    out = {}
    for split in splits:
        path = src / f"{split}.parquet"
        if not path.exists():
            raise StageInputError(f"{path} is missing: run the earlier stages first (nlpflow run).")
        out[split] = path
    return out


def load_splits(src: Path, splits: Iterable[str] = SPLITS) -> dict[str, pd.DataFrame]:
    """Read the Parquet files a stage wrote (split_paths says when one is missing)."""
    return {split: pd.read_parquet(path) for split, path in split_paths(src, splits).items()}
