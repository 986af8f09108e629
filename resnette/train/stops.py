"""Stopping training without losing work: signals, out of memory, and the error that says how to resume."""
from __future__ import annotations

import math
import signal
import threading
from typing import Callable

import torch

from ..utils import ResnetteError
from . import distributed


class TrainingInterrupted(ResnetteError):
    """Ctrl-C, SIGTERM or running out of memory stopped training after a batch, with a
    checkpoint saved; the message says how to resume, `reason` what happened (one line)."""

    def __init__(self, message: str, reason: str = "training stopped"):
        super().__init__(message)
        self.reason = reason


def catch_stop_signals(request_stop: Callable[[int], None]) -> dict:
    """Route SIGINT/SIGTERM to `request_stop(signum)` instead of raising mid-batch.

    A KeyboardInterrupt in the middle of a step could leave the weights half-updated; asking
    the loop to stop lets it finish the batch and save first. Returns the previous handlers
    (restore them with `signal.signal`); does nothing outside the main thread, where Python
    cannot install handlers.
    """
    if threading.current_thread() is not threading.main_thread():
        return {}
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in old:
        signal.signal(s, lambda signum, frame: request_stop(signum))
    return old


def is_out_of_memory(e: RuntimeError) -> bool:
    """CUDA raises torch.OutOfMemoryError; the CPU and MPS allocators a plain RuntimeError."""
    text = str(e)
    return (isinstance(e, torch.OutOfMemoryError) or "out of memory" in text
            or "can't allocate memory" in text)


def out_of_memory_reason(epoch: int, batch: int, bs: int, world_size: int) -> str:
    """What happened and what to do, in one line."""
    where = f" on rank {torch.distributed.get_rank()}" if world_size > 1 else ""
    per = " per process" if world_size > 1 else ""
    return (f"out of memory{where} at epoch {epoch}, batch {batch} with batch size {bs}{per}; "
            f"use a smaller batch size, e.g. --bs {max(1, bs // 2)}")


def stop_and_save(learn, reason: str, batch: int) -> None:
    """Save the position (rank 0, when there is a run) and raise TrainingInterrupted saying how
    to go on; `batch` is the first batch of `learn.epoch` that has not been trained."""
    if learn.run is None or not learn.is_main:
        where = "rank 0 saved the checkpoint" if learn.run else "nothing saved (no run_dir)"
        raise TrainingInterrupted(f"{reason}; {where}", reason=reason)
    path = learn.save_checkpoint(learn.epoch, batch)
    raise TrainingInterrupted(f"{reason}; saved {path}; run again with resume=True (--resume) "
                              "to continue", reason=reason)


def diverged(learn, batch: int) -> ResnetteError:
    """The loss is NaN/inf: say where, name the setting likely at fault, and point at the last
    good checkpoint."""
    kept = learn.run is not None and learn.run.checkpoint.exists()
    return ResnetteError(f"loss became NaN/inf at epoch {learn.epoch}, batch {batch}; "
                         + suspect(learn.schedule.lr, learn.settings.wd, learn.precision)
                         + (f"; the last good checkpoint {learn.run.checkpoint} is kept" if kept else ""))


def suspect(lr: float, wd: float, precision: str) -> str:
    """The likeliest cause of a divergence, as advice. Decoupled weight decay takes lr x wd
    of every weight each step, so over ~0.1 it fights the gradient; fp16 overflows at 65504;
    otherwise the learning rate is too high (the usual cause)."""
    if lr * wd >= 0.1:
        return (f"the weight decay is likely at fault: lr x wd = {lr * wd:.3g} removes that "
                f"fraction of every weight each step; lower --wd (wd=), e.g. 0.01")
    if precision == "fp16":
        return ("fp16 may have overflowed (its largest number is 65504): use --precision bf16 "
                f"or fp32, or lower the learning rate, e.g. lr={lr / 10:.1e}")
    return f"lower the learning rate, e.g. lr={lr / 10:.1e}"


def out_of_memory(learn, pending: list[torch.Tensor], bs: int) -> None:
    """Out of memory strikes in the forward or backward pass, before the optimizer step, so the
    weights are those after the previous batch: save that position and stop with advice."""
    reason = out_of_memory_reason(learn.epoch, learn.iter, bs, learn.world_size)
    if learn.world_size > 1:
        # DDP: the other ranks wait inside this step's gradient all-reduce, so no collective
        # (the loss sync) and no mid-epoch save is possible; the epoch checkpoint stays.
        raise TrainingInterrupted(f"{reason}; the last epoch's checkpoint is kept", reason=reason)
    if pending:
        read_losses(learn, pending, learn.iter - 1)   # NaN check first: never save NaN weights
    if learn.device.type == "cuda":
        torch.cuda.empty_cache()
    stop_and_save(learn, reason, learn.iter)


def read_losses(learn, pending: list[torch.Tensor], last: int) -> bool:
    """Read the pending losses at once, stop on NaN/inf before anything is saved; returns
    whether to stop for a signal. Under DDP one all-reduce averages the losses and tells every
    rank whether any got Ctrl-C/SIGTERM, so all record the same numbers and stop together."""
    values, stop = distributed.mean_and_any(torch.stack(pending).float(),
                                            learn._stop_signal is not None)
    if stop and learn._stop_signal is None:  # another rank was told to stop
        learn._stop_signal = signal.SIGTERM
    bad = [j for j, v in enumerate(values) if not math.isfinite(v)]
    if bad:
        raise diverged(learn, last - len(values) + 1 + bad[0])
    learn.recorder.add_losses(values)
    return stop
