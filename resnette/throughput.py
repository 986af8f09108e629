"""`resnette bench`: how fast is this machine at each stage, in one table.

    data        augmented training batches per second from the in-memory uint8 store
    model       matrix-product FLOP/s; xresnet18 training and inference images/s
    end to end  a real Learner epoch (data + augmentation + training + validation)

All on synthetic images held in memory, so the numbers measure the machine and the code,
not the disk or a download. Other processes on the machine make the numbers noisy.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from resnette import bench
from resnette.data import from_arrays
from resnette.models import create_model
from resnette.train.learner import Learner
from resnette.workflow import pick_device, pick_precision


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
    device = pick_device(device)
    precision = pick_precision("auto", device)
    size, presize, bs = (64, 80, 32) if quick else (128, 160, 64)
    n = 256 if quick else 640
    if device.startswith("cuda"):
        n *= 8
    dls = synthetic_data(n, presize, size, bs, device)
    rows = [("data", f"augmented batches ({size} px from {presize})",
             f"{loader_rate(dls.train):,.0f} images/s")]
    for dtype, name in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
        rate = bench.matmul_rate(dtype, n=512 if quick else 1024, device=device)
        rows.append(("model", f"matrix product, {name}", f"{rate / 1e9:,.1f} GFLOP/s"))
    model_precision = "bf16" if precision == "bf16" else "fp32"
    train = bench.train_rate(create_model(arch, n_out=10), bs=bs, size=size,
                             precision=model_precision, device=device, steps=2 if quick else 3)
    infer = bench.inference_rate(create_model(arch, n_out=10), bs=bs, size=size,
                                 precision=model_precision, device=device, steps=2 if quick else 3)
    rows.append(("model", f"{arch} training step ({model_precision}, bs {bs})",
                 f"{train:,.0f} images/s"))
    rows.append(("model", f"{arch} inference ({model_precision}, bs {bs})", f"{infer:,.0f} images/s"))
    e2e = learner_rate(dls, arch, precision)
    rows.append(("end to end", f"Learner epoch, {arch} ({precision})", f"{e2e:,.0f} images/s"))
    head = f"resnette bench on {device} ({torch.get_num_threads()} threads), {size} px"
    lines = [head, "", "| stage | what | rate |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)
