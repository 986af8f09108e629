"""Callbacks: code that runs at named moments of `fit`, each given the Learner.

    before_fit
      before_epoch                      learn.epoch
        before_batch  (every batch)     learn.iter, learn.xb, learn.yb (may replace them)
        after_batch   (after the step)  learn.loss (a device tensor: reading it syncs)
      after_epoch                       learn.recorder.rows[-1]: this epoch's metrics row
    after_fit                           (when fit ends normally)

The loop's own tricks are callbacks too, so they read like a user's would: progressive
resizing, Mixup/CutMix, the EMA of the weights, and writing the run folder. `Learner(...,
callbacks=[...])` (or fastai's `cbs=[...]`) runs yours after these, in the order given.
A logger is a few lines: open in before_fit, write `learn.recorder.rows[-1]` in after_epoch
(`TensorBoard` below is one).
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from ..run.folder import write_metrics
from ..utils import ResnetteError
from .checkpoints import save_weights, weights_metadata

EVENTS = ("before_fit", "before_epoch", "before_batch", "after_batch", "after_epoch", "after_fit")


class Callback:
    """Subclass and override the events you need; the others do nothing.

    `lr_find` trains real batches too (then restores everything); only callbacks with
    `in_lr_find = True` see its before_batch/after_batch, so a logger sees fits alone.
    """

    in_lr_find = False

    def before_fit(self, learn) -> None: pass
    def before_epoch(self, learn) -> None: pass
    def before_batch(self, learn) -> None: pass
    def after_batch(self, learn) -> None: pass
    def after_epoch(self, learn) -> None: pass
    def after_fit(self, learn) -> None: pass


class ProgressiveResize(Callback):
    """Train at `size` from epoch `first` on, for each (first, size) pair: small images early
    are cheap and teach the coarse features, the full size at the end sets the accuracy."""

    def __init__(self, schedule: list[tuple[int, int]], base_size: int):
        self.schedule, self.base_size = schedule, base_size

    def before_epoch(self, learn) -> None:
        size = self.base_size
        for first, s in self.schedule:
            if first <= learn.epoch:
                size = s
        learn.dls.train.size = size


class MixBatch(Callback):
    """Mixup or CutMix (one of them at random per batch when both are on).

    The generator is re-seeded from (seed, epoch, batch), so a resumed run mixes exactly as
    the uninterrupted one would have, with no RNG state to carry in the checkpoint.
    """

    in_lr_find = True

    def __init__(self, seed: int):
        self.seed, self.gen = seed, torch.Generator()

    def before_batch(self, learn) -> None:
        if not learn.mixers:
            return
        self.gen.manual_seed(hash((self.seed, learn.epoch, learn.iter)) & (2**62 - 1))
        k = int(torch.randint(len(learn.mixers), (1,), generator=self.gen))
        learn.xb, learn.mix = learn.mixers[k].mix(learn.xb, learn.yb, self.gen)


class AverageWeights(Callback):
    """After every optimizer step, move the EMA copy of the weights (train/ema.py)."""

    def after_batch(self, learn) -> None:
        learn.ema.update(learn.model)


class SaveRun(Callback):
    """After every epoch: checkpoint.pt, model.safetensors and metrics.csv, where the Run says."""

    def after_epoch(self, learn) -> None:
        if learn.is_main:
            learn.save_checkpoint(learn.epoch + 1, 0)
            write_metrics(learn.run.metrics, learn.recorder.rows, learn.columns)


class SaveBest(Callback):
    """Keep the best epoch's weights at `path`: the highest accuracy, or the lowest
    valid_loss when there is no accuracy column."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def after_epoch(self, learn) -> None:
        rows = learn.recorder.rows
        key = "accuracy" if "accuracy" in rows[-1] else "valid_loss"
        sign = 1 if key == "accuracy" else -1
        measured = [r for r in rows if not math.isnan(r[key])]   # NaN: epoch not validated
        if learn.is_main and measured and measured[-1] is rows[-1] and all(
                sign * rows[-1][key] >= sign * r[key] for r in measured):
            save_weights(self.path, learn.kept_model, weights_metadata(learn))


class CompileTime(Callback):
    """How long the first training batch of a fit took, waiting for the device: with
    `torch.compile` that is the compilation of the training step (tens of seconds on a GPU),
    which epoch 0's time would otherwise hide. `seconds` is None until that batch ran;
    `epoch` is the epoch it belongs to (not 0 in a resumed fit)."""

    def __init__(self):
        self.seconds: float | None = None
        self.epoch, self._start = 0, None

    def before_batch(self, learn) -> None:
        if self._start is None:
            self.epoch, self._start = learn.epoch, time.perf_counter()

    def after_batch(self, learn) -> None:
        if self.seconds is None:
            float(learn.loss)   # one read of the loss: the step (and its compilation) is done
            self.seconds = time.perf_counter() - self._start


class TensorBoard(Callback):
    """TensorBoard event files in `folder`: after each epoch its row's numbers (train_loss,
    valid_loss, each metric, time) and the learning rate at the epoch's end, at step = the
    epoch (numbered from 0, as metrics.csv); and the smoothed loss and the lr of every batch
    ("batch/smooth_loss", "batch/lr", step = the batch's number since the start of training).

    Needs the `tensorboard` package (`pip install resnette[tensorboard]`); checked when made,
    so a missing package stops a run before it starts. A resumed fit appends a new event
    file in the same folder, carrying on from the epoch and batch it resumes at.
    """

    def __init__(self, folder: str | Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:   # torch raises ImportError (or ModuleNotFoundError) without it
            raise ResnetteError("TensorBoard logging needs the tensorboard package: "
                                "pip install resnette[tensorboard]") from None
        self.folder, self._writer_class, self.writer = Path(folder), SummaryWriter, None
        self.sent = 0   # batches already logged

    def before_fit(self, learn) -> None:
        if learn.is_main:
            self.writer = self._writer_class(log_dir=str(self.folder))
            # a resumed fit: the batches of the epochs already done were logged by then
            self.sent = min(len(learn.recorder.smooth_losses),
                            len(learn.recorder.rows) * len(learn.dls.train))

    def after_epoch(self, learn) -> None:
        if self.writer is None:
            return
        rec, row = learn.recorder, learn.recorder.rows[-1]
        for i in range(self.sent, len(rec.smooth_losses)):
            self.writer.add_scalar("batch/smooth_loss", rec.smooth_losses[i], i)
            if i < len(rec.lrs):
                self.writer.add_scalar("batch/lr", rec.lrs[i], i)
        self.sent = len(rec.smooth_losses)
        for key, value in row.items():
            if key != "epoch" and isinstance(value, (int, float)) and math.isfinite(value):
                self.writer.add_scalar(key, value, row["epoch"])
        if rec.lrs:
            self.writer.add_scalar("lr", rec.lrs[-1], row["epoch"])
        self.writer.flush()   # a run killed later keeps every epoch logged so far

    def after_fit(self, learn) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
