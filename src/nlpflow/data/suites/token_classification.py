"""The validate suite of token classification (named entities): checks on sentences, their
tokens and BIO tags (one GX expectation each), on a table of one row per sentence, so a
quarantined sentence goes whole; and the profile (entity-type shares, length bins) drift is
measured on.

    from nlpflow.data.suites import suite_role
    checks = suite_role("token-classification").build_checks(ValidateParams())

Bounds: validate.entities (EntityValidateParams), plus validate.max_damaged_share and
validate.max_length_drift, which mean here what they mean for classification.
"""

from __future__ import annotations

from collections.abc import Sequence
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
)
from nlpflow.data.ner.schemes import violations
from nlpflow.data.text import normalize_text
from nlpflow.errors import DataValidationError

if TYPE_CHECKING:
    from nlpflow.data.check_results import ValidationReport

SCHEME = "BIO"  # gather converts every scheme to BIO (nlpflow.data.ner.schemes.to_bio)
SHOWN = 10  # rows whose violations a failed bio_sequence check spells out


def _items(value: object) -> list[Any] | None:
    """A list cell as a list (Parquet gives numpy arrays back); None for a missing one."""
    return list(value) if isinstance(value, (list, tuple, np.ndarray)) else None


def entity_types(tags: Sequence[str]) -> list[str]:
    """The type of each entity of a BIO sequence (its B- tag), in order."""
    return [tag[2:] for tag in tags if isinstance(tag, str) and tag.startswith("B-")]


def target_counts(frame: pd.DataFrame, *, missing: bool = False) -> dict[str, int]:
    """Entities (B- tags) per type, sorted by type (`missing` is classification's: a sentence
    has tags, even if all O)."""
    counts: dict[str, int] = {}
    for tags in frame["tags"]:
        for kind in entity_types(_items(tags) or []):
            counts[kind] = counts.get(kind, 0) + 1
    return dict(sorted(counts.items()))


def _tokens_aligned(text: object, tokens: list[Any] | None, starts: list[Any] | None) -> bool:
    """Every token non-blank, equal to the text at its offset, after the end of the one before:
    so the entity spans made of them are neither empty nor overlapping."""
    if not isinstance(text, str) or tokens is None or starts is None:
        return False
    end = 0
    for token, start in zip(tokens, starts, strict=False):
        if not isinstance(token, str) or not token.strip() or int(start) < end:
            return False
        end = int(start) + len(token)
        if text[int(start) : end] != token:
            return False
    return True


