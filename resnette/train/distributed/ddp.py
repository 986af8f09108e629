"""What training under DDP changes: the model as DDP sees it, batchnorm over the global batch,
loaders split into the job's shards, and the learning rate for the larger global batch."""
from __future__ import annotations

import torch
from torch import nn

from ...utils import ResnetteError
from .group import rank


def wrap_ddp(model: nn.Module, device: torch.device) -> nn.Module:
    """The model as DDP sees it: gradients are averaged across ranks during backward.

    Parameters are shared with `model`, so the optimizer, EMA and checkpoints keep using the
    plain module (no "module." prefix in saved weights); rank 0's initial weights are copied
    to every rank here.
    """
    from torch.nn.parallel import DistributedDataParallel as DDP
    # gradient_as_bucket_view: .grad tensors live inside DDP's communication buckets instead
    # of being copied into them and back after every backward (less memory, fewer copies).
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return DDP(model, device_ids=[index], output_device=index, gradient_as_bucket_view=True)
    return DDP(model, gradient_as_bucket_view=True)


def sync_batchnorm(model: nn.Module, device: str, world_size: int) -> nn.Module:
    """Batchnorm layers that compute their statistics over the global batch (SyncBatchNorm).

    Worth it when the per-GPU batch is small (under ~32): the statistics of 8 images are
    noisy. It costs one extra all-reduce per batchnorm layer per step. The weights and state
    dict keys are unchanged, so checkpoints load either way. PyTorch runs it on GPUs only.
    """
    if world_size == 1:
        return model
    if not str(device).startswith("cuda"):
        raise ResnetteError("--sync-bn needs CUDA GPUs (PyTorch's SyncBatchNorm does not run on "
                            "CPUs); drop --sync-bn for CPU training")
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


def check_sharded(loader, n: int) -> None:
    """DDP over a loader that is not split into `n` shards would train every rank on the same
    batches: refuse it."""
    got = getattr(loader, "world_size", n)
    if got != n:
        raise ResnetteError(f"the data loaders are split for {got} process(es) but {n} are "
                            f"training; build them with rank={rank()}, world_size={n}")


def scale_lr(lr: float, world_size: int) -> float:
    """The linear scaling rule (Goyal et al. 2017, "ImageNet in 1 hour"): the global batch is
    world_size times larger, so the learning rate is too. The 1cycle warm-up (pct_start)
    provides the gradual start that rule needs."""
    return lr * world_size
