"""Hyper-parameter schedules, evaluated at every batch: fastai's one-cycle and flat-cos.

A schedule is a function of `pos`, the fraction of training done (0 at the first batch of
the first epoch; the last batch sees (n-1)/n, never 1), returning the learning rate and
the momentum for that batch. Exactly fastai's `combined_cos` shapes, so a run here and a run
in the book follow the same curve.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, asdict


def sched_cos(start: float, end: float, pos: float) -> float:
    """Half a cosine from `start` (pos=0) to `end` (pos=1): slow at both ends, fast midway."""
    return start + (1 + math.cos(math.pi * (1 - pos))) * (end - start) / 2


def sched_exp(start: float, end: float, pos: float) -> float:
    """Exponential from `start` to `end`: equal steps on a log scale (the LR finder's sweep)."""
    return start * (end / start) ** pos


def combined_cos(pct: float, start: float, middle: float, end: float, pos: float) -> float:
    """Cosine from `start` to `middle` over the first `pct` of training, then to `end`."""
    if pos < pct or pct >= 1:
        return sched_cos(start, middle, pos / pct if pct > 0 else 1.0)
    return sched_cos(middle, end, (pos - pct) / (1 - pct))


@dataclass(frozen=True)
class Schedule:
    """What `fit_*` was asked for; stored in checkpoints so a resume can check it matches.

    kind: "one_cycle" (warm up lr_max/div -> lr_max, anneal to lr_max/div_final, momentum
    cycling inversely: high momentum while the lr is low), "flat_cos" (constant lr, then a
    cosine to lr/div_final over the last 1-pct_start, momentum constant) or "constant".
    """

    kind: str
    n_epoch: int
    lr: float
    div: float = 25.0
    div_final: float = 1e5
    pct_start: float = 0.25
    moms: tuple[float, float, float] | None = (0.95, 0.85, 0.95)

    def __call__(self, pos: float) -> tuple[float, float | None]:
        """(lr, mom) at `pos`; mom None means "leave the optimizer's momentum alone"."""
        if self.kind == "one_cycle":
            lr = combined_cos(self.pct_start, self.lr / self.div, self.lr,
                              self.lr / self.div_final, pos)
            mom = combined_cos(self.pct_start, *self.moms, pos) if self.moms else None
            return lr, mom
        if self.kind == "flat_cos":
            lr = combined_cos(self.pct_start, self.lr, self.lr, self.lr / self.div_final, pos)
            return lr, None
        return self.lr, None

    def as_dict(self) -> dict:
        d = asdict(self)
        d["moms"] = list(self.moms) if self.moms else None
        return d

    @staticmethod
    def from_dict(d: dict) -> "Schedule":
        d = dict(d)
        d["moms"] = tuple(d["moms"]) if d.get("moms") else None
        return Schedule(**d)
