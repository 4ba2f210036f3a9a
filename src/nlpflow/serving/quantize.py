"""Dynamic int8 quantization of a served transformer (`register.quantize: dynamic_int8`).

torch's dynamic quantization stores each nn.Linear's weights in int8 and quantizes activations
on the fly; embeddings, layer norms and softmax stay fp32. It needs no calibration data, so it is
applied when the registered model loads, not at training time: the registered artifacts stay
fp32 and one version can be served either way. `python bench/serve.py` measures what it changes
(latency, accuracy) on this machine; README shows the table.

Weights are quantized per output channel, not per tensor (torch's default): on MiniLM-L6
fine-tuned on MR, per-tensor int8 changed 66 of 1,066 test labels and cost 1.3 points of accuracy
in requests of 64 texts; per channel it changed 39 and lost none, at the same speed. Activations
are scaled per tensor, over the whole request: so an int8 model's answer for a text can depend on
the other texts (and their padding) in the same request, which fp32's does not (44 of 1,066
labels differed between one-text requests and requests of 64).

GPT-2 style decoders compute their attention and MLP projections in transformers' Conv1D, not
nn.Linear: x @ W + b with W stored (in, out). Such a layer is an nn.Linear with W transposed, so
it is turned into one first and quantized with the rest; otherwise only the classification head
would run in int8 while the model reported itself quantized.

Only the `transformer` family is quantized. For the others it is a no-op: tfidf and spaCy models
have no Linear layers worth it, and `transformer_frozen`'s logistic regression was fitted on fp32
features, which int8 would shift (not measured).
"""

from __future__ import annotations

import warnings
from typing import Any

QUANTIZE_MODES = ("none", "dynamic_int8")
QUANTIZED_FAMILIES = ("transformer",)


def quantize_dynamic_int8(module: Any) -> Any:
    """`module` with every nn.Linear replaced by torch's DynamicQuantizedLinear (int8 weights,
    one scale per output channel)."""
    import torch

    with warnings.catch_warnings():
        # torch 2.13 marks torch.ao.quantization deprecated in favour of torchao (not installed
        # here; quantize_dynamic still works) and warns that quantized tensors are deprecated.
        # Only those two warnings are silenced.
        warnings.filterwarnings(
            "ignore", message=r"torch\.ao\.quantization is deprecated", category=DeprecationWarning
        )
        warnings.filterwarnings(
            "ignore", message=r"torch\.quantize_per_tensor, torch\.quantize_per_channel",
            category=UserWarning,
        )  # fmt: skip
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        return quantize_dynamic(
            module, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8
        )


def conv1d_as_linear(module: Any) -> Any:
    """`module` with every transformers Conv1D (GPT-2's projections) replaced, in place, by the
    nn.Linear that computes the same: weight transposed, bias shared."""
    import torch
    from transformers.pytorch_utils import Conv1D

    for name, child in module.named_children():
        if isinstance(child, Conv1D):
            n_in, n_out = child.weight.shape
            linear = torch.nn.Linear(n_in, n_out, device=child.weight.device)
            linear.weight = torch.nn.Parameter(child.weight.detach().t().contiguous())
            linear.bias = child.bias
            setattr(module, name, linear)
        else:
            conv1d_as_linear(child)
    return module


def apply_quantization(model: Any, mode: str) -> bool:
    """Quantize `model` (a loaded nlpflow TextClassifier) in place as `mode` says; True when
    something was quantized."""
    if mode not in QUANTIZE_MODES:
        from nlpflow.errors import ModelError

        raise ModelError(
            f"quantize={mode!r} is not known; use one of {', '.join(QUANTIZE_MODES)} "
            "(params register.quantize), or upgrade nlpflow to the version that registered it."
        )
    if mode == "none" or getattr(model, "family", None) not in QUANTIZED_FAMILIES:
        return False
    model.model = quantize_dynamic_int8(conv1d_as_linear(model.model))
    return True
