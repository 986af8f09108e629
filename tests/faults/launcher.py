"""Run the `resnette` command line with a fault injected at a precise moment, from outside:

    python tests/faults/launcher.py FAULTS -- train --data ... --epochs 3

FAULTS is a comma-separated subset of

    step_sleep=S   sleep S seconds before every training step: a window for signals mid-epoch
    save_sleep=S   sleep S seconds after checkpoint.pt's temporary file is written, before it
                   is renamed into place: a window for `kill -9` during the save
    nan_at=E:B     the inputs of epoch E, batch B become NaN, so its loss does (a divergence)
    oom_at=E:B     torch.OutOfMemoryError at epoch E, batch B (what a too-large batch does)
    oom_from=N     torch.OutOfMemoryError from F.interpolate, F.grid_sample and F.conv2d
                   whenever an image side they see or make is N px or more: what resizing,
                   augmenting or evaluating a large size does on a small GPU (anywhere:
                   outside the training step too)
    crash_at=E:B   the process dies (exit 17, no cleanup) at epoch E, batch B, in torchrun's
                   first attempt only (TORCHELASTIC_RESTART_COUNT unset or 0): a node failure

The package knows nothing about this: the launcher adds a callback to every Learner (the
public hook a user's callback would use) and wraps the checkpoint writer, then calls
`resnette.cli.main` exactly as `python -m resnette` does.
"""
from __future__ import annotations

import os
import sys
import time

import torch

import resnette.cli
import resnette.train.checkpoints as checkpoints
from resnette.train import Callback, Learner


def parse(spec: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in spec.split(",") if "=" in item)


def at(value: str | None) -> tuple[int, int] | None:
    return None if value is None else tuple(int(v) for v in value.split(":"))  # type: ignore[return-value]


class Fault(Callback):
    """Before each training batch: sleep, run out of memory, or poison the inputs."""

    def __init__(self, faults: dict[str, str]):
        self.sleep = float(faults.get("step_sleep", 0))
        self.nan_at, self.oom_at = at(faults.get("nan_at")), at(faults.get("oom_at"))
        self.crash_at = at(faults.get("crash_at"))

    def before_batch(self, learn) -> None:
        if self.sleep:
            time.sleep(self.sleep)
        where = (learn.epoch, learn.iter)
        if where == self.oom_at:
            raise torch.OutOfMemoryError(f"launcher: simulated out of memory at epoch {where[0]}, batch {where[1]}")
        if where == self.crash_at and os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0":
            os._exit(17)
        if where == self.nan_at:
            learn.xb = learn.xb * float("nan")


def install(faults: dict[str, str]) -> None:
    init = Learner.__init__

    def init_with_fault(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.cbs.append(Fault(faults))
    Learner.__init__ = init_with_fault

    if "oom_from" in faults:
        limit = int(faults["oom_from"])
        for name in ("interpolate", "grid_sample", "conv2d"):
            _oom_from(torch.nn.functional, name, limit)

    if "save_sleep" in faults:
        write = checkpoints._save_reporting_os_errors   # writes the temporary file's content

        def write_then_wait(state, f):
            write(state, f)
            time.sleep(float(faults["save_sleep"]))
        checkpoints._save_reporting_os_errors = write_then_wait


def _oom_from(module, name: str, limit: int, put=setattr) -> None:
    """Wrap module.name (`put`: setattr, or a test's monkeypatch.setattr)."""
    real = getattr(module, name)

    def sides(x) -> list[int]:
        return [int(v) for v in x.shape[-2:]] if isinstance(x, torch.Tensor) and x.dim() >= 3 else []

    def guarded(*args, **kwargs):
        seen = [*sides(args[0] if args else kwargs.get("input"))]
        if name == "grid_sample":
            seen += [int(v) for v in (args[1] if len(args) > 1 else kwargs["grid"]).shape[1:3]]
        size = kwargs.get("size", args[1] if name == "interpolate" and len(args) > 1 else None)
        seen += [int(v) for v in (size if isinstance(size, (tuple, list)) else [size] if size else [])]
        if any(v >= limit for v in seen):
            raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate 20.00 GiB "
                                         f"(launcher: {name} at {max(seen)} px)")
        return real(*args, **kwargs)
    put(module, name, guarded)


if __name__ == "__main__":
    spec, sep, *argv = sys.argv[1:]
    assert sep == "--", "usage: launcher.py FAULTS -- <resnette arguments>"
    install(parse(spec))
    sys.exit(resnette.cli.main(argv))
