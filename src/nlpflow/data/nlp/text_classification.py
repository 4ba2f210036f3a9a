"""The data role of text classification: one text and one label per row. Labels are
rewritten (data.label_pattern, then data.label_map), repeated texts dropped, and splits
stratified by label. (Its validate suite: nlpflow.data.suites.text_classification.)

    from nlpflow.data.nlp import data_role
    frame, dropped = data_role("text-classification").shape(frame, DataParams())
"""

from __future__ import annotations

import re

import pandas as pd

from nlpflow.config.params import DataParams, SplitParams
from nlpflow.data.local_source import load_source as read
from nlpflow.data.local_source import refuse_fractional_labels
from nlpflow.data.splits import complete_splits, split_stratified
from nlpflow.data.text import normalized_or_none

__all__ = ["assign_splits", "read", "rewrite_labels", "shape", "target_counts"]

MISSING = "<missing>"


def shape(frame: pd.DataFrame, params: DataParams) -> tuple[pd.DataFrame, int]:
    """Rewrite labels (pattern, then map) and drop repeated texts; returns rows dropped.
    DataSourceError for labels that are numbers with a fraction (scores, not classes)."""
    frame = rewrite_labels(frame, params)
    dropped = 0
    if params.dedupe != "none":
        text = frame["text"]
        key = text if params.dedupe == "exact" else text.map(normalized_or_none)
        keep = ~key.duplicated() | key.isna()
        frame, dropped = frame[keep], int((~keep).sum())
    if params.label_column is not None:  # unlabelled text (topic-modeling) has none to check
        refuse_fractional_labels(frame["label"], column=params.label_column)  # after label_map
    return frame, dropped


def rewrite_labels(frame: pd.DataFrame, params: DataParams) -> pd.DataFrame:
    """Labels rewritten by data.label_pattern, then data.label_map: row by row (the streaming
    path rewrites each chunk; nlpflow.data.streaming.gather does the rest of `shape`)."""
    labels = frame["label"]
    if params.label_pattern:
        pattern = re.compile(params.label_pattern)

        def pick(label: object) -> object:
            found = pattern.search(label) if isinstance(label, str) else None
            if found is None:
                return label
            return found.group(1) if found.groups() else found.group(0)

        labels = labels.map(pick)
    if params.label_map:
        mapping = params.label_map
        labels = labels.map(lambda v: mapping.get(v, v) if isinstance(v, str) else v)
    return frame.assign(label=labels)


def assign_splits(frame: pd.DataFrame, params: SplitParams, *, from_source: bool) -> pd.DataFrame:
    return complete_splits(frame, params) if from_source else split_stratified(frame, params)


def target_counts(frame: pd.DataFrame, *, missing: bool = False) -> dict[str, int]:
    """Rows per label, sorted; with `missing`, unlabelled rows under "<missing>"."""
    counts = frame["label"].dropna().astype(str).value_counts().sort_index()
    out = {str(k): int(v) for k, v in counts.items()}
    absent = int(frame["label"].isna().sum())
    return out | {MISSING: absent} if missing and absent else out
