"""Training on many GPUs or machines: PyTorch's DistributedDataParallel, launched by torchrun.

    torchrun --nproc-per-node=4 -m resnette train --data imagenette-160 --bs 64   # 4 GPUs, 256 a step

torchrun starts one process per GPU and tells each who it is through environment variables
(RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT). Each process (a "rank") holds a
full copy of the model, trains on its own shard of every batch (the loaders do the
sharding, see data/loaders.py), and DDP averages the gradients across ranks during
backward, so every rank takes the same optimizer step: together they train exactly like
one process with a batch of `bs * world_size`.

Everything here is a no-op with one process, so the rest of the code can call it blindly.
The rules it implements:
- NCCL between GPUs, Gloo between CPUs (Gloo is what the tests use on 127.0.0.1).
- Every collective has a timeout, so a rank that died or hangs ends the job with an error
  naming the problem instead of leaving the others waiting forever.
- Only rank 0 prints and writes files; each machine's local rank 0 downloads and decodes the
  data while the other ranks on that machine wait, then they read its cache.
- Metrics are reduced as SUMS and COUNTS (never as averages of averages), so every image
  counts once whatever the shard sizes.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Callable, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from ..utils import ResnetteError

T = TypeVar("T")

# A collective that waits longer than this means a rank died or hangs. PyTorch's own default
# is 10 minutes for NCCL and 30 for Gloo; one epoch-end checkpoint of an XResNet-152 takes
# seconds, so 10 minutes is generous yet bounded. Override with $RESNETTE_DIST_TIMEOUT.
TIMEOUT_ENV = "RESNETTE_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 600.0
# Decoding a big dataset into the cache (ImageNet: tens of minutes) happens on local rank 0
# while the others wait, so that wait gets its own, longer limit.
PREPARE_TIMEOUT_S = 4 * 3600.0


@dataclass(frozen=True)
class Dist:
    """Who this process is in the job. `Dist()` is the single-process case."""

    rank: int = 0          # 0..world_size-1 across all machines
    local_rank: int = 0    # 0..nproc_per_node-1 on this machine: picks the GPU
    world_size: int = 1
    device: str = "cpu"    # this rank's device, e.g. "cuda:3"
    # The job's one Gloo group for preparation (objects and CPU tensors, long timeout), made
    # once by `init` and destroyed by `shutdown(d)`: held here rather than in a module-level
    # cache, so the process has no hidden state and a group's life is the Dist's.
    prepare_group: Any = field(default=None, compare=False, repr=False)

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that prints, writes the run folder and checkpoints."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def launched() -> bool:
    """True when torchrun (or another launcher setting WORLD_SIZE > 1) started this process.

    `torchrun --nproc-per-node=1` counts too: it runs the DDP code path with one rank, which
    is how the cost of the DDP wrapper alone is measured (docs/DISTRIBUTED.md)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 or "TORCHELASTIC_RUN_ID" in os.environ


def timeout_s() -> float:
    """The collective timeout in seconds ($RESNETTE_DIST_TIMEOUT, default 600)."""
    raw = os.environ.get(TIMEOUT_ENV, str(DEFAULT_TIMEOUT_S))
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ResnetteError(f"{TIMEOUT_ENV}={raw!r} must be a positive number of seconds")
    return value


def init(device: str, timeout: float | None = None) -> Dist:
    """Join the job torchrun started (if any) and pick this rank's device.

    `device` is the resolved --device ("cpu", "cuda", "cuda:N"). Under torchrun a CUDA device
    becomes cuda:LOCAL_RANK and the backend NCCL; on the CPU the backend is Gloo. Without a
    launcher this returns the single-process `Dist` and starts nothing.
    """
    if not launched():
        return Dist(device=device)
    try:
        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        world_size = int(os.environ["WORLD_SIZE"])
    except (KeyError, ValueError):
        raise ResnetteError("WORLD_SIZE is set but RANK is missing or not a number; launch with "
                            "torchrun, which sets RANK, LOCAL_RANK and WORLD_SIZE") from None
    if device.startswith("cuda"):
        device = _rank_gpu(device, local_rank)
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        seconds = timeout if timeout is not None else timeout_s()
        try:
            dist.init_process_group(backend, timeout=timedelta(seconds=seconds))
        except (RuntimeError, ValueError) as e:
            raise ResnetteError(f"rank {rank} could not join the other {world_size - 1} process(es) "
                                f"({_first_line(e)}); check --rdzv-endpoint / MASTER_ADDR and that "
                                "every machine can reach it") from None
    group = _new_prepare_group() if world_size > 1 else None
    return Dist(rank, local_rank, world_size, device, group)