def build_frame(splits: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """All splits in one table, one row per sentence, plus the derived columns the checks need."""
    frame = pd.concat([df.assign(split=name) for name, df in splits.items()], ignore_index=True)
    frame.insert(0, ROW_ID, range(len(frame)))
    tokens = frame["tokens"].map(_items)
    tags = frame["tags"].map(lambda v: _items(v) or [])
    starts = frame["starts"].map(_items)
    text = frame["text"]
    frame["tokens_count"] = tokens.map(lambda t: len(t) if t is not None else 0).astype(int)
    frame["counts_match"] = [
        t is not None and s is not None and len(t) == len(g) == len(s)
        for t, g, s in zip(tokens, tags, starts, strict=True)
    ]
    frame["bio_violations"] = tags.map(lambda g: violations([str(t) for t in g], SCHEME))
    frame["bio_valid"] = frame["bio_violations"].map(lambda found: not found).astype(bool)
    frame["tokens_aligned"] = [
        _tokens_aligned(x, t, s) for x, t, s in zip(text, tokens, starts, strict=True)
    ]
    frame["entity_types"] = tags.map(entity_types)
    frame["has_entity"] = frame["entity_types"].map(bool).astype(int)
    train = frame["split"] == "train"
    per_type = frame.loc[train, "entity_types"].explode().dropna().value_counts()
    # the rarest type a sentence holds decides: its other entities go with it if quarantined
    frame["train_entities_of_rarest_type"] = frame["entity_types"].map(
        lambda kinds: min(int(per_type.get(k, 0)) for k in kinds) if kinds else np.nan
    )
    variants = type_variants(frame["entity_types"])
    frame["type_is_variant"] = frame["entity_types"].map(lambda ks: any(k in variants for k in ks))
    is_test = frame["split"] == "test"
    frame["test_text_in_train"] = is_test & text.astype(object).isin(set(text[train].dropna()))
    normalized = text[train | is_test].map(normalize_text, na_action="ignore")  # not validation
    train_keys = set(normalized[train].dropna())
    frame["test_text_in_train_normalized"] = is_test & normalized.astype(object).isin(
        train_keys
    ).reindex(frame.index, fill_value=False)
    frame[LENGTH_BIN] = frame["tokens_count"].map(length_bin)
    # what reports and the quarantine file show of a row (nlpflow.data.check_results reads
    # `source_row` and `label`): the sentence's line in its file, and its tags
    frame["source_row"] = frame.get("source_line", frame.index)
    frame["label"] = tags.map(lambda g: " ".join(str(t) for t in g))
    return frame


def type_variants(types_per_sentence: pd.Series) -> dict[str, str]:
    """Each entity type spelled differently from another of the same label_key ("Person",
    "person"), mapped to the spelling most entities use."""
    return spelling_variants(types_per_sentence.explode())


def _variant_details(frame: pd.DataFrame) -> dict[str, Any]:
    """The groups of types that differ only in spelling, and the data.label_map merging them
    (gather renames entity types by it)."""
    return variant_details(type_variants(frame["entity_types"]))


def _violation_details(frame: pd.DataFrame) -> dict[str, Any]:
    """The first rows' scheme violations, spelled out (row id -> violations)."""
    bad = frame.loc[~frame["bio_valid"], [ROW_ID, "bio_violations"]].head(SHOWN)
    return {
        "violations": {
            str(r): list(v) for r, v in zip(bad[ROW_ID], bad["bio_violations"], strict=True)
        }
    }


def _allowed_name(suite_params: dict[str, Any]) -> str:
    return f"tags are O, or B-/I- of the allowed types {suite_params['allowed_types']}"


def build_checks(params: ValidateParams) -> list[Check]:
    """The suite, one Check per id; values that depend on the data (the allowed tags, the
    accepted snapshot) are suite parameters, filled at run time."""
    import great_expectations.expectations as gxe

    import nlpflow.data.expectations as nx

    p, e = params, params.entities

    def never(column: str) -> Any:
        return gxe.ExpectColumnValuesToBeInSet(column=column, value_set=[False])

    def always(column: str) -> Any:
        return gxe.ExpectColumnValuesToBeInSet(column=column, value_set=[True])

    checks = [
        Check("token_tag_counts", "every sentence has as many tags and offsets as tokens",
              always("counts_match")),
        Check("tag_in_set", "tags are O, or B-/I- of the allowed entity types",
              nx.ExpectColumnListValuesToBeInSet(column="tags", value_set={"$PARAMETER": "allowed_tags"}),
              report_name=_allowed_name),
        Check("bio_sequence", "tags form valid BIO sequences (no I-X after O or another type)",
              always("bio_valid"), details=_violation_details),
        Check("token_offsets", "tokens are non-empty, match the text at their offsets and do not "
              "overlap (so no entity span is empty or overlaps another)", always("tokens_aligned")),
        Check("sentence_length", f"sentences have {e.min_sentence_tokens}..{e.max_sentence_tokens} tokens",
              gxe.ExpectColumnValuesToBeBetween(column="tokens_count", min_value=e.min_sentence_tokens,
                                                max_value=e.max_sentence_tokens)),
        Check("entity_share", f"at least {e.min_entity_share:.0%} of sentences hold an entity",
              gxe.ExpectColumnMeanToBeBetween(column="has_entity", min_value=e.min_entity_share)),
        Check("type_min_count", f"each entity type has at least {e.min_examples_per_type} train entities",
              gxe.ExpectColumnValuesToBeBetween(column="train_entities_of_rarest_type",
                                                min_value=e.min_examples_per_type)),
        Check("label_variants", "no two entity types differ only in case, spacing, Unicode form "
              "or control characters", never("type_is_variant"), details=_variant_details),
        Check("leak_exact", "no test sentence appears in train", never("test_text_in_train")),
        Check("leak_normalized", "no test sentence appears in train up to case, accents, spacing "
              "and punctuation", never("test_text_in_train_normalized")),
        Check("encoding_damage", f"at most {p.max_damaged_share:.2%} of sentences hold U+FFFD or "
              "control characters",
              nx.ExpectColumnValuesToHaveNoEncodingDamage(column="text", mostly=1.0 - p.max_damaged_share)),
    ]  # fmt: skip
    if e.max_type_drift is not None:
        checks.append(Check(
            "type_drift", f"entity-type shares within {e.max_type_drift:g} TVD of the accepted snapshot",
            nx.ExpectColumnDistributionToStayNear(column="entity_types", reference={"$PARAMETER": "accepted_types"},
                                                  max_distance=e.max_type_drift),
        ))  # fmt: skip
    if p.max_length_drift is not None:
        checks.append(Check(
            "length_drift", f"sentence-length histogram within {p.max_length_drift:g} TVD of the accepted snapshot",
            nx.ExpectColumnDistributionToStayNear(column=LENGTH_BIN, reference={"$PARAMETER": "accepted_lengths"},
                                                  max_distance=p.max_length_drift),
        ))  # fmt: skip
    for check in checks:
        check.expectation.meta = {"nlpflow_check": check.id}
        check.expectation.description = check.name
    return checks


def allowed_labels(splits: dict[str, pd.DataFrame], data: DataParams) -> list[str]:
    """The allowed entity types: data.labels, or the types the train split has."""
    return list(data.labels) if data.labels else list(target_counts(splits["train"]))


def suite_params(
    splits: dict[str, pd.DataFrame], data: DataParams, reference: dict[str, Any] | None
) -> dict[str, Any]:
    types = allowed_labels(splits, data)
    return {
        "allowed_types": types,
        "allowed_tags": ["O"] + [f"{letter}-{kind}" for kind in types for letter in "BI"],
        "accepted_types": (reference or {}).get("types", {}),
        "accepted_lengths": (reference or {}).get("lengths", {}),
    }


def compute_profile(frame: pd.DataFrame) -> dict[str, Any]:
    """What drift is measured on: entity-type shares (per entity) and sentence-length-bin
    shares (per sentence), of all splits."""

    def shares(values: pd.Series) -> dict[str, float]:
        counts = values.dropna().astype(str).value_counts(normalize=True)
        return {str(k): round(float(v), 6) for k, v in counts.sort_index().items()}

    types = frame["entity_types"].explode()
    return {"rows": len(frame), "types": shares(types), "lengths": shares(frame[LENGTH_BIN])}


def refuse_untrainable(report: ValidationReport, data: DataParams) -> None:
    """What training would fail on, or train wrongly, found before it starts: no entity in
    train (a tagger that only learns O), or a type data.labels lists that no train sentence
    holds (an output the model would be built for and never see)."""
    present = set(report.label_counts.get("train", {}))
    if not present:
        raise DataValidationError(
            "the train split holds no entity after validation (every tag is O): a tagger needs "
            "at least one entity type. Check the tag column of the source, data.tag_scheme "
            "and the quarantine file."
        )
    absent = [kind for kind in data.labels or [] if kind not in present]
    if absent:
        raise DataValidationError(
            f"data.labels lists entity types {', '.join(absent)}, which no train sentence holds "
            "(after quarantine): remove them from data.labels, or add training sentences with them."
        )
