"""The validate suite of text classification: checks on texts and labels (one GX expectation
each), the table they run on, and the profile (label shares, length bins) drift is measured on.

    from nlpflow.data.suites import suite_role
    checks = suite_role("text-classification").build_checks(ValidateParams())
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from nlpflow.config.params import DataParams, ValidateParams
from nlpflow.data.checks import (
    LENGTH_BIN,
    ROW_ID,
    Check,
    length_bin,
    spelling_variants,
    variant_details,
    variants_of_counts,
)
from nlpflow.data.nlp.text_classification import target_counts as target_counts
from nlpflow.data.text import normalize_text
from nlpflow.errors import DataValidationError

if TYPE_CHECKING:
    from nlpflow.data.check_results import ValidationReport
    from nlpflow.data.streaming.sketch import TextSketch


def _member(values: pd.Series, keys: pd.Series) -> pd.Series:
    """values.isin(keys), through Python objects: isin on Arrow strings took 4x longer."""
    return values.astype(object).isin(set(keys.dropna()))


def build_frame(splits: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """All splits in one table, plus the derived columns the cross-row checks need."""
    frame = pd.concat([df.assign(split=name) for name, df in splits.items()], ignore_index=True)
    frame.insert(0, ROW_ID, range(len(frame)))
    train = frame[frame["split"] == "train"]
    counts = train["label"].value_counts()
    frame["train_examples_of_label"] = frame["label"].map(counts).fillna(0).astype(int)
    largest = float(counts.max()) if len(counts) else 0.0
    examples = frame["train_examples_of_label"]
    frame["label_imbalance_ratio"] = (largest / examples.where(examples > 0)).fillna(0.0)
    variants = label_variants(frame["label"])
    frame["label_is_variant"] = (
        frame["label"].map(lambda label: isinstance(label, str) and label in variants).astype(bool)
    )
    text = frame["text"]
    frame["is_repeat"] = text.duplicated(keep="first") & text.notna()
    is_test = frame["split"] == "test"
    frame["test_text_in_train"] = is_test & _member(text, train["text"])
    is_train = frame["split"] == "train"
    normalized = text[is_train | is_test].map(normalize_text, na_action="ignore")  # not validation
    train_keys = normalized[is_train]
    frame["test_text_in_train_normalized"] = is_test & _member(normalized, train_keys).reindex(
        frame.index, fill_value=False
    )
    frame["subphrase_words"] = subphrase_words(text, frame["split"])
    # a regex count runs in Arrow's C++ kernels; split().len() builds a list per row (5x slower)
    frame["text_tokens"] = text.fillna("").str.count(r"\S+").astype(int)
    frame[LENGTH_BIN] = frame["text_tokens"].map(length_bin)
    return frame


def subphrase_words(text: pd.Series, split: pd.Series) -> np.ndarray:
    """Per row, the words of a validation or test text found, whole words after
    normalisation, inside a train text (0: none found, and for train rows): leak_subphrase
    flags those of at least validate.subphrase_min_tokens words."""
    from nlpflow.data.subphrase import PhraseIndex

    out = np.zeros(len(text), dtype=np.int32)
    held = (split != "train").to_numpy()
    if held.any():
        index = PhraseIndex.of(text[held], min_tokens=1)
        index.scan(text[~held])
        out[held] = np.where(index.found, index.lengths, 0)
    return out


def label_variants(labels: pd.Series) -> dict[str, str]:
    """Each label spelled differently from another of the same label_key ("billing ",
    "Billing"), mapped to the spelling most rows use."""
    return spelling_variants(labels)


def _variant_details(frame: pd.DataFrame) -> dict[str, Any]:
    """The groups of labels that differ only in spelling, and the label_map that merges them."""
    return variant_details(label_variants(frame["label"]))


def _allowed_name(suite_params: dict[str, Any]) -> str:
    # the report names the allowed labels; the suite cannot, as they are a run-time parameter
    return f"labels are in the allowed set {suite_params['allowed_labels']}"


def build_checks(params: ValidateParams) -> list[Check]:
    """The suite, one Check per id; values that depend on the data are suite parameters
    (filled at run time), so the suite file only changes when params do."""
    import great_expectations.expectations as gxe

    import nlpflow.data.expectations as nx

    p = params
    checks = [
        Check("text_column", "column 'text' is present", gxe.ExpectColumnToExist(column="text")),
        Check("label_column", "column 'label' is present", gxe.ExpectColumnToExist(column="label")),
        Check("text_not_null", "no null text", gxe.ExpectColumnValuesToNotBeNull(column="text")),
        Check("label_not_null", "no null label", gxe.ExpectColumnValuesToNotBeNull(column="label")),
        Check("text_not_blank", "no empty or whitespace-only text",
              gxe.ExpectColumnValuesToNotMatchRegex(column="text", regex=r"^\s*$")),
        Check("label_in_set", "labels are in the allowed set",
              gxe.ExpectColumnValuesToBeInSet(column="label", value_set={"$PARAMETER": "allowed_labels"}),
              report_name=_allowed_name),
        Check("label_variants", "no two labels differ only in case, spacing, Unicode form or control characters",
              gxe.ExpectColumnValuesToBeInSet(column="label_is_variant", value_set=[False]),
              details=_variant_details),
        Check("text_length", f"text length is {p.min_chars}..{p.max_chars} characters",
              gxe.ExpectColumnValueLengthsToBeBetween(column="text", min_value=p.min_chars, max_value=p.max_chars)),
        Check("class_min_count", f"each label has at least {p.min_examples_per_class} train examples",
              gxe.ExpectColumnValuesToBeBetween(column="train_examples_of_label", min_value=p.min_examples_per_class)),
        Check("duplicates", f"at most {p.max_duplicate_rate:.1%} of texts repeat an earlier text",
              gxe.ExpectColumnValuesToBeInSet(column="is_repeat", value_set=[False], mostly=1.0 - p.max_duplicate_rate)),
        Check("leak_exact", "no test text appears in train",
              gxe.ExpectColumnValuesToBeInSet(column="test_text_in_train", value_set=[False])),
        Check("leak_normalized", "no test text appears in train up to case, accents, spacing and punctuation",
              gxe.ExpectColumnValuesToBeInSet(column="test_text_in_train_normalized", value_set=[False])),
        Check("leak_subphrase", f"no validation or test text of {p.subphrase_min_tokens}+ words appears inside a train text (whole words, up to case, accents, spacing and punctuation)",
              gxe.ExpectColumnValuesToBeBetween(column="subphrase_words", max_value=p.subphrase_min_tokens - 1)),
        Check("class_imbalance", f"largest class is at most {p.max_imbalance_ratio:g}x each class in train",
              gxe.ExpectColumnValuesToBeBetween(column="label_imbalance_ratio", max_value=p.max_imbalance_ratio)),
        Check("encoding_damage", f"at most {p.max_damaged_share:.2%} of texts hold U+FFFD or control characters",
              nx.ExpectColumnValuesToHaveNoEncodingDamage(column="text", mostly=1.0 - p.max_damaged_share)),
        Check("median_tokens", f"median length is at least {p.min_median_tokens} tokens",
              gxe.ExpectColumnMedianToBeBetween(column="text_tokens", min_value=p.min_median_tokens)),
        Check("p95_tokens", f"95th percentile length is at most {p.max_p95_tokens} tokens",
              gxe.ExpectColumnValuesToBeBetween(column="text_tokens", max_value=p.max_p95_tokens, mostly=0.95)),
        Check("p95_chars", f"95th percentile length is at most {p.max_p95_chars} characters",
              gxe.ExpectColumnValueLengthsToBeBetween(column="text", max_value=p.max_p95_chars, mostly=0.95)),
    ]  # fmt: skip
    if p.script is not None:
        checks.append(Check(
            "script", f"at least {p.min_script_share:.0%} of texts are mostly {p.script.title()} script",
            nx.ExpectColumnValuesToBeMostlyInScript(column="text", script=p.script.upper(), mostly=p.min_script_share),
        ))  # fmt: skip
    if p.max_label_drift is not None:
        checks.append(Check(
            "label_drift", f"label shares within {p.max_label_drift:g} TVD of the accepted snapshot",
            nx.ExpectColumnDistributionToStayNear(column="label", reference={"$PARAMETER": "accepted_labels"}, max_distance=p.max_label_drift),
        ))  # fmt: skip
    if p.max_length_drift is not None:
        checks.append(Check(
            "length_drift", f"length histogram within {p.max_length_drift:g} TVD of the accepted snapshot",
            nx.ExpectColumnDistributionToStayNear(column=LENGTH_BIN, reference={"$PARAMETER": "accepted_lengths"}, max_distance=p.max_length_drift),
        ))  # fmt: skip
    for check in checks:
        check.expectation.meta = {"nlpflow_check": check.id}
        check.expectation.description = check.name
    return checks


def allowed_labels(splits: dict[str, pd.DataFrame], data: DataParams) -> list[str]:
    """data.labels, or the labels the train split has."""
    return list(data.labels) if data.labels else sorted(splits["train"]["label"].dropna().unique())


def suite_params(
    splits: dict[str, pd.DataFrame], data: DataParams, reference: dict[str, Any] | None
) -> dict[str, Any]:
    return {
        "allowed_labels": allowed_labels(splits, data),
        "accepted_labels": (reference or {}).get("labels", {}),
        "accepted_lengths": (reference or {}).get("lengths", {}),
    }


def compute_profile(frame: pd.DataFrame) -> dict[str, Any]:
    """What drift is measured on: label shares and length-bin shares of all rows."""

    def shares(column: str) -> dict[str, float]:
        counts = frame[column].dropna().astype(str).value_counts(normalize=True)
        return {str(k): round(float(v), 6) for k, v in counts.sort_index().items()}

    return {"rows": len(frame), "labels": shares("label"), "lengths": shares(LENGTH_BIN)}


def refuse_untrainable(report: ValidationReport, data: DataParams) -> None:
    """What training would fail on, or train wrongly, found before it starts: fewer than two
    classes left to train on, or a listed label without one train row (a class the model
    would be built for and never see)."""
    present = set(report.label_counts.get("train", {}))
    if len(present) < 2:
        raise DataValidationError(
            f"the train split holds {len(present)} label(s) ({', '.join(sorted(present))}) after "
            "validation: a classifier needs at least two. Check data.label_column, "
            "data.label_map and the quarantine file."
        )
    absent = [label for label in data.labels or [] if label not in present]
    if absent:
        raise DataValidationError(
            f"data.labels lists {', '.join(absent)}, which no train row has (after quarantine): "
            "remove them from data.labels, or add training rows for them."
        )


# ---------------------------------------------------------------- the streaming path
# The same table, checks' metrics and profile as above, a chunk at a time: what needs all rows
# comes from the data-wide sketch (nlpflow.data.streaming.sketch), built in a first pass.
# tests/data/test_streaming_validation.py holds the two paths to the same results.


def stream_frame(
    frame: pd.DataFrame, split: str, first_id: int, sketch: TextSketch
) -> pd.DataFrame:
    """build_frame's rows for one chunk of split `split`, whose first row is row `first_id`."""
    ids = pd.RangeIndex(first_id, first_id + len(frame))
    out = frame.set_axis(ids).assign(split=split)
    out.insert(0, ROW_ID, ids)
    counts = pd.Series(dict(sketch.labels["train"]), dtype="int64")
    out["train_examples_of_label"] = out["label"].map(counts).fillna(0).astype(int)
    largest = float(counts.max()) if len(counts) else 0.0
    examples = out["train_examples_of_label"]
    out["label_imbalance_ratio"] = (largest / examples.where(examples > 0)).fillna(0.0)
    variants = variants_of_counts(sketch.all_labels())
    out["label_is_variant"] = (
        out["label"].map(lambda label: isinstance(label, str) and label in variants).astype(bool)
    )
    out["is_repeat"] = sketch.is_repeat[ids]
    out["test_text_in_train"] = sketch.leak_exact[ids]
    out["test_text_in_train_normalized"] = sketch.leak_normalized[ids]
    out["subphrase_words"] = sketch.subphrase_words[ids]
    out["text_tokens"] = sketch.tokens[ids].astype(int)
    out[LENGTH_BIN] = out["text_tokens"].map(length_bin)
    return out


