"""The model families, registered once each, and the params sections only they read.

    FAMILIES["tfidf_linear_svm"].sections   # ("tfidf", "svm"): train.tfidf and train.svm

An entry says what params.yaml calls the family, which train fields it reads (so a run logs,
caches and names only those), where its code is, and the facts other stages ask of it (does it
use the GPU, the Hugging Face Trainer, Linear layers to quantize). The code itself lives in
nlpflow.training.families.<code>, which holds the entry's `fit` function and `model` class
(with .load); nothing else names a family. Adding a family = its module there + one entry here
(+ a params section and its TrainParams field, when it has knobs of its own).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field, model_validator

from nlpflow.config.sections.base import Section


class TfidfParams(Section):
    """The tfidf_logreg baseline."""

    ngram_max: int = Field(default=2, ge=1, le=5, description="Word n-grams from 1 to this.")
    min_df: int = Field(default=1, ge=1, description="Ignore terms in fewer documents.")
    max_features: int | None = Field(default=200_000, ge=1, description="Vocabulary cap.")
    sublinear_tf: bool = Field(default=True, description="Use 1 + log(tf).")
    C: float = Field(default=10.0, gt=0, description="Inverse regularisation strength.")
    max_iter: int = Field(default=2000, ge=1, description="Solver iterations.")


class SvmParams(Section):
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


class FrozenParams(Section):
    """transformer_frozen: features of the frozen train.pretrained encoder (computed once,
    truncated to train.max_length) under a logistic regression head."""

    pooling: Literal["mean", "cls", "last"] = Field(
        default="mean",
        description="mean: average of the last hidden states over real tokens (what sentence "
        "encoders are trained for); cls: the first token's hidden state (encoders only); last: "
        "the last real token's hidden state (a decoder's summary of the text).",
    )
    C: float = Field(default=1.0, gt=0, description="Inverse regularisation of the head.")
    max_iter: int = Field(default=2000, ge=1, description="Solver iterations of the head.")
    batch_size: int = Field(
        default=64, ge=1, le=4096, description="Texts per encoder forward pass."
    )


class SpacyTextcatParams(Section):
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
    vectors: str | None = Field(
        default=None,
        min_length=1,
        description="Static word vectors the cnn architecture's tok2vec reads beside its hashed embeddings "
        "(include_static_vectors): an embeddings_logreg model folder (a run's models/model), "
        "a GloVe or word2vec text file, or a spaCy package or pipeline folder with vectors; "
        "relative to the project folder; saved with the model. null = none.",
    )

    @model_validator(mode="after")
    def _vectors_need_cnn(self) -> SpacyTextcatParams:
        if self.vectors is not None and self.architecture != "cnn":
            raise ValueError(
                "vectors are read by the cnn architecture's tok2vec only (bow hashes n-grams): "
                "set train.spacy_textcat.architecture to cnn, or vectors to null"
            )
        return self


class EmbeddingsParams(Section):
    """embeddings_logreg: static word vectors (trained with gensim on the train split, or
    pretrained), pooled per text, under a logistic regression."""

    source: Literal["word2vec", "fasttext", "glove_file", "spacy_vectors"] = Field(
        default="word2vec",
        description="word2vec / fasttext: trained by gensim on the train split's processed "
        "texts (never validation or test); glove_file: a GloVe or word2vec text file (`vectors`); "
        "spacy_vectors: the static vectors of an installed spaCy package or pipeline folder "
        "(`vectors`).",
    )
    algorithm: Literal["skipgram", "cbow"] = Field(
        default="skipgram",
        description="word2vec / fasttext: skip-gram (predict the context from a word; better "
        "for rare words) or CBOW (predict a word from its context; faster). Negative sampling.",
    )
    vector_size: int = Field(
        default=100, ge=8, le=1000, description="Dimensions of trained vectors."
    )
    window: int = Field(default=5, ge=1, le=50, description="Context words on each side.")
    min_count: int = Field(
        default=2, ge=1, description="Words rarer than this in the train split get no vector."
    )
    negative: int = Field(default=5, ge=1, le=50, description="Negative samples per word.")
    epochs: int = Field(
        default=30,
        ge=1,
        le=1000,
        description="Passes over the train texts (a small corpus needs many: on MR, 30 scored 4 "
        "to 6 points of test accuracy above 10, in seconds).",
    )
    min_n: int = Field(default=3, ge=1, le=10, description="fasttext: shortest character n-gram.")
    max_n: int = Field(default=6, ge=1, le=10, description="fasttext: longest character n-gram.")
    buckets: int = Field(
        default=50_000,
        ge=1000,
        le=2_000_000,
        description="fasttext: rows of the hashed n-gram table that gives words outside the "
        "vocabulary a vector (saved with the model: buckets x vector_size floats).",
    )
    vectors: str | None = Field(
        default=None,
        min_length=1,
        description="glove_file: the text file (one word and its numbers a line; a word2vec "
        "count/size header line is skipped; .gz read too), relative to the project folder; "
        "spacy_vectors: an installed spaCy package (en_core_web_md) or a pipeline folder.",
    )
    max_vectors: int | None = Field(
        default=None,
        ge=1,
        description="glove_file / spacy_vectors: keep only the first N vectors (GloVe files "
        "list frequent words first); null = all.",
    )
    pooling: Literal["mean", "sif"] = Field(
        default="sif",
        description="mean: the average vector of a text's known words; sif: smooth inverse "
        "frequency (Arora et al. 2017): words weighed a / (a + p(word)), p from train counts, "
        "then the first principal component of the train texts removed.",
    )
    sif_a: float = Field(default=1e-3, gt=0, le=1.0, description="sif: the smoothing a.")
    C: float = Field(default=1.0, gt=0, description="Inverse regularisation of the head.")
    max_iter: int = Field(default=2000, ge=1, description="Solver iterations of the head.")

    @model_validator(mode="after")
    def _needs_vectors(self) -> EmbeddingsParams:
        pretrained = self.source in ("glove_file", "spacy_vectors")
        if pretrained and self.vectors is None:
            raise ValueError(
                f"source {self.source} reads pretrained vectors: set train.embeddings.vectors "
                "to the file (glove_file) or the spaCy package or folder (spacy_vectors)"
            )
        if not pretrained and self.vectors is not None:
            raise ValueError(
                f"source {self.source} trains its own vectors, so train.embeddings.vectors "
                f"({self.vectors}) would be ignored: set it to null, or source to glove_file"
            )
        if self.min_n > self.max_n:
            raise ValueError(f"min_n {self.min_n} must not exceed max_n {self.max_n}")
        return self


class RulesParams(Section):
    """rules: hand-written rules. text-classification: a rules file of keywords, regexes and
    spaCy token patterns with priorities and a default label (nlpflow.training.families.
    rules_text); token-classification: spaCy's SpanRuler over entity patterns."""

    patterns: str | None = Field(
        default=None,
        min_length=1,
        description="The rules file, relative to the project folder (version it with the code; "
        "the model folder keeps a copy). text-classification (required): YAML (`default: "
        "LABEL` and `rules:`, a list) or JSONL (one rule a line, and a line "
        '{"default": LABEL}); each rule has `label`, optional `priority` (an integer, default '
        "0; the firing rule of highest priority wins, ties go to the earlier rule), optional "
        "`name`, and exactly one of `keywords` (words or phrases, matched case-insensitively "
        "as whole words), `regex` (Python syntax, searched in the text as written) or "
        '`pattern` (a spaCy Matcher token pattern, e.g. [{"LOWER": "free"}, {"LIKE_NUM": '
        "true}]); texts no rule fires on get `default`. token-classification: JSONL of spaCy "
        'entity patterns, one a line: {"label": TYPE, "pattern": "a phrase" or [{"LOWER": '
        '"token"}, ...]}; null = none (the gazetteer only).',
    )
    from_train: bool | None = Field(
        default=None,
        description="token-classification only: add a gazetteer, an exact (case-sensitive) "
        "token pattern for every entity surface form of the train split, with the type it has "
        "most often there; null = only when `patterns` is null.",
    )


