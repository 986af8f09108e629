"""Callbacks: code that runs at named moments of `fit`, each given the Learner. fastai's events:

    after_create                        (once, when the Learner is made)
    before_fit
      before_epoch                      learn.epoch
        before_train
          before_batch                  learn.iter, learn.xb, learn.yb (may replace them)
            after_pred                  learn.pred: the model's output (may replace it)
            after_loss                  learn.loss_grad: the loss to backpropagate
            before_backward, after_backward
            before_step, after_step     around the optimizer step
          after_batch                   learn.loss (a device tensor: reading it syncs)
        after_train
        before_validate, after_validate learn.recorder.rows[-1] is not written yet
      after_epoch                       learn.recorder.rows[-1]: this epoch's metrics row
    after_fit

Raising CancelBatchException (Train, Valid, Epoch, Fit) in a callback skips the rest of that
stage; then `after_cancel_<stage>` and `after_<stage>` run, as in fastai. Differences from
fastai: the batch events are for training batches only (validation runs as one stage, without
per-batch events), and an event costs nothing unless some callback overrides it (the Learner
keeps, per event, the list of callbacks that do).

The loop's own tricks are callbacks too, each owning its state (a `state_dict` in every
checkpoint): progressive resizing, Mixup/CutMix, the EMA of the weights, and writing the run
folder; `tricks(settings, dls, run)` builds them from the Learner's settings. Yours run after
them, in the order given. A logger is a few lines: open in before_fit, write
`learn.recorder.rows[-1]` in after_epoch (`TensorBoard` below is one).
"""
from __future__ import annotations

import math
import re
import time
from pathlib import Path

import torch

from ..runfiles import Run, write_metrics
from ..utils import ResnetteError
from .checkpoints import save_weights, weights_metadata
from .ema import EMA
from .losses import CutMix, Mixup

STAGES = ("batch", "train", "validate", "epoch", "fit")
EVENTS = ("after_create", "before_fit", "before_epoch", "before_train", "before_batch",
          "after_pred", "after_loss", "before_backward", "after_backward", "before_step",
          "after_step", "after_batch", "after_train", "before_validate", "after_validate",
          "after_epoch", "after_fit", *(f"after_cancel_{s}" for s in STAGES))


class CancelBatchException(Exception):
    """Skip the rest of this training batch (no step if raised before it)."""


class CancelTrainException(Exception):
    """Skip the rest of this epoch's training batches; validation still runs."""


class CancelValidException(Exception):
    """Skip this epoch's validation (its metrics are left blank)."""


class CancelEpochException(Exception):
    """Skip the rest of this epoch; its row is recorded with what was measured."""


class CancelFitException(Exception):
    """End the fit here; after_cancel_fit and after_fit still run."""


class Callback:
    """Subclass and override the events you need (any of `EVENTS`); the others cost nothing.

    `lr_find` trains real batches too (then restores everything); only callbacks with
    `in_lr_find = True` see its batches, so a logger sees fits alone. A callback with state
    to resume returns it from `state_dict` (tensors, numbers, strings, lists, dicts).
    """

    in_lr_find = False
    # An optional service (a logger: TensorBoard, MLflow) must never end a training run: when
    # one of its events raises, the Learner says so in one warning and stops calling it.
    optional = False

    @property
    def name(self) -> str:
        """fastai's: the class name in snake case (`SaveBest` -> `save_best`)."""
        return re.sub(r"(?<!^)(?=[A-Z])", "_", type(self).__name__).lower()

    def state_dict(self) -> dict | None:
        return None

    def load_state_dict(self, state: dict) -> None:
        pass


def service_failed(cb: Callback, error: Exception, where: str) -> str:
    """The one warning line for an optional callback that raised `error` at `where`."""
    service = getattr(cb, "service", type(cb).__name__)
    text = " ".join(str(error).split())[:200] or "no message"
    return (f"{service} logging failed {where} ({type(error).__name__}: {text}); training goes "
            f"on without {service}, and metrics.csv has every epoch")


def listens(cb: Callback, event: str) -> bool:
    """Whether `cb` does something at `event` (overrides it)."""
    method = getattr(type(cb), event, None)
    return method is not None and method is not getattr(Callback, event, None)


def tricks(settings, dls, run: Run | None) -> list[Callback]:
    """The loop's own callbacks that `settings` turn on, in the order they run."""
    size = getattr(dls.train, "size", None)
    made = [ProgressiveResize(settings.progressive, size) if settings.progressive else None,
            MixBatch(settings.seed, settings.mixup, settings.cutmix)
            if settings.mixup or settings.cutmix else None,
            AverageWeights(settings.ema) if settings.ema else None,
            SaveRun() if run is not None else None]
    return [cb for cb in made if cb is not None]


class ProgressiveResize(Callback):
    """Train at `size` from epoch `first` on, for each (first, size) pair: small images early
    are cheap and teach the coarse features, the full size at the end sets the accuracy."""

    def __init__(self, schedule: list[tuple[int, int]], base_size: int):
        self.schedule, self.base_size = schedule, base_size

    def before_epoch(self, learn) -> None:
        learn.dls.train.size = size_at(self.schedule, self.base_size, learn.epoch)


def size_at(schedule: list[tuple[int, int]], base_size: int, epoch: int) -> int:
    """The training size of `epoch` under progressive resizing's (first epoch, size) pairs
    (`base_size` before the first pair and without any): what the report shows per epoch."""
    size = base_size
    for first, s in schedule:
        if first <= epoch:
            size = s
    return size


class MixBatch(Callback):
    """Mixup or CutMix (one of them at random per batch when both are on); sets `learn.mix`,
    which the step's loss reads.

    The generator is re-seeded from (seed, epoch, batch), so a resumed run mixes exactly as
    the uninterrupted one would have, with no RNG state to carry in the checkpoint.
    """

    in_lr_find = True

    def __init__(self, seed: int, mixup: float = 0.0, cutmix: float = 0.0):
        self.seed, self.gen = seed, torch.Generator()
        self.mixers = [m for m in (Mixup(mixup) if mixup else None,
                                   CutMix(cutmix) if cutmix else None) if m is not None]

    def before_batch(self, learn) -> None:
        self.gen.manual_seed(hash((self.seed, learn.epoch, learn.iter)) & (2**62 - 1))
        k = int(torch.randint(len(self.mixers), (1,), generator=self.gen))
        learn.xb, learn.mix = self.mixers[k].mix(learn.xb, learn.yb, self.gen)


class AverageWeights(Callback):
    """The EMA of the weights (train/ema.py), moved after every optimizer step; validation,
    the saved weights and `learn.kept_model` use it."""

    def __init__(self, decay: float):
        self.decay, self.ema = decay, None

    def after_create(self, learn) -> None:
        self.ema = EMA(learn.model, self.decay)

    def after_step(self, learn) -> None:
        self.ema.update(learn.model)

    def state_dict(self) -> dict:
        return self.ema.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.ema.load_state_dict(state)


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

    optional, service = True, "TensorBoard"

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