def _rank_gpu(device: str, local_rank: int) -> str:
    if device not in ("cuda", "cuda:0") and device != f"cuda:{local_rank}":
        raise ResnetteError(f"--device {device}: under torchrun each process uses the GPU of its "
                            "LOCAL_RANK; pass --device cuda (or auto) and pick GPUs with "
                            "CUDA_VISIBLE_DEVICES")
    n = torch.cuda.device_count()
    if local_rank >= n:
        raise ResnetteError(f"LOCAL_RANK {local_rank} but only {n} GPU(s) are visible on this "
                            f"machine; use --nproc-per-node={n} or fewer")
    torch.cuda.set_device(local_rank)  # so that plain "cuda" also means this rank's GPU
    return f"cuda:{local_rank}"


def shutdown(d: Dist | None = None) -> None:
    """Leave the process group (PyTorch warns at exit when a group is left open).

    Destroys `d`'s preparation group first, then the default group (which also takes any
    group still open, so a plain `shutdown()` leaves nothing behind either)."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    if d is not None and d.prepare_group is not None:
        dist.destroy_process_group(d.prepare_group)
    dist.destroy_process_group()


# ---- who am I, from the live process group (what the Learner asks) ------------------------
def in_job() -> bool:
    """Is a process group running? Then the Learner trains through DDP (even with one rank)."""
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    return rank() == 0


def print0(*args, **kwargs) -> None:
    """print, on rank 0 only: N copies of every line help nobody."""
    if is_main():
        print(*args, **kwargs)


# ---- collectives, with failures turned into one clear line ----------------------------------
def is_peer_failure(e: BaseException) -> bool:
    """Is `e` a collective failing because another rank died, hung or was killed?

    Gloo reports a vanished peer or a timeout as a plain RuntimeError naming gloo; NCCL and
    newer PyTorch raise DistError subclasses."""
    if isinstance(e, dist.DistError):
        return True
    text = str(e).lower()
    return isinstance(e, RuntimeError) and ("gloo" in text or "nccl" in text)


def peer_failure(e: BaseException, during: str) -> ResnetteError:
    """The error every surviving rank raises when the job lost one of its processes."""
    return ResnetteError(
        f"rank {rank()} lost contact with another training process during {during} "
        f"({_reason(e)}); a rank died or hung (its own error is above, or the "
        "launcher's summary below); continue later with --resume")


def _reason(e: BaseException) -> str:
    """Gloo's message without its source location and boilerplate: "Connection closed by peer
    [127.0.0.1]:53409", "Timed out waiting 5000ms for recv operation to complete"."""
    text = re.sub(r"^\[[^\]]*\]\s*", "", _first_line(e))
    return text.split(". This is typically")[0][:160]


def all_reduce_sum(t: torch.Tensor, during: str = "a metric reduction") -> torch.Tensor:
    """Sum `t` over every rank, in place (and return it); unchanged with one process."""
    if world_size() == 1:
        return t
    try:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    except (RuntimeError, dist.DistError) as e:
        if is_peer_failure(e):
            raise peer_failure(e, during) from None
        raise
    return t


def sum_over_ranks(values: list[torch.Tensor | float]) -> list[float]:
    """Each of `values` (scalar tensors or numbers) summed over the ranks, in one all-reduce."""
    device = next((v.device for v in values if isinstance(v, torch.Tensor)), torch.device("cpu"))
    packed = torch.stack([torch.as_tensor(v, dtype=torch.float64, device=device) for v in values])
    return all_reduce_sum(packed, "validation").tolist()


def mean_and_any(values: torch.Tensor, flag: bool) -> tuple[list[float], bool]:
    """`values` averaged over the ranks, and whether `flag` is set on any rank: one all-reduce.

    The training loop's periodic sync: the averaged losses are the global batch's (what one
    process with the whole batch would record), and the flag is "some rank got Ctrl-C".
    """
    n = world_size()
    if n == 1:
        return values.tolist(), flag
    packed = torch.cat([values.reshape(-1).float(),
                        torch.tensor([float(flag)], device=values.device)])
    all_reduce_sum(packed, "training")
    return (packed[:-1] / n).tolist(), bool(packed[-1] > 0)


