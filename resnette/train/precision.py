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

    channels_last=None (the default everywhere) means "where it pays": on a CUDA GPU always
    (NHWC lets cuDNN use tensor cores); on a CPU, by the CPU's kind and the precision, below.

The CPU table (`CPU_TABLE`), read from the CPU's flags (`cpu_kind`). xresnet18 training
images/s, 128 px, bs 64, 2 cores, `python benchmarks/cpu_kinds.py`, 2026-12-06 on a Xeon with
AMX; "avx512_bf16" is that Xeon with oneDNN capped to AVX512-BF16 (a stand-in, not the chip);
"avx2" is a real AMD EPYC's quietest run (BENCHMARKS.md, "Models"), where NHWC loses:

    kind          fp32 NCHW / NHWC   bf16 NCHW / NHWC    auto    NHWC in bf16   NHWC in fp32
    amx               38 / 49            90 / 121        bf16    yes            yes
    avx512_bf16       38 / 45            43 / 45         bf16    yes            yes
    avx2              28 / 24         emulated, ~3       fp32    no             no
    other         (not measured: the safe row)           fp32    no             no

Without AMX, bf16 ties fp32 on the stand-in; it stays the choice there (half the memory
traffic, and the row a real Cooper Lake would be expected to win), to be re-measured natively.
The same rows with the matrix-product shares: BENCHMARKS.md, "CPU kinds".

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
# kind: (auto's precision, channels-last where it pays for bf16, for fp32); see the docstring
CPU_TABLE = {"amx": ("bf16", True, True), "avx512_bf16": ("bf16", True, True),
             "avx2": ("fp32", False, False), "other": ("fp32", False, False)}
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
            precision = CPU_TABLE[cpu_kind()][0]
    if precision == "fp16" and not on_gpu:
        raise ResnetteError(f"precision fp16 needs a CUDA GPU (the device is {dev}); "
                            "use bf16 or fp32 on the CPU")
    if channels_last is None:
        _, bf16_nhwc, fp32_nhwc = CPU_TABLE[cpu_kind()]
        channels_last = on_gpu or (bf16_nhwc if precision == "bf16" else fp32_nhwc)
    return Compute(dev, precision, bool(channels_last))


def half(device: torch.device) -> tuple[str, str]:
    """`learn.to_fp16()`'s precision on `device` (the table's "half" row), and the line that
    says what it chose instead of fp16 ("" on a GPU, where fp16 is what was asked)."""
    if device.type == "cuda":
        return "fp16", ""
    if cpu_has_native_bf16():
        return "bf16", "to_fp16: this CPU has no fast float16; training in bfloat16 (native here)"
    return "fp32", ("to_fp16: this CPU has no fast float16 and only emulates bfloat16; "
                    "training in float32, its fastest")


def cpu_kind() -> str:
    """This CPU's row of `CPU_TABLE`: "amx", "avx512_bf16", "avx2" or "other", from its flags
    (the same answer in every process, so a config repeats the same run)."""
    try:
        cpu = torch.cpu
        if cpu._is_avx512_bf16_supported():
            return "amx" if cpu._is_amx_tile_supported() else "avx512_bf16"
        return "avx2" if cpu._is_avx2_supported() else "other"
    except (AttributeError, RuntimeError):
        return "other"


def cpu_has_native_bf16() -> bool:
    return CPU_TABLE[cpu_kind()][0] == "bf16"


def autocast(precision: str, device_type: str):
    """torch.autocast for bf16/fp16, a no-op context for fp32."""
    if precision not in DTYPES:
        raise ResnetteError(f"unknown precision {precision!r}; choose one of {', '.join(DTYPES)}")
    dtype = DTYPES[precision]
    return contextlib.nullcontext() if dtype is None else torch.autocast(device_type, dtype=dtype)
