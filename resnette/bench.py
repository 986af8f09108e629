"""Timing helpers shared by `resnette bench` and benchmarks/: how fast is this machine at
matrix products, and how many images per second does a model train or infer at.

Kept import-light (torch and the model summary only) so the command line starts quickly.
Every rate is a median over timed repetitions after warm-up steps, because other processes
on a shared machine make single timings noisy.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable

import torch
from torch import nn

from resnette.train.precision import autocast
from resnette.utils import ResnetteError

PRECISIONS = ("fp32", "bf16")


def _median_seconds(fn: Callable[[], object], reps: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def matmul_rate(dtype: torch.dtype = torch.bfloat16, n: int = 1024, reps: int = 5,
                device: str = "cpu") -> float:
    """FLOP/s of an n x n matrix product in `dtype`: the machine's practical peak, the yardstick
    for how well a model uses the hardware (2 * n^3 FLOPs per product)."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)

    def step() -> None:
        a @ b
        if device != "cpu":
            torch.cuda.synchronize()
    return 2 * n**3 / _median_seconds(step, reps, warmup=1)


def has_fast_bf16(device: str = "cpu") -> bool:
    """Whether bfloat16 matrix products are at least as fast as float32 here.

    CPUs without AVX-512-BF16 or AMX (e.g. AVX2-only ones) emulate bfloat16 and run it tens to
    hundreds of times slower than float32, so bf16 autocast there is a slowdown, not a speedup.
    A small measurement (~0.1 s) answers it for any device without a list of CPU models.
    """
    n = 256
    return matmul_rate(torch.bfloat16, n, reps=3, device=device) >= matmul_rate(
        torch.float32, n, reps=3, device=device)


def _autocast(precision: str, device: str):
    if precision not in PRECISIONS:
        raise ResnetteError(f"unknown precision {precision!r}; choose one of {PRECISIONS}")
    return autocast(precision, torch.device(device).type)


def _batch(model: nn.Module, bs: int, size: int, c_in: int, channels_last: bool, device: str):
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model.to(device=device, memory_format=fmt)
    x = torch.randn(bs, c_in, size, size, device=device).contiguous(memory_format=fmt)
    return x


def _sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def train_rate(model: nn.Module, bs: int = 64, size: int = 128, precision: str = "bf16",
               channels_last: bool = True, steps: int = 3, warmup: int = 1, c_in: int = 3,
               n_out: int | None = None, device: str = "cpu") -> float:
    """Training images/s: forward under autocast, cross-entropy, backward, SGD step.

    The model's weights change (it really trains on random data); pass a fresh model.
    """
    x = _batch(model, bs, size, c_in, channels_last, device)
    model.train()
    n_out = n_out or _out_features(model)
    y = torch.randint(0, n_out, (bs,), device=device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        with _autocast(precision, device):
            loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        _sync(device)
    return bs / _median_seconds(step, steps, warmup)


def inference_rate(model: nn.Module, bs: int = 64, size: int = 128, precision: str = "bf16",
                   channels_last: bool = True, steps: int = 3, warmup: int = 1, c_in: int = 3,
                   device: str = "cpu") -> float:
    """Inference images/s: eval mode (batchnorm uses its running statistics), no gradients."""
    x = _batch(model, bs, size, c_in, channels_last, device)
    model.eval()

    def step() -> None:
        with torch.inference_mode(), _autocast(precision, device):
            model(x)
        _sync(device)
    return bs / _median_seconds(step, steps, warmup)


def train_flops_per_image(macs: int) -> int:
    """FLOPs of one training image from the forward multiply-adds: the backward pass costs
    about twice the forward (gradients for inputs and for weights), and a multiply-add is
    two FLOPs, so 3 x 2 x macs."""
    return 6 * macs


def _out_features(model: nn.Module) -> int:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ResnetteError("cannot tell the model's number of outputs; pass n_out=")
    return linears[-1].out_features
