"""Stopping training without losing work: signals, out of memory, and the error that says how to resume."""
from __future__ import annotations

import signal
import threading
from typing import Callable

import torch

from ..utils import ResnetteError


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