class SpacyNerParams(Section):
    """spacy_ner: spaCy's transition-based `ner`, trained from a spaCy config built from these
    values (saved with the model as config.cfg)."""

    base: str | None = Field(
        default=None,
        min_length=1,
        description="An installed spaCy pipeline package (e.g. en_core_web_sm) whose ner "
        "weights start training: its tok2vec and hidden layer, and the output weights of the "
        "types the data also has (same name); its other types are dropped. null = blank English.",
    )
    epochs: int = Field(default=30, ge=1, le=1000, description="Maximum epochs.")
    patience: int = Field(
        default=5,
        ge=1,
        description="Stop after this many epochs without a better validation entity F1.",
    )
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0, description="Dropout rate.")
    batch_size: int = Field(default=32, ge=1, le=4096, description="Sentences per update.")
    learn_rate: float = Field(default=0.001, gt=0, le=1.0, description="Adam learning rate.")
    beam_width: int = Field(
        default=8,
        ge=1,
        le=64,
        description="Parses kept when predicting: tags come from the best one, and each tag's "
        "probability is its share of the beam (1 = greedy, every probability 1.0).",
    )
    vectors: str | None = Field(
        default=None,
        min_length=1,
        description="Static word vectors the ner's tok2vec reads beside its hashed embeddings "
        "(include_static_vectors): an embeddings_logreg model folder (a run's models/model), "
        "a GloVe or word2vec text file, or a spaCy package or pipeline folder with vectors; "
        "relative to the project folder; saved with the model. null = none.",
    )

    @model_validator(mode="after")
    def _vectors_or_base(self) -> SpacyNerParams:
        if self.vectors is not None and self.base is not None:
            raise ValueError(
                "a base pipeline's ner brings its own tok2vec, which reads no vectors: set "
                "train.spacy_ner.base or train.spacy_ner.vectors, not both"
            )
        return self


