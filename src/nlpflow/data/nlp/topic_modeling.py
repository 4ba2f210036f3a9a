"""The data role of topic modelling: one text per row, a label only where the data has one
(data.label_column: null for unlabelled text). Labels never train a topic model; where given,
evaluate scores the topics against them (NMI, ARI, purity). Reading, label rewriting, repeats
and splits are text classification's: splits are stratified by label when there are labels,
one seeded shuffle when there are none. (Its validate suite: nlpflow.data.suites.topic_modeling.)

    from nlpflow.data.nlp import data_role
    frame, dropped = data_role("topic-modeling").shape(frame, DataParams(label_column=None))
"""

from __future__ import annotations

from nlpflow.data.nlp.text_classification import (
    assign_splits,
    read,
    rewrite_labels,
    shape,
    target_counts,
)

__all__ = ["assign_splits", "read", "rewrite_labels", "shape", "target_counts"]
