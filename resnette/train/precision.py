"""Where and in what precision to compute: one `resolve`, one table, for every caller.

The command line, the Python API (`Learner(precision=...)`) and the benchmarks all ask
`resolve(precision, device, channels_last)`, so a choice means the same thing everywhere:

    choice   on a CPU                                   on a CUDA GPU
    auto     bf16 where the CPU has it natively          bf16 where supported, else fp16
             (AVX512-BF16/AMX), else fp32
    bf16     bf16 (autocast)                             bf16 (autocast)
    fp16     refused: CPUs have no fast fp16 path        fp16 (autocast + loss scaling)
    fp32     fp32                                        fp32
    half     bf16 where native, else fp32, said in       fp16
             one line (learn.to_fp16(): CPUs have no
             fast fp16)

    inference: `resnette evaluate` and `predict` compute in INFERENCE (fp32, the precision the
    weights are saved in) on `resolve(INFERENCE)`'s device; the Learner's own validation and
    predictions run in its training precision, as fastai's do.

    channels_last=None (the default everywhere) means "where it pays": NHWC lets cuDNN use
    tensor cores on a GPU, but PyTorch's CPU batchnorm is 2-5x slower in NHWC
    (benchmarks/models.py), so True on CUDA, False on a CPU.

"auto" on a CPU reads the CPU's feature flag rather than timing a matmul: where oneDNN only
emulates bf16 a training step is 3-5x SLOWER than fp32, and a flag gives the same answer in
every process, so the same config repeats the same run (a timing could flip on a busy machine).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from ..utils import ResnetteError

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}
CHOICES = ("auto", *DTYPES)
INFERENCE = "fp32"   # evaluate and predict: a few batches, in the weights' own precision


@dataclass(frozen=True)
class Compute:
    """What `resolve` decided: the device, the precision to train in, the memory format."""

    device: torch.device
    precision: str           # "bf16", "fp16" or "fp32", never "auto"
    channels_last: bool


def pick_device(name: str | torch.device = "auto") -> torch.device:
    """"auto": the first CUDA GPU if there is one, else the CPU; a named GPU must exist."""
    name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ResnetteError(f"--device {name}: no CUDA GPU is visible; use --device cpu")
    return torch.device(name)


def resolve(precision: str = "auto", device: str | torch.device = "auto",
            channels_last: bool | None = None) -> Compute:
    """The module's table, applied; a choice that cannot work here is a ResnetteError."""
    dev = pick_device(device)
    on_gpu = dev.type == "cuda"
    if precision not in CHOICES:
        raise ResnetteError(f"unknown precision {precision!r}; choose one of {', '.join(CHOICES)}")
    if precision == "auto":
        if on_gpu:
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            precision = "bf16" if cpu_has_native_bf16() else "fp32"
    if precision == "fp16" and not on_gpu:
        raise ResnetteError(f"precision fp16 needs a CUDA GPU (the device is {dev}); "
                            "use bf16 or fp32 on the CPU")
    return Compute(dev, precision, on_gpu if channels_last is None else bool(channels_last))


def half(device: torch.device) -> tuple[str, str]:
    """`learn.to_fp16()`'s precision on `device` (the table's "half" row), and the line that
    says what it chose instead of fp16 ("" on a GPU, where fp16 is what was asked)."""
    if device.type == "cuda":
        return "fp16", ""
    if cpu_has_native_bf16():
        return "bf16", "to_fp16: this CPU has no fast float16; training in bfloat16 (native here)"
    return "fp32", ("to_fp16: this CPU has no fast float16 and only emulates bfloat16; "
                    "training in float32, its fastest")


def cpu_has_native_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast(precision: str, device_type: str):
    """torch.autocast for bf16/fp16, a no-op context for fp32."""
    if precision not in DTYPES:
        raise ResnetteError(f"unknown precision {precision!r}; choose one of {', '.join(DTYPES)}")
    dtype = DTYPES[precision]
    return contextlib.nullcontext() if dtype is None else torch.autocast(device_type, dtype=dtype)
