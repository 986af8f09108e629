"""The learning-rate finder (Leslie Smith's range test, as fastai runs it).

Train for up to `num_it` batches while the learning rate grows exponentially from `start` to
`end`, record the smoothed loss, stop once it passes 4x the best seen (it has diverged), then
put the model, optimizer, EMA and RNGs back exactly as they were. The curve's shape suggests
an lr: fastai's "minimum" (the lr at the lowest loss, divided by 10), "steep" (where the loss
falls fastest) and "valley" (a point inside the longest stretch of falling loss, its default).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import torch

from ..plots import plot_lr_find
from ..utils import ResnetteError
from . import distributed
from .checkpoints import callback_states, load_callback_states, rng_state, set_rng_state
from .optim import set_hypers
from .schedules import sched_exp

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SMOOTH_BETA = 0.98


@dataclass
class SuggestedLRs:
    """fastai's suggestions, by fastai's names: `valley` (its default), `steep` (the steepest
    fall) and `minimum` (the lr at the lowest loss, divided by 10); the swept curve is kept in
    `lrs` and `losses`. fastai returns a namedtuple of the suggestions asked for (by default
    `valley` alone); this one always has all three and unpacks in that order."""

    valley: float
    steep: float
    minimum: float
    lrs: list[float] = field(repr=False)
    losses: list[float] = field(repr=False)

    # older names: resnette's first (steepest) and fastai < 2.4's (lr_min, lr_steep)
    steepest = property(lambda self: self.steep)
    lr_min = property(lambda self: self.minimum)
    lr_steep = property(lambda self: self.steep)

    def __iter__(self) -> Iterator[float]:
        return iter((self.valley, self.steep, self.minimum))

    def plot(self, path: str | Path | None = None) -> "Figure":
        """The loss-vs-lr curve (log x axis) with the three suggestions marked; fastai leaves
        the last 5 points out of the picture (the divergence dwarfs the rest). Returns the
        Figure, written as PNG to `path` when given."""
        return plot_lr_find(self.lrs[:-5] or self.lrs, self.losses[:-5] or self.losses, path,
                            {"minimum/10": self.minimum, "steep": self.steep,
                             "valley": self.valley})


LRFindResult = SuggestedLRs   # the name resnette's commands used before fastai's


def lr_find(learn, start: float = 1e-7, end: float = 10.0, num_it: int = 100,
            stop_div: bool = True) -> SuggestedLRs:
    """Run the sweep on `learn` and restore it afterwards."""
    if not 0 < start < end:
        raise ResnetteError(f"lr_find needs 0 < start < end (got {start}, {end})")
    num_it = max(num_it, 6)  # as fastai: too few points leave nothing after trimming
    saved, cbs = _snapshot(learn), learn.cbs
    learn.cbs = [cb for cb in cbs if cb.in_lr_find]   # e.g. Mixup: sweep what training sees
    lrs, losses = [], []
    try:
        lrs, losses = _sweep(learn, start, end, num_it, stop_div)
    finally:
        learn.cbs = cbs
        _restore(learn, saved)
    return suggest(lrs, losses, num_it)


def _sweep(learn, start: float, end: float, num_it: int, stop_div: bool):
    lrs, losses = [], []
    smooth, best, it, epoch = 0.0, math.inf, 0, 0
    learn.model.train()
    while it < num_it:
        loader = learn.dls.train
        loader.set_epoch(epoch)
        for x, y in loader:
            lr = sched_exp(start, end, it / num_it)
            set_hypers(learn.opt, lr, None)
            batch_loss = learn.one_batch(x, y, epoch, it).float().reshape(1)
            loss = distributed.mean_and_any(batch_loss, False)[0][0]   # DDP: the ranks agree
            it += 1
            smooth = SMOOTH_BETA * smooth + (1 - SMOOTH_BETA) * loss
            value = smooth / (1 - SMOOTH_BETA ** it)
            lrs.append(lr)
            losses.append(value)
            best = min(best, value)
            diverged = not math.isfinite(value) or value > 4 * best
            if (stop_div and diverged) or it >= num_it:
                return lrs, losses
        epoch += 1
    return lrs, losses


def suggest(lrs: list[float], losses: list[float], num_it: int) -> SuggestedLRs:
    """fastai's three suggestions, on the curve without its first tenth and last 5 points."""
    lr_t = torch.tensor(lrs[num_it // 10:-5], dtype=torch.float64)
    loss_t = torch.tensor(losses[num_it // 10:-5], dtype=torch.float64)
    bad = torch.nonzero(~torch.isfinite(loss_t)).flatten()
    if len(bad):
        lr_t, loss_t = lr_t[:bad[0]], loss_t[:bad[0]]
    if len(loss_t) < 2:
        raise ResnetteError(f"lr_find diverged after {len(lrs)} batches, too early to suggest "
                            "anything; try a smaller start lr or a larger num_it")
    minimum = float(lr_t[loss_t.argmin()]) / 10
    grads = (loss_t[1:] - loss_t[:-1]) / (lr_t[1:].log() - lr_t[:-1].log())
    steepest = float(lr_t[grads.argmin()])
    valley = float(lr_t[_valley(loss_t.tolist())])
    return SuggestedLRs(valley, steepest, minimum, list(lrs), list(losses))


def _valley(losses: list[float]) -> int:
    """Index a bit past the start of the longest decreasing run of losses (fastai's valley).

    lds[i] is the length of the longest decreasing subsequence ending at i; the longest one
    spans [start, end] with length L, and fastai takes start + int(L/3) + int(L/6): halfway
    into the valley's middle third, where the loss falls steadily, far from diverging.
    """
    n = len(losses)
    lds = [1] * n
    max_start = max_end = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end = i
                max_start = max_end - lds[max_end]
    sections = (max_end - max_start) / 3
    return max_start + int(sections) + int(sections / 2)


def _snapshot(learn) -> dict:
    """Everything the sweep changes, copied (BN statistics are in the model's state_dict)."""
    return {"model": copy.deepcopy(learn.model.state_dict()),
            "opt": copy.deepcopy(learn.opt.state_dict()),
            "callbacks": copy.deepcopy(callback_states(learn)),   # e.g. the EMA's
            "scaler": copy.deepcopy(learn.scaler.state_dict()),
            "rng": rng_state()}


def _restore(learn, saved: dict) -> None:
    learn.opt.zero_grad(set_to_none=True)
    learn.model.load_state_dict(saved["model"])
    learn.opt.load_state_dict(saved["opt"])
    load_callback_states(learn, saved)
    if learn.scaler.is_enabled():
        learn.scaler.load_state_dict(saved["scaler"])
    set_rng_state(saved["rng"])