def _shares(counts: dict[str, int]) -> dict[str, float]:
    """value_counts(normalize=True) of values counted `counts`: the same floats, same order."""
    series = pd.Series(counts, dtype="int64").sort_values(ascending=False, kind="stable")
    return {str(k): float(v) for k, v in (series / series.sum()).items()}


def length_counts(sketch: TextSketch) -> dict[str, int]:
    values, counts = np.unique(sketch.tokens, return_counts=True)
    out: dict[str, int] = {}
    for tokens, count in zip(values.tolist(), counts.tolist(), strict=True):
        name = length_bin(tokens)
        out[name] = out.get(name, 0) + count
    return out


def stream_metrics(sketch: TextSketch) -> dict[str, dict[str, Any]]:
    """The metrics of the table checks, by check id, as GX computes them on all rows."""
    return {
        "median_tokens": {"column.median": sketch.token_median()},
        "label_drift": {"column.nlpflow_value_shares": _shares(dict(sketch.all_labels()))},
        "length_drift": {"column.nlpflow_value_shares": _shares(length_counts(sketch))},
    }


def stream_details(check_id: str, sketch: TextSketch) -> dict[str, Any] | None:
    """A failed check's own details (Check.details) from the sketch; None: GX's."""
    if check_id == "label_variants":
        return variant_details(variants_of_counts(sketch.all_labels()))
    return None


def stream_allowed_labels(sketch: TextSketch, data: DataParams) -> list[str]:
    return list(data.labels) if data.labels else sorted(sketch.labels["train"])


def stream_suite_params(
    sketch: TextSketch, data: DataParams, reference: dict[str, Any] | None
) -> dict[str, Any]:
    return {
        "allowed_labels": stream_allowed_labels(sketch, data),
        "accepted_labels": (reference or {}).get("labels", {}),
        "accepted_lengths": (reference or {}).get("lengths", {}),
    }


def stream_profile(sketch: TextSketch) -> dict[str, Any]:
    """compute_profile of all rows, from the sketch."""

    def rounded(counts: dict[str, int]) -> dict[str, float]:
        return {k: round(v, 6) for k, v in sorted(_shares(counts).items())}

    labels, lengths = dict(sketch.all_labels()), length_counts(sketch)
    return {"rows": sketch.total, "labels": rounded(labels), "lengths": rounded(lengths)}