def barrier(during: str = "a barrier") -> None:
    if world_size() == 1:
        return
    try:
        dist.barrier()
    except (RuntimeError, dist.DistError) as e:
        if is_peer_failure(e):
            raise peer_failure(e, during) from None
        raise


def broadcast_buffers(model: nn.Module) -> None:
    """Copy rank 0's buffers (batchnorm running statistics) to every rank.

    DDP broadcasts them at the start of each training forward, but the last batch's update
    stays local, so without this each rank would validate with slightly different statistics.
    """
    if world_size() == 1:
        return
    try:
        for b in model.buffers():
            dist.broadcast(b, src=0)
    except (RuntimeError, dist.DistError) as e:
        if is_peer_failure(e):
            raise peer_failure(e, "the batchnorm statistics broadcast") from None
        raise


# ---- running something once: rank 0 decides, the others follow ------------------------------
def local_rank0_first(d: Dist, fn: Callable[[], T]) -> T:
    """Run `fn` on each machine's local rank 0 first, then on the other ranks.

    For data preparation: local rank 0 downloads and decodes the images into this machine's
    cache while the others wait; then they call `fn` too and find the cache ready. If local
    rank 0 fails, every rank raises (the failing one with its own error), none hangs.
    """
    if not d.is_distributed:
        return fn()
    result, error = None, None
    if d.local_rank == 0:
        try:
            result = fn()
        except BaseException as e:  # re-raised below, after telling the others
            error = e
    group = _prepare_group(d)
    failed = torch.tensor([int(error is not None)])
    try:
        dist.all_reduce(failed, group=group)
    except (RuntimeError, dist.DistError) as e:
        raise peer_failure(e, "data preparation") from None
    if error is not None:
        raise error
    if int(failed) > 0:
        raise ResnetteError("another machine's first process failed to prepare the data "
                            "(its error is above); fix that and launch again")
    return result if d.local_rank == 0 else fn()


def on_rank0(d: Dist, fn: Callable[[], T]) -> T:
    """Run `fn` on rank 0 only and give its (picklable) result to every rank.

    For choices that must be made once: the run folder's name (two ranks each choosing would
    take `run` and `run-2`). A ResnetteError on rank 0 is raised on every rank.
    """
    if not d.is_distributed:
        return fn()
    box: list = [None]
    if d.is_main:
        try:
            box[0] = ("ok", fn())
        except ResnetteError as e:
            box[0] = ("error", str(e))
        except BaseException as e:  # a bug: tell the others to stop, keep the traceback here
            box[0] = ("error", f"rank 0 failed with {type(e).__name__}; see its traceback")
            _send(d, box)
            raise
    _send(d, box)
    kind, value = box[0]
    if kind == "error":
        raise ResnetteError(value)
    return value


def _send(d: Dist, box: list) -> None:
    try:
        dist.broadcast_object_list(box, src=0, group=_prepare_group(d))
    except (RuntimeError, dist.DistError) as e:
        raise peer_failure(e, "setting up the run") from None


def _new_prepare_group():
    """A Gloo group with the long preparation timeout (objects and CPU tensors travel on it).

    new_group is itself collective (every rank calls `init` once, at the same point) and
    opens connections and threads that live until the group is destroyed, so it is made once
    per job, not per use."""
    return dist.new_group(backend="gloo", timeout=timedelta(seconds=PREPARE_TIMEOUT_S))


def _prepare_group(d: Dist):
    if d.prepare_group is None:
        raise ValueError("this Dist has no preparation group; get it from distributed.init()")
    return d.prepare_group


def check_sharded(loader, n: int) -> None:
    """DDP over a loader that is not split into `n` shards would train every rank on the same
    batches: refuse it."""
    got = getattr(loader, "world_size", n)
    if got != n:
        raise ResnetteError(f"the data loaders are split for {got} process(es) but {n} are "
                            f"training; build them with rank={rank()}, world_size={n}")


# ---- the model -------------------------------------------------------------------------------
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


def scale_lr(lr: float, world_size: int) -> float:
    """The linear scaling rule (Goyal et al. 2017, "ImageNet in 1 hour"): the global batch is
    world_size times larger, so the learning rate is too. The 1cycle warm-up (pct_start)
    provides the gradual start that rule needs."""
    return lr * world_size


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
