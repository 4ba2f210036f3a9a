"""Training performance facts: the device, peak memory, useful FLOPs and model FLOPs utilisation.

MFU here is the FLOP/s of the useful work (non-padding tokens only) over the FLOP/s of a dense
matmul measured on the same device in the same process (fp32 on CPU, bf16 on CUDA), so it says
how close training runs to what this machine can do, not to a datasheet.
"""

from __future__ import annotations

import platform
import resource
import time
from typing import Any


def device_facts(device: str) -> dict[str, str]:
    import torch

    facts = {
        "cpu": _cpu_model(),
        "cpu_threads": str(torch.get_num_threads()),
        "torch": torch.__version__,
        "device": device,
    }
    if device == "cuda" and torch.cuda.is_available():
        facts |= {"gpu": torch.cuda.get_device_name(), "cuda": str(torch.version.cuda)}
    return facts


def _cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):  # noqa: SIM115
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def peak_memory_mb(device: str) -> float:
    """Peak GPU memory allocated on CUDA, else the process's peak resident set size."""
    if device == "cuda":
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def measure_matmul_flops(device: str, *, seconds: float = 0.5, windows: int = 5) -> float:
    """FLOP/s of square matmuls in the dtype training computes in (bf16 autocast on CUDA): the
    best of `windows` timing windows, since a shared machine's slow moments are not the peak."""
    import torch

    cuda = device == "cuda"
    size = 8192 if cuda else 1024
    dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float32
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    torch.matmul(a, b)  # warm-up: kernel selection, thread pool start
    best = 0.0
    for _ in range(windows):
        runs, start = 0, time.perf_counter()
        while True:
            torch.matmul(a, b)
            runs += 1
            if cuda:
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - start
            if elapsed >= seconds / windows:
                break
        best = max(best, 2 * size**3 * runs / elapsed)
    return best


def training_flops_per_token(model: Any) -> float:
    """2 FLOPs per weight per token forward, 4 more backward for the weights that train.

    Embedding tables are lookups, not matmuls, so they count for nothing. Freezing is bottom-up
    (the last layers train), so the backward pass stops at the lowest trainable layer. The
    attention score matmuls are left out: at MR's ~27 tokens they add about 1%.
    """
    import torch

    embedding_ids = {
        id(p) for m in model.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters()
    }
    total = trainable = 0
    for weight in model.parameters():
        if id(weight) in embedding_ids:
            continue
        total += weight.numel()
        trainable += weight.numel() if weight.requires_grad else 0
    return 2.0 * total + 4.0 * trainable


def encoder_layers(model: Any) -> list[Any]:
    """The encoder's layer stack: the longest ModuleList in the model (BERT, RoBERTa, ...)."""
    import torch

    layers: list[Any] = []
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) > len(layers):
            layers = list(module)
    return layers


def attention_flops_per_token(model: Any, seq_len: float) -> float:
    """The attention score matmuls (QK^T and AV), which have no weights: 4 * hidden * seq_len
    FLOPs per token and layer forward, twice that backward in the layers that train (the
    12 * layers * hidden * seq term of PaLM's MFU formula, appendix B, when all layers train)."""
    config = model.config
    layers = encoder_layers(model)
    training = sum(any(w.requires_grad for w in layer.parameters()) for layer in layers)
    per_layer = 4.0 * config.hidden_size * seq_len
    return per_layer * (config.num_hidden_layers + 2 * training)
