"""Collectives: sums across the ranks, each with its failure turned into one clear line.

A collective fails when another rank died, hung or was killed; PyTorch then raises an error
full of C++ source locations. Every collective here runs inside `peer_failures(during)`,
the one place that recognises such a failure and says, on every surviving rank, what was
lost and how to continue.
"""
from __future__ import annotations

import contextlib
import re
from typing import Iterator

import torch
import torch.distributed as dist
from torch import nn

from ...utils import ResnetteError
from .group import first_line, rank, world_size


def _is_peer_failure(e: BaseException) -> bool:
    """Is `e` a collective failing because another rank died, hung or was killed?

    Gloo reports a vanished peer or a timeout as a plain RuntimeError naming gloo; NCCL and
    newer PyTorch raise DistError subclasses."""
    if isinstance(e, dist.DistError):
        return True
    text = str(e).lower()
    return isinstance(e, RuntimeError) and ("gloo" in text or "nccl" in text)


def _peer_failure(e: BaseException, during: str) -> ResnetteError:
    """The error every surviving rank raises when the job lost one of its processes."""
    return ResnetteError(
        f"rank {rank()} lost contact with another training process during {during} "
        f"({_reason(e)}); a rank died or hung (its own error is above, or the "
        "launcher's summary below); continue later with --resume")


def _reason(e: BaseException) -> str:
    """Gloo's message without its source location and boilerplate: "Connection closed by peer
    [127.0.0.1]:53409", "Timed out waiting 5000ms for recv operation to complete"."""
    text = re.sub(r"^\[[^\]]*\]\s*", "", first_line(e))
    return text.split(". This is typically")[0][:160]


@contextlib.contextmanager
def peer_failures(during: str, every_error: bool = False) -> Iterator[None]:
    """Inside: a collective that fails because a peer is gone raises `_peer_failure(e, during)`.

    `every_error`: on the preparation group (objects over Gloo, before training) any error of
    the collective means the job cannot go on, so every one is translated; elsewhere an error
    that is not a lost peer (a shape mismatch: a bug) keeps its traceback."""
    try:
        yield
    except (RuntimeError, dist.DistError) as e:
        if every_error or _is_peer_failure(e):
            raise _peer_failure(e, during) from None
        raise


def all_reduce_sum(t: torch.Tensor, during: str = "a metric reduction") -> torch.Tensor:
    """Sum `t` over every rank, in place (and return it); unchanged with one process."""
    if world_size() == 1:
        return t
    with peer_failures(during):
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
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


def broadcast_buffers(model: nn.Module) -> None:
    """Copy rank 0's buffers (batchnorm running statistics) to every rank.

    DDP broadcasts them at the start of each training forward, but the last batch's update
    stays local, so without this each rank would validate with slightly different statistics.
    """
    if world_size() == 1:
        return
    with peer_failures("the batchnorm statistics broadcast"):
        for b in model.buffers():
            dist.broadcast(b, src=0)
