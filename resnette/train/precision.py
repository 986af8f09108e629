"""Which floating-point precision to train in, and the autocast context that applies it."""
from __future__ import annotations

import contextlib

import torch

from ..utils import ResnetteError

PRECISIONS = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}
CHOICES = ("auto", *PRECISIONS)


def resolve_precision(precision: str, device: torch.device, quiet: bool = False) -> str:
    """The precision to train in; "auto" picks bf16 where the hardware runs it natively.

    On a CPU without bfloat16 instructions (no AVX512-BF16/AMX, e.g. this project's AMD EPYC
    test machine) oneDNN emulates bf16 and a training step is 3-5x SLOWER than float32, so
    "auto" means bf16 on CUDA and on CPUs with native bf16, float32 elsewhere.
    """
    if precision not in CHOICES:
        raise ResnetteError(f"unknown precision {precision!r}; choose auto, bf16, fp16 or fp32")
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"
    if precision == "fp16" and device.type != "cuda":
        # float16 needs loss scaling and CPUs have no fast float16 path; bfloat16 needs neither
        if not quiet:
            print("fp16 needs a CUDA GPU; using bf16 on this device instead")
        return "bf16"
    return precision


def cpu_has_native_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast(precision: str, device_type: str):
    """torch.autocast for bf16/fp16, a no-op context for fp32."""
    if precision not in PRECISIONS:
        raise ResnetteError(f"unknown precision {precision!r}; choose one of {tuple(PRECISIONS)}")
    dtype = PRECISIONS[precision]
    return contextlib.nullcontext() if dtype is None else torch.autocast(device_type, dtype=dtype)
