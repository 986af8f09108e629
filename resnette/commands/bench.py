"""`resnette bench`: how fast is this machine at each stage, in one table; and the timing
helpers it shares with benchmarks/ (matrix-product FLOP/s, training and inference images/s).

    data        augmented training batches per second from the in-memory uint8 store
    model       matrix-product FLOP/s; xresnet18 training and inference images/s
    end to end  a real Learner epoch (data + augmentation + training + validation)

All on synthetic images held in memory, so the numbers measure the machine and the code,
not the disk or a download. Every rate is a median over timed repetitions after warm-up
steps, because other processes on a shared machine make single timings noisy.
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import numpy as np
import torch
from torch import nn

from resnette.data import from_arrays
from resnette.models import create_model, summary
from resnette.train.learner import Learner
from resnette.train.precision import Compute, autocast, resolve
from resnette.utils import ResnetteError


# ---- timing ----------------------------------------------------------------------------------
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


def _batch(model: nn.Module, bs: int, size: int, c_in: int, compute: Compute) -> torch.Tensor:
    fmt = torch.channels_last if compute.channels_last else torch.contiguous_format
    model.to(device=compute.device, memory_format=fmt)
    return torch.randn(bs, c_in, size, size, device=compute.device).contiguous(memory_format=fmt)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def train_rate(model: nn.Module, bs: int = 64, size: int = 128, precision: str = "bf16",
               channels_last: bool | None = None, steps: int = 3, warmup: int = 1, c_in: int = 3,
               n_out: int | None = None, device: str = "cpu") -> float:
    """Training images/s: forward under autocast, cross-entropy, backward, SGD step.

    `precision`, `device` and `channels_last` mean what they mean everywhere (resolve's
    table: "auto", None: where it pays). The model's weights change (it really trains on
    random data); pass a fresh model.
    """
    compute = resolve(precision, device, channels_last)
    x = _batch(model, bs, size, c_in, compute)
    model.train()
    n_out = n_out or _out_features(model)
    y = torch.randint(0, n_out, (bs,), device=compute.device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        with autocast(compute.precision, compute.device.type):
            loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        _sync(compute.device)
    return bs / _median_seconds(step, steps, warmup)


def inference_rate(model: nn.Module, bs: int = 64, size: int = 128, precision: str = "bf16",
                   channels_last: bool | None = None, steps: int = 3, warmup: int = 1,
                   c_in: int = 3, device: str = "cpu") -> float:
    """Inference images/s: eval mode (batchnorm uses its running statistics), no gradients."""
    compute = resolve(precision, device, channels_last)
    x = _batch(model, bs, size, c_in, compute)
    model.eval()

    def step() -> None:
        with torch.inference_mode(), autocast(compute.precision, compute.device.type):
            model(x)
        _sync(compute.device)
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


# ---- the table ---------------------------------------------------------------------------------
def synthetic_data(n: int, presize: int, size: int, bs: int, device: str, n_classes: int = 10):
    """DataLoaders over `n` random uint8 images (80% train), as a folder would give them."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, presize, presize, 3), dtype=np.uint8)
    labels = rng.integers(0, n_classes, n).astype(np.int64)
    is_valid = np.arange(n) % 5 == 0
    vocab = [f"class{i}" for i in range(n_classes)]
    return from_arrays(images, labels, [f"synthetic/{i}" for i in range(n)], is_valid, ~is_valid,
                       vocab, vocab, size=size, bs=bs, device=device)


def loader_rate(loader, epochs: int = 2) -> float:
    """Images per second the loader delivers (augmentation included), after one warm-up batch."""
    loader.set_epoch(0)
    next(iter(loader))
    n, start = 0, time.perf_counter()
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        for x, _ in loader:
            n += len(x)
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - start)


def learner_rate(dls, arch: str, precision: str, epochs: int = 1) -> float:
    """Training images per second of a whole Learner epoch, validation included."""
    model = create_model(arch, n_out=dls.c)
    learn = Learner(dls, model, precision=precision, quiet=True)
    start = time.perf_counter()
    learn.fit_one_cycle(epochs, 1e-3)
    return epochs * dls.train.n / (time.perf_counter() - start)


def bench_table(quick: bool = False, device: str = "auto", arch: str = "xresnet18") -> str:
    compute = resolve("auto", device)
    device, precision = str(compute.device), compute.precision
    size, presize, bs = (64, 80, 32) if quick else (128, 160, 64)
    n = 256 if quick else 640
    if device.startswith("cuda"):
        n *= 8
    dls = synthetic_data(n, presize, size, bs, device)
    rows = [("data", f"augmented batches ({size} px from {presize})",
             f"{loader_rate(dls.train):,.0f} images/s")]
    rates = {}
    for dtype, name in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
        rates[name] = matmul_rate(dtype, n=512 if quick else 1024, device=device)
        rows.append(("model", f"matrix product, {name}", f"{rates[name] / 1e9:,.1f} GFLOP/s"))
    steps = 2 if quick else 3
    model = create_model(arch, n_out=10)
    macs = summary(model, size=size).macs
    train = train_rate(model, bs=bs, size=size, precision=precision, device=device, steps=steps)
    infer = inference_rate(create_model(arch, n_out=10), bs=bs, size=size, precision=precision,
                           device=device, steps=steps)
    layout = "channels-last" if compute.channels_last else "NCHW"
    rows.append(("model", f"{arch} training step ({precision}, {layout}, bs {bs})",
                 f"{train:,.0f} images/s"))
    # the yardstick of issue 25: the step's FLOP/s over the matrix-product rate of its precision
    share = train_flops_per_image(macs) * train / rates[precision]
    rows.append(("model", f"{arch} step's share of the {precision} matrix-product rate",
                 f"{100 * share:.0f}%"))
    rows.append(("model", f"{arch} inference ({precision}, bs {bs})", f"{infer:,.0f} images/s"))
    e2e = learner_rate(dls, arch, precision)
    rows.append(("end to end", f"Learner epoch, {arch} ({precision})", f"{e2e:,.0f} images/s"))
    head = f"resnette bench on {device} ({torch.get_num_threads()} threads), {size} px"
    lines = [head, "", "| stage | what | rate |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


def main(args: argparse.Namespace) -> None:
    print(bench_table(quick=args.quick, device=args.device))
