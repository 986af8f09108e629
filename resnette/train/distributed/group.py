"""The process group: joining the job torchrun started, leaving it, and who this process is.

`init` reads torchrun's environment once and returns a `Dist` (rank, local rank, world size,
device); the functions below it ask the live process group instead, for code that is not
handed a `Dist` (the Learner).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from ...utils import ResnetteError

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
    world = os.environ.get("WORLD_SIZE", "1").strip() or "1"
    if not world.isdigit():
        raise ResnetteError(f"WORLD_SIZE={world[:40]!r} is not a number of processes; unset it, "
                            "or launch with torchrun, which sets it")
    return int(world) > 1 or "TORCHELASTIC_RUN_ID" in os.environ


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
    rank, local_rank, world_size = _launch_env()
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
            raise ResnetteError(f"rank {rank} could not join the other {world_size - 1} "
                                f"process(es) ({first_line(e)}); check --rdzv-endpoint / "
                                "MASTER_ADDR and that every machine can reach it") from None
    group = _new_prepare_group() if world_size > 1 else None
    return Dist(rank, local_rank, world_size, device, group)


def _launch_env() -> tuple[int, int, int]:
    """RANK, LOCAL_RANK and WORLD_SIZE as torchrun set them."""
    try:
        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        return rank, local_rank, int(os.environ["WORLD_SIZE"])
    except (KeyError, ValueError):
        raise ResnetteError("WORLD_SIZE is set but RANK is missing or not a number; launch with "
                            "torchrun, which sets RANK, LOCAL_RANK and WORLD_SIZE") from None


def assigned_rank() -> int:
    """The rank the launcher gave this process (0 without one). Unlike `rank()` it holds
    before `init` and after `shutdown`: for the last line a command prints once, on rank 0."""
    return _launch_env()[0] if launched() else 0


def restart_count() -> int:
    """How many times torchrun restarted this job (`--max-restarts`); 0 outside torchrun."""
    try:
        return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
    except ValueError:
        return 0


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


def _new_prepare_group() -> Any:
    """A Gloo group with the long preparation timeout (objects and CPU tensors travel on it).

    new_group is itself collective (every rank calls `init` once, at the same point) and
    opens connections and threads that live until the group is destroyed, so it is made once
    per job, not per use."""
    return dist.new_group(backend="gloo", timeout=timedelta(seconds=PREPARE_TIMEOUT_S))


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
    """How many processes train together (1 outside a job)."""
    return dist.get_world_size() if in_job() else 1


def rank() -> int:
    """This process's rank (0 outside a job)."""
    return dist.get_rank() if in_job() else 0


def is_main() -> bool:
    """Rank 0: the process that prints and writes."""
    return rank() == 0


def first_line(e: BaseException) -> str:
    """An exception's first line (PyTorch's messages run on with C++ context)."""
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
