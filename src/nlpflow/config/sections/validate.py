"""validate: the bounds of the Great Expectations suite, and what each broken check does."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from nlpflow.config.sections.base import Section

# The checks of the validate suite, by id (the keys of validate.policy). Row checks name the rows
# that break them, so those rows can be quarantined; table checks judge the data as a whole.
ROW_CHECKS: tuple[str, ...] = (
    "text_not_null", "label_not_null", "text_not_blank", "label_in_set", "label_variants",
    "text_length", "class_min_count", "duplicates", "leak_exact", "leak_normalized",
    "leak_subphrase", "class_imbalance", "encoding_damage", "script", "p95_chars", "p95_tokens",
)  # fmt: skip
TABLE_CHECKS: tuple[str, ...] = (
    "text_column", "label_column", "median_tokens", "label_drift", "length_drift",
)  # fmt: skip
# token classification's own (nlpflow.data.suites.token_classification); it shares
# label_variants, leak_exact, leak_normalized, encoding_damage and length_drift with the above
ENTITY_ROW_CHECKS = ("token_tag_counts", "tag_in_set", "bio_sequence", "token_offsets",
                     "sentence_length", "type_min_count")  # fmt: skip
ENTITY_TABLE_CHECKS = ("entity_share", "type_drift")
ROW_CHECKS += ENTITY_ROW_CHECKS
TABLE_CHECKS += ENTITY_TABLE_CHECKS
# What a broken check does when validate.policy does not name it: fail, but for the checks
# below. leak_subphrase warns: a phrase inside a longer train text is a softer leak than a
# repeated text, and the datasets nlpflow ran before it existed (MR: 2 of 2,132 validation and
# test sentences, SMS spam's repeated messages) must not start failing for it.
DEFAULT_POLICY: dict[str, Literal["fail", "quarantine", "warn"]] = {"leak_subphrase": "warn"}
SCRIPTS = ("latin", "cyrillic", "greek", "arabic", "hebrew", "cjk", "hiragana", "katakana",
           "hangul", "devanagari", "thai")  # fmt: skip


class EntityValidateParams(Section):
    """validate.entities: the bounds of token classification's suite (one row per sentence).
    Defaults let WNUT-17 (tweets, sparse and unusual entities) pass; each says why."""

    min_sentence_tokens: int = Field(
        default=1,
        ge=1,
        description="Fewest tokens in a sentence. 1: a one-token sentence (a hashtag, a name) "
        "is a real example; only an empty one carries nothing.",
    )
    max_sentence_tokens: int = Field(
        default=256,
        ge=1,
        description="Most tokens in a sentence. 256: WNUT-17's longest has 105, CoNLL-2003's "
        "124; past that it is likely several sentences run together (a missing blank line), "
        "and a transformer's 512-subword window would cut it.",
    )
    min_entity_share: float = Field(
        default=0.1,
        ge=0.0,
        le=1.0,
        description="Smallest share of sentences (all splits) holding an entity. 0.1: WNUT-17's "
        "train has 36%; below a tenth the tag column was likely misread, or tags were lost.",
    )
    min_examples_per_type: int = Field(
        default=5,
        ge=1,
        description="Fewest train entities (B- tags) per type. 5, as validate."
        "min_examples_per_class: fewer can neither be learnt nor scored (WNUT-17's rarest, "
        "creative-work, has 140).",
    )
    max_type_drift: float | None = Field(
        default=0.1,
        ge=0.0,
        le=1.0,
        description="Largest total variation distance of the entity-type shares (per entity) "
        "from the last accepted snapshot; null = no type drift check. 0.1, as "
        "validate.max_label_drift. Sentence lengths use validate.max_length_drift.",
    )

    @model_validator(mode="after")
    def _bounds(self) -> EntityValidateParams:
        if self.min_sentence_tokens > self.max_sentence_tokens:
            raise ValueError("min_sentence_tokens must not exceed max_sentence_tokens")
        return self


class ValidateParams(Section):
    """validate: the Great Expectations suite built from these bounds."""

    min_chars: int = Field(default=1, ge=1, description="Shortest allowed text, in characters.")
    max_chars: int = Field(default=5000, ge=1, description="Longest allowed text, in characters.")
    min_examples_per_class: int = Field(
        default=5, ge=1, description="Minimum train rows per label."
    )
    max_duplicate_rate: float = Field(
        default=0.05,
        ge=0.0,
        le=1.0,
        description="Largest share of rows whose text repeats an earlier row's.",
    )
    max_imbalance_ratio: float = Field(
        default=20.0, ge=1.0, description="Largest train class / smallest train class."
    )
    max_damaged_share: float = Field(
        default=0.001,
        ge=0.0,
        le=1.0,
        description="Largest share of rows holding U+FFFD or control characters (encoding damage).",
    )
    script: str | None = Field(
        default="latin",
        description=f"Script most letters must be written in ({', '.join(SCRIPTS)}); "
        "null = no script check.",
    )
    min_script_share: float = Field(
        default=0.99,
        ge=0.0,
        le=1.0,
        description="Smallest share of texts with at least half their letters in `script`.",
    )
    min_median_tokens: int = Field(
        default=1, ge=0, description="Lowest allowed median length, in whitespace tokens."
    )
    max_p95_tokens: int = Field(
        default=512, ge=1, description="Highest allowed 95th-percentile length, in tokens."
    )
    max_p95_chars: int = Field(
        default=3000, ge=1, description="Highest allowed 95th-percentile length, in characters."
    )
    subphrase_min_tokens: int = Field(
        default=4,
        ge=1,
        description="leak_subphrase: fewest words (after normalisation) of a validation or "
        "test text found inside a train text for it to count as a leak. 4: a word or two "
        "inside a train sentence ('not good') is ordinary language, not a leak; MR's "
        "sentences, drawn from different reviews, have 2 of 2,132 at 4+.",
    )
    max_label_drift: float | None = Field(
        default=0.1,
        ge=0.0,
        le=1.0,
        description="Largest total variation distance of the label shares from the last "
        "accepted snapshot; null = no label drift check.",
    )
    max_length_drift: float | None = Field(
        default=0.15,
        ge=0.0,
        le=1.0,
        description="Largest total variation distance of the token-length histogram "
        "(power-of-two bins) from the last accepted snapshot; null = no length drift check.",
    )
    policy: dict[str, Literal["fail", "quarantine", "warn"]] = Field(
        default={},
        description="What a broken check does, by check id (default fail; leak_subphrase: "
        "warn): fail stops the run; quarantine moves the offending rows to data/quarantine/ "
        "with their reasons and goes on; warn reports it (the run's warnings, the report) and "
        f"goes on. Row checks: {', '.join(ROW_CHECKS)}. Table checks (fail only): "
        f"{', '.join(TABLE_CHECKS)}.",
    )
    show_examples: int = Field(
        default=5, ge=1, description="Offending rows shown per failed check."
    )
    entities: EntityValidateParams = Field(
        default=EntityValidateParams(),
        description="Token classification's bounds (task token-classification; its suite also "
        "reads max_damaged_share and max_length_drift above).",
    )

    @field_validator("script")
    @classmethod
    def _known_script(cls, value: str | None) -> str | None:
        if value is not None and value.lower() not in SCRIPTS:
            raise ValueError(f"unknown script {value!r}; scripts: {', '.join(SCRIPTS)}, or null")
        return value.lower() if value is not None else None

    @field_validator("policy")
    @classmethod
    def _known_checks(cls, value: dict[str, str]) -> dict[str, str]:
        for check, action in value.items():
            if check in TABLE_CHECKS and action == "quarantine":
                raise ValueError(
                    f"{check} judges the data as a whole, so no rows can be quarantined for it; "
                    "use fail"
                )
            if check not in ROW_CHECKS + TABLE_CHECKS:
                raise ValueError(
                    f"unknown check {check!r}; checks: {', '.join(ROW_CHECKS + TABLE_CHECKS)}"
                )
        return value

    @model_validator(mode="after")
    def _bounds(self) -> ValidateParams:
        if self.min_chars > self.max_chars:
            raise ValueError("min_chars must not exceed max_chars")
        return self

    def action(self, check: str) -> Literal["fail", "quarantine", "warn"]:
        return self.policy.get(check, DEFAULT_POLICY.get(check, "fail"))
