"""The validate suite of topic modelling: text classification's checks on texts (presence,
blanks, length, encoding, repeats, test texts leaking from train, script, length drift), without
those on labels, which topic-modeling data may lack and never trains on.

    from nlpflow.data.suites import suite_role
    checks = suite_role("topic-modeling").build_checks(ValidateParams())
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from nlpflow.config.params import DataParams, ValidateParams
from nlpflow.data.checks import LENGTH_BIN, Check
from nlpflow.data.suites import text_classification as texts
from nlpflow.errors import DataValidationError

if TYPE_CHECKING:
    from nlpflow.data.check_results import ValidationReport
    from nlpflow.data.streaming.sketch import TextSketch

# text classification's checks of labels: left out here
LABEL_CHECKS = frozenset(
    {"label_column", "label_not_null", "label_in_set", "label_variants", "class_min_count",
     "class_imbalance", "label_drift"}
)  # fmt: skip
# Below this many train texts a topic model finds noise, not themes
MIN_TRAIN_TEXTS = 20

build_frame = texts.build_frame
target_counts = texts.target_counts
# the streaming path: text classification's, less the labels in suite params and profile
stream_frame = texts.stream_frame
stream_metrics = texts.stream_metrics
stream_details = texts.stream_details
stream_allowed_labels = texts.stream_allowed_labels


def build_checks(params: ValidateParams) -> list[Check]:
    """Text classification's suite less its label checks."""
    return [check for check in texts.build_checks(params) if check.id not in LABEL_CHECKS]


def allowed_labels(splits: dict[str, pd.DataFrame], data: DataParams) -> list[str]:
    """data.labels, or the labels the train split has (none for unlabelled text)."""
    return texts.allowed_labels(splits, data)


def suite_params(
    splits: dict[str, pd.DataFrame], data: DataParams, reference: dict[str, Any] | None
) -> dict[str, Any]:
    return {"accepted_lengths": (reference or {}).get("lengths", {})}


def compute_profile(frame: pd.DataFrame) -> dict[str, Any]:
    """What drift is measured on: length-bin shares of all rows."""
    counts = frame[LENGTH_BIN].dropna().astype(str).value_counts(normalize=True)
    lengths = {str(k): round(float(v), 6) for k, v in counts.sort_index().items()}
    return {"rows": len(frame), "lengths": lengths}


def stream_suite_params(
    sketch: TextSketch, data: DataParams, reference: dict[str, Any] | None
) -> dict[str, Any]:
    return {"accepted_lengths": (reference or {}).get("lengths", {})}


def stream_profile(sketch: TextSketch) -> dict[str, Any]:
    """compute_profile of all rows, from the sketch."""
    return {"rows": sketch.total, "lengths": texts.stream_profile(sketch)["lengths"]}


def refuse_untrainable(report: ValidationReport, data: DataParams) -> None:
    """Too few train texts left after quarantine to find topics in."""
    rows = report.rows.get("train", 0)
    if rows < MIN_TRAIN_TEXTS:
        raise DataValidationError(
            f"the train split holds {rows} text(s) after validation: a topic model needs at "
            f"least {MIN_TRAIN_TEXTS} (and hundreds to find stable themes). Point data.source at "
            "more text, or check the quarantine file."
        )