class TokenTransformerParams(Section):
    """token_transformer: a pretrained encoder fine-tuned for token classification (the
    encoder, optimizer, schedule and checkpoints are the shared train fields)."""

    label_all_subwords: bool = Field(
        default=False,
        description="false: only each word's first subword learns its tag (the others are "
        "ignored by the loss); true: every subword does, a B- word's later subwords as I-. "
        "Predictions read the first subword either way.",
    )
    case_types: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="Tell an uncased encoder which words have a capital letter: its tokenizer "
        "lowercases, and case marks names. on: token_type_ids 1 on such words' subwords (BERT's "
        "second segment row, learnt in fine-tuning), 0 elsewhere; auto: on when the tokenizer "
        "lowercases and the encoder has two token types (all-MiniLM-L6-v2); off: never.",
    )


@dataclass(frozen=True)
class Family:
    """One model family."""

    name: str  # train.family
    summary: str  # shown in train.family's description
    code: str  # module under nlpflow.training.families
    fit: str  # its function (train, validation, *, labels, params: TrainParams, on_epoch,
    # on_step, workdir) -> model; imported only when the family is chosen
    model: str  # its class, whose .load(path) reads a saved model folder
    main_knob: tuple[str, str]  # (label, dotted train field) that run names show
    # The NLP tasks it serves (params `task`; nlpflow.config.nlp_tasks.NLP_TASKS). A family of
    # several (rules) has one `fit` and one `model` for all: the fit tells the task by the shape
    # of its data (texts, or token lists), and the class's load returns the model of the task
    # its folder's manifest names (a manifest without one: the first task here).
    tasks: tuple[str, ...]
    sections: tuple[str, ...] = ()  # train sub-sections of its own knobs
    # Other train fields it reads (besides family, seed, augment, distributed); None: every
    # train field that is no family's section (the fine-tuned transformer's).
    shared: tuple[str, ...] | None = ()
    on_device: bool = False  # runs on train.device: a GPU when there is one
    # Trains through the Hugging Face Trainer: reports a validation loss a sweep can minimise,
    # runs under torchrun, and cannot share a process with another such training.
    hf_trainer: bool = False
    quantizable: bool = False  # has the Linear layers register.quantize turns into int8
    # May be the baseline stage's family (train.baseline): cheap, closed-form, CPU only. The
    # baseline stage reads its sections (nlpflow.pipeline.stages), so keep this list short.
    can_be_baseline: bool = False

    def serves(self, task: str) -> bool:
        return task in self.tasks


FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        Family(
            "tfidf_logreg",
            "TF-IDF + scikit-learn logistic regression",
            code="tfidf",
            fit="fit_logreg",
            model="TfidfClassifier",
            main_knob=("C", "tfidf.C"),
            tasks=("text-classification",),
            sections=("tfidf",),
            can_be_baseline=True,
        ),
        Family(
            "tfidf_linear_svm",
            "TF-IDF + a calibrated linear SVM",
            code="tfidf",
            fit="fit_svm",
            model="TfidfClassifier",
            main_knob=("C", "svm.C"),
            tasks=("text-classification",),
            sections=("tfidf", "svm"),
        ),
        Family(
            "transformer",
            "fine-tuning",
            code="transformer",
            fit="fit_transformer",
            model="TransformerClassifier",
            main_knob=("lr", "lr"),
            tasks=("text-classification",),
            shared=None,
            on_device=True,
            hf_trainer=True,
            quantizable=True,
        ),
        Family(
            "transformer_frozen",
            "frozen encoder features + logistic regression",
            code="frozen",
            fit="fit_frozen",
            model="FrozenEncoderClassifier",
            main_knob=("C", "frozen.C"),
            tasks=("text-classification",),
            sections=("frozen",),
            shared=("pretrained", "max_length", "device", "cpu_threads"),
            on_device=True,
        ),
        Family(
            "spacy_textcat",
            "spaCy's own text classifier",
            code="spacy_textcat",
            fit="fit_textcat",
            model="SpacyTextcatClassifier",
            main_knob=("lr", "spacy_textcat.learn_rate"),
            tasks=("text-classification",),
            sections=("spacy_textcat",),
        ),
        Family(
            "embeddings_logreg",
            "static word vectors (gensim Word2Vec / FastText, GloVe, spaCy) pooled, + logistic "
            "regression",
            code="embeddings",
            fit="fit_embeddings",
            model="EmbeddingsClassifier",
            main_knob=("C", "embeddings.C"),
            tasks=("text-classification",),
            sections=("embeddings",),
        ),
        Family(
            "rules",
            "hand-written rules from a versioned file: keywords, regexes and spaCy token "
            "patterns with priorities (text-classification); spaCy SpanRuler patterns or a "
            "gazetteer of train entities (token-classification)",
            code="rules",
            fit="fit_rules",
            model="Rules",
            main_knob=("rules", "rules.patterns"),  # the file's name
            # token-classification first: it had the family alone, so a manifest without a
            # task (written before the family served two) is a tagger's
            tasks=("token-classification", "text-classification"),
            sections=("rules",),
            can_be_baseline=True,
        ),
        Family(
            "spacy_ner",
            "spaCy's transition-based NER, blank or started from an installed pipeline",
            code="spacy_ner",
            fit="fit_ner",
            model="SpacyNerTagger",
            main_knob=("lr", "spacy_ner.learn_rate"),
            tasks=("token-classification",),
            sections=("spacy_ner",),
        ),
        Family(
            "token_transformer",
            "a pretrained encoder fine-tuned to tag tokens (AutoModelForTokenClassification)",
            code="token_transformer",
            fit="fit_token_transformer",
            model="TokenTransformer",
            main_knob=("lr", "lr"),
            tasks=("token-classification",),
            sections=("token_transformer",),
            shared=None,  # the fine-tuning fields, as the transformer
            on_device=True,
            hf_trainer=True,
        ),
        Family(
            "lda",
            "latent Dirichlet allocation on word counts (scikit-learn)",
            code="topic_models",
            fit="fit_lda",
            model="LdaTopicModel",
            main_knob=("topics", "topics.n_topics"),
            tasks=("topic-modeling",),
            sections=("topics", "lda"),
        ),
        Family(
            "nmf",
            "non-negative matrix factorisation of TF-IDF (scikit-learn)",
            code="topic_models",
            fit="fit_nmf",
            model="NmfTopicModel",
            main_knob=("topics", "topics.n_topics"),
            tasks=("topic-modeling",),
            sections=("topics", "nmf"),
            can_be_baseline=True,
        ),
        Family(
            "embedding_clusters",
            "sentence-encoder embeddings clustered, topics worded by class-based TF-IDF "
            "(BERTopic's recipe)",
            code="topic_clusters",
            fit="fit_embedding_clusters",
            model="EmbeddingClusterTopics",
            main_knob=("topics", "topics.n_topics"),
            tasks=("topic-modeling",),
            sections=("topics", "embedding_clusters"),
            shared=("pretrained", "device", "cpu_threads"),
            on_device=True,  # the encoder runs on train.device: a GPU when there is one
        ),
    )
}
# Train sections that only one family (or two) reads, in the order the families list them.
FAMILY_SECTIONS = tuple(dict.fromkeys(s for f in FAMILIES.values() for s in f.sections))
