"""Test-only fault injection for tests/faults/: inert unless RESNETTE_TEST_FAULT is set.

A crash test must hit the moment it means to (mid-epoch, mid-save, a NaN at a known batch, an
out-of-memory error on a CPU-only machine), so the suite sets, in the training process only,

    RESNETTE_TEST_FAULT="step_sleep=0.1,save_sleep=5,nan_at=1:2,oom_at=1:2"   (any subset)

    step_sleep=S   sleep S seconds before every training step: a window for signals mid-epoch
    save_sleep=S   sleep S seconds after checkpoint.pt's temporary file is written, before it
                   is renamed into place: a window for `kill -9` during the save
    nan_at=E:B     the inputs of epoch E, batch B become NaN, so its loss does (a divergence)
    oom_at=E:B     torch.OutOfMemoryError at epoch E, batch B (what a too-large batch does)

Unset (always, outside the tests), every function here returns at its first line.
"""
from __future__ import annotations

import os
import time

import torch

ENV = "RESNETTE_TEST_FAULT"


def _faults() -> dict[str, str]:
    spec = os.environ.get(ENV, "")
    return dict(item.split("=", 1) for item in spec.split(",") if "=" in item)


def _at(value: str | None, epoch: int, batch: int) -> bool:
    return value is not None and value == f"{epoch}:{batch}"


def before_step(x: torch.Tensor, epoch: int, batch: int) -> torch.Tensor:
    """Called with each training batch's inputs; returns them (NaN under `nan_at`)."""
    if ENV not in os.environ:
        return x
    faults = _faults()
    if "step_sleep" in faults:
        time.sleep(float(faults["step_sleep"]))
    if _at(faults.get("oom_at"), epoch, batch):
        raise torch.OutOfMemoryError(f"{ENV}: simulated out of memory at epoch {epoch}, batch {batch}")
    if _at(faults.get("nan_at"), epoch, batch):
        return x * float("nan")
    return x


def after_checkpoint_written() -> None:
    """Called between writing checkpoint.pt's temporary file and renaming it over the old one."""
    if ENV not in os.environ:
        return
    delay = _faults().get("save_sleep")
    if delay is not None:
        time.sleep(float(delay))
