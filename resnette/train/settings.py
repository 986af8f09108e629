"""The Learner's settings: one dataclass, one table of limits, checked once when it is made.

`resnette.run.config.TrainConfig` (the command line and config files) checks its keys with
the same `LIMITS`, so a value refused by `Learner(...)` is refused by `resnette train` with
the same words, and nothing downstream checks again.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from ..utils import ResnetteError
from .optim import OPTIMIZERS
from .precision import CHOICES as PRECISIONS

# key -> (test, what the value must be). Keys of TrainConfig and of Settings share it.
LIMITS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "lr": (lambda v: 0 < v <= 100, "a positive number up to 100"),
    "wd": (lambda v: 0 <= v <= 10, "0 or more and at most 10 (usually 0.01-0.1)"),
    "label_smoothing": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "mixup": (lambda v: 0 <= v <= 100, "a Beta alpha, 0 (off) to 100, e.g. 0.2-1"),
    "cutmix": (lambda v: 0 <= v <= 100, "a Beta alpha, 0 (off) to 100, e.g. 1"),
    "clip": (lambda v: v is None or 0 < v < math.inf, "positive"),
    "ema": (lambda v: v is None or 0 < v < 1, "in (0, 1), e.g. 0.999"),
    "precision": (lambda v: v in PRECISIONS, "one of " + ", ".join(PRECISIONS)),
    "opt": (lambda v: v in OPTIMIZERS, "an optimizer, one of " + ", ".join(OPTIMIZERS)),
    "epochs": (lambda v: 1 <= v <= 10_000, "at least 1 and at most 10000"),
    "valid_every": (lambda v: 0 <= v <= 10_000, "0 (the last epoch only) to 10000"),
    "bs": (lambda v: 1 <= v <= 65_536, "at least 1 and at most 65536"),
    "size": (lambda v: 32 <= v <= 4096, "at least 32 (five stride-2 layers need room) and at most 4096"),
    "presize": (lambda v: 32 <= v <= 4096, "at least 32 and at most 4096"),
    "min_scale": (lambda v: 0 < v <= 1, "in (0, 1]"),
    "valid_pct": (lambda v: v is None or 0 < v < 1, "in (0, 1)"),
    "progressive": (lambda v: len(v) <= 100 and all(32 <= s <= 4096 for s in v),
                    "a list of up to 100 sizes, each at least 32 and at most 4096 (as size)"),
    "classes": (lambda v: 1 <= v <= 100_000, "at least 1 and at most 100000"),
    "c_in": (lambda v: 1 <= v <= 64, "at least 1 and at most 64"),
    "seed": (lambda v: 0 <= v < 2**32, "an integer in 0..4294967295"),
    "device": (lambda v: re.fullmatch(r"auto|cpu|cuda(:\d+)?", str(v)) is not None,
               "auto, cpu, cuda or cuda:N"),
}


def check_limits(values: dict[str, Any], noun: str = "setting",
                 limits: dict[str, tuple[Callable[[Any], bool], str]] = LIMITS) -> None:
    """Raise a one-line ResnetteError naming the first value outside its limits."""
    for key, value in values.items():
        if key in limits and not limits[key][0](value):
            raise ResnetteError(f"{noun} '{key}' must be {limits[key][1]}, got {value!r}")


@dataclass
class Settings:
    """How the Learner trains (see docs/DESIGN.md, "train/"); saved in every checkpoint."""

    opt: str = "adamw"                   # adamw, sgd or ranger (fastai's defaults for each)
    lr: float = 1e-3                     # default peak lr when fit_* is given none
    wd: float = 0.01                     # decoupled weight decay, never on batchnorm or bias
    moms: tuple[float, float, float] = (0.95, 0.85, 0.95)   # fastai's one-cycle momentum
    precision: str = "auto"              # resolved by train/precision.py's table
    channels_last: bool | None = None    # None: where it pays (precision.CPU_TABLE)
    compile: bool = False                # torch.compile the forward
    clip: float | None = None            # max gradient norm
    ema: float | None = None             # decay of an average of the weights, e.g. 0.999
    label_smoothing: float = 0.0
    mixup: float = 0.0                   # Beta(alpha, alpha); 0 = off
    cutmix: float = 0.0
    progressive: list[tuple[int, int]] = field(default_factory=list)   # (first epoch, size)
    valid_every: int = 1                 # validate every n epochs and after the last; 0: last only
    seed: int = 0
    arch: str | None = None              # the registry's name, recorded with the weights
    quiet: bool = False

    def __post_init__(self) -> None:
        # (progressive here is (epoch, size) pairs, whose sizes the loader checks; the
        # config's list of sizes is what LIMITS["progressive"] is about)
        check_limits({k: v for k, v in dataclasses.asdict(self).items() if k != "progressive"})
        self.progressive = sorted((int(e), int(s)) for e, s in self.progressive)

    @classmethod
    def make(cls, **values: Any) -> "Settings":
        """Settings from keywords; a misspelt one is a ResnetteError that suggests the right one."""
        names = [f.name for f in dataclasses.fields(cls)]
        for key in values:
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise ResnetteError(f"unknown Learner setting '{key}'{hint}; valid: " + ", ".join(names))
        return cls(**values)
