"""Running something once: rank 0 decides and the others follow; each machine's first process
prepares the data and the others wait for it. Both travel on the job's preparation group
(Gloo, long timeout: decoding ImageNet into the cache takes tens of minutes)."""
from __future__ import annotations

from typing import Any, Callable, TypeVar

import torch
import torch.distributed as dist

from ...utils import ResnetteError
from .collectives import peer_failures
from .group import Dist

T = TypeVar("T")


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
    failed = torch.tensor([int(error is not None)])
    with peer_failures("data preparation", every_error=True):
        dist.all_reduce(failed, group=_prepare_group(d))
    if error is not None:
        raise error
    if int(failed) > 0:
        raise ResnetteError("another machine's first process failed to prepare the data "
                            "(its error is above); fix that and launch again")
    return result if d.local_rank == 0 else fn()  # type: ignore[return-value]


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
    with peer_failures("setting up the run", every_error=True):
        dist.broadcast_object_list(box, src=0, group=_prepare_group(d))


def _prepare_group(d: Dist) -> Any:
    if d.prepare_group is None:
        raise ValueError("this Dist has no preparation group; get it from distributed.init()")
    return d.prepare_group
