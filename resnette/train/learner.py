"""The Learner: a model, its data, an optimizer and the training loop, in the book's vocabulary.

    learn = Learner(dls, model, metrics=["accuracy"]); learn.lr_find(); learn.fit_one_cycle(5, 3e-3)

`fit` reads top to bottom here: `_fit` runs the epochs, `_epochs` each one's training and
validation, `_train_epoch` the batches, `one_batch` one batch and `train_step` its step
(forward under autocast -> loss -> backward -> clip -> step), with fastai's callback events
between them (train/callbacks.py). The optional tricks (progressive resizing, Mixup/CutMix,
EMA, saving the run) are callbacks that own their state, built from the settings. The loop
waits for the device only every `SYNC_EVERY` batches, to read the recent losses (bar,
recorder, NaN check) at once. The methods a fastai user reaches for after training
(get_preds, export, save/load, to_fp16, ...) are in train/learner_api.py.
"""
from __future__ import annotations

import math
import signal
import time
import warnings
from pathlib import Path
from typing import Callable, Iterable

import torch
from torch import nn

from ..measures import TRAIN_LOSS, VALID_LOSS
from ..runfiles import Run
from ..utils import ResnetteError, seed_everything
from . import checkpoints, distributed, stops
from .callbacks import (EVENTS, Callback, CancelBatchException, CancelEpochException,
                        CancelFitException, CancelTrainException, CancelValidException,
                        listens, service_failed, tricks)
from .inference import Inference
from .learner_api import LearnerAPI
from .losses import CrossEntropy, LabelSmoothingCrossEntropy, mixed_loss
from .metrics import check_first_batch, get_metrics
from .optim import get_mom, make_optimizer, set_hypers
from .precision import autocast, resolve
from .progress import FitProgress, Recorder
from .schedules import Schedule
from .settings import Settings

CANCELS = (CancelBatchException, CancelTrainException, CancelValidException, CancelEpochException,
           CancelFitException)
SYNC_EVERY = 10         # batches between reads of the loss from the device (bar, NaN check)


class Learner(Inference, LearnerAPI):
    """Trains `model` on `dls`. Settings are keywords (train/settings.py: opt, lr, wd,
    precision, mixup, progressive, ...); `run_dir` (a folder or a `Run`) is where checkpoints,
    weights and metrics.csv go; `callbacks` (or `cbs`) run at the events of train/callbacks.py."""

    def __init__(self, dls, model: nn.Module, loss_func: nn.Module | None = None,
                 metrics=("accuracy",), run_dir: str | Path | Run | None = None,
                 callbacks: Iterable[Callback] = (), cbs: Iterable[Callback] = (), **settings):
        self.settings = s = Settings.make(**settings)
        self.dls = dls
        # Under DDP (torchrun) every rank runs this same code; only rank 0 prints and writes.
        self.world_size = distributed.world_size()
        self.is_main = distributed.is_main()
        self.quiet = s.quiet or not self.is_main
        compute = resolve(s.precision, getattr(dls.train, "device", "cpu"), s.channels_last)
        self.device, self.channels_last = compute.device, compute.channels_last
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        self.model = model.to(self.device, memory_format=fmt)
        if self.channels_last and hasattr(dls.train, "channels_last"):
            dls.train.channels_last = dls.valid.channels_last = True
        self.ddp = distributed.in_job()   # DDP: gradients averaged across ranks during backward
        distributed.check_sharded(dls.train, self.world_size)   # each rank its own shard
        train_model = distributed.wrap_ddp(self.model, self.device) if self.ddp else self.model
        self.forward_model = torch.compile(train_model) if s.compile else train_model
        self.loss_func = loss_func or (LabelSmoothingCrossEntropy(s.label_smoothing)
                                       if s.label_smoothing else CrossEntropy())
        self.metrics = get_metrics(metrics)
        self.opt = make_optimizer(s.opt, self.model, s.lr, s.wd)
        self.set_precision(compute.precision)
        self.run = run_dir if isinstance(run_dir, Run) or run_dir is None else Run(Path(run_dir))
        self.recorder = Recorder()
        self.schedule: Schedule | None = None   # the running (or last) fit's
        # the last epoch's validation (probabilities, targets) on the CPU: the run's evaluation
        self.valid_outputs: tuple[torch.Tensor, torch.Tensor] | None = None
        self.valid_metrics: dict[str, float] = {}   # this epoch's, for its row
        self.progress: FitProgress | None = None    # the running fit's output
        self.epoch = self.iter = 0
        self.xb = self.yb = self.pred = self.loss_grad = self.loss = self.mix = None
        self._stop_signal: int | None = None
        self._checked = False   # the first batch checks the outputs and the metrics
        # the loop's own tricks first (train/callbacks.py), then the user's, in the order given
        self.cbs = [*tricks(s, dls, self.run), *callbacks, *cbs]
        self.event("after_create")

    @property
    def cbs(self) -> list[Callback]:
        return self._cbs

    @cbs.setter
    def cbs(self, cbs: Iterable[Callback]) -> None:
        """Also lists, per event, the callbacks that override it: an unheard event costs nothing."""
        self._cbs = list(cbs)
        self._listeners = {e: [cb for cb in self._cbs if listens(cb, e)] for e in EVENTS}

    def event(self, name: str) -> None:
        """Run event `name` (train/callbacks.py) on each callback that overrides it, in order."""
        for cb in self._listeners[name]:
            if getattr(cb, "optional", False):
                self.call_optional(cb, getattr(cb, name), f"at {name}, epoch {self.epoch}")
            else:
                getattr(cb, name)(self)

    def call_optional(self, cb: Callback, method: Callable, where: str) -> None:
        """`method(self)` of an optional callback (a logger): if it raises, one warning, and
        the callback is dropped, so a failing service never ends nor floods a training run."""
        try:
            method(self)
        except CANCELS:   # asked for on purpose: the loop's control flow, not a failure
            raise
        except Exception as e:   # noqa: BLE001 - whatever a service raises, training goes on
            self.cbs = [c for c in self.cbs if c is not cb]
            warnings.warn(service_failed(cb, e, where), stacklevel=2)

    @property
    def columns(self) -> list[str]:
        """The epoch table's and metrics.csv's."""
        return ["epoch", TRAIN_LOSS, VALID_LOSS, *self.metrics, "time"]

    # ---- fitting: the three schedules of the book ------------------------------------------
    def fit(self, n_epoch: int, lr: float | None = None, resume: bool = False) -> None:
        """Train `n_epoch` epochs at a constant learning rate."""
        self._fit(Schedule("constant", n_epoch, lr or self.settings.lr, moms=None), resume)

    def fit_one_cycle(self, n_epoch: int, lr_max: float | None = None, div: float = 25.0,
                      div_final: float = 1e5, pct_start: float = 0.25,
                      moms: tuple[float, float, float] | None = None, resume: bool = False) -> None:
        """fastai's 1cycle: lr warms up lr_max/div -> lr_max over pct_start, then anneals to
        lr_max/div_final; momentum moves the other way."""
        self._fit(Schedule("one_cycle", n_epoch, lr_max or self.settings.lr, div, div_final,
                           pct_start, tuple(moms or self.settings.moms)), resume)

    def fit_flat_cos(self, n_epoch: int, lr: float | None = None, div_final: float = 1e5,
                     pct_start: float = 0.75, resume: bool = False) -> None:
        """Flat lr for pct_start of training, then a cosine anneal (the leaderboard's Ranger
        schedule)."""
        self._fit(Schedule("flat_cos", n_epoch, lr or self.settings.lr, div_final=div_final,
                           pct_start=pct_start, moms=None), resume)

    # ---- the loop ------------------------------------------------------------------------------
    def _fit(self, sched: Schedule, resume: bool) -> None:
        if sched.n_epoch < 1 or not sched.lr > 0:
            raise ResnetteError(f"need at least 1 epoch and a positive lr (got {sched.n_epoch}, "
                                f"{sched.lr})")
        self.cbs = self._cbs   # listeners again: a callback appended to learn.cbs is heard too
        first, skip = checkpoints.resume(self, sched) if resume else (0, 0)
        if (first, skip) == (0, 0):
            seed_everything(self.settings.seed)
            self.recorder = Recorder()
        self.schedule = sched
        self.progress = FitProgress(self.columns, sched.n_epoch, self.quiet)
        for row in self.recorder.rows:
            self.progress.write_row(row)
        old_handlers = stops.catch_stop_signals(self._request_stop)
        try:
            # DDP's gradient all-reduce failing inside backward: another rank died or hung
            with distributed.peer_failures("training"):
                try:
                    self.event("before_fit")
                    self._epochs(first, skip)
                except CancelFitException:
                    self.event("after_cancel_fit")
                self.event("after_fit")
        finally:
            for s, h in old_handlers.items():
                signal.signal(s, h)
            self._stop_signal = None

    def _epochs(self, first: int, skip: int) -> None:
        """Each epoch: train, validate when due, record the row; its time includes validation,
        as fastai's. Validation runs every `valid_every` epochs and after the last (NaN in the
        row, shown blank, in between: docs/RECIPES.md)."""
        every, n_epoch = self.settings.valid_every, self.schedule.n_epoch
        for self.epoch in range(first, n_epoch):
            start = time.perf_counter()
            self.valid_metrics = dict.fromkeys([VALID_LOSS, *self.metrics], math.nan)
            try:
                self.event("before_epoch")
                self._stage("train", CancelTrainException, self._train_epoch,
                            skip if self.epoch == first else 0)
                if self.epoch == n_epoch - 1 or (every and (self.epoch + 1) % every == 0):
                    self._stage("validate", CancelValidException, self._validate_epoch)
            except CancelEpochException:
                self.event("after_cancel_epoch")
            smooth = self.recorder.smooth_losses
            row = {"epoch": self.epoch, TRAIN_LOSS: smooth[-1] if smooth else math.nan,
                   **self.valid_metrics, "time": time.perf_counter() - start}
            self.recorder.rows.append(row)
            self.progress.write_row(row)
            self.event("after_epoch")

    def _stage(self, name: str, cancel: type[Exception], body: Callable, *args) -> None:
        """fastai's `_with_events`: before_<name>, the body, after_cancel_<name> when a callback
        cancelled it (also in before_<name>), after_<name>."""
        try:
            self.event(f"before_{name}")
            body(*args)
        except cancel:
            self.event(f"after_cancel_{name}")
        self.event(f"after_{name}")

    def _train_epoch(self, skip: int) -> None:
        loader, sched = self.dls.train, self.schedule
        loader.set_epoch(self.epoch, skip)
        n_iter = len(loader)
        self.model.train()
        self.progress.start_epoch(self.epoch, n_iter, initial=skip)
        pending: list[torch.Tensor] = []
        try:
            for i, (x, y) in enumerate(loader, start=skip):
                lr, mom = sched((self.epoch * n_iter + i) / (sched.n_epoch * n_iter))
                set_hypers(self.opt, lr, mom)
                try:
                    loss = self.one_batch(x, y, self.epoch, i)
                except RuntimeError as e:   # the one out-of-memory guard
                    if not stops.is_out_of_memory(e):
                        raise
                    e.__traceback__ = None   # frees the failed step's tensors before saving
                    stops.out_of_memory(self, pending, len(y))
                if loss is not None:   # None: a callback cancelled the batch before its loss
                    pending.append(loss)
                    self.recorder.lrs.append(lr)
                    self.recorder.moms.append(get_mom(self.opt))
                # Under DDP the ranks must sync at the same batches (it is a collective), so a
                # stop signal waits for the next regular sync, where all ranks agree on it.
                local_stop = self._stop_signal is not None and self.world_size == 1
                if pending and (len(pending) == SYNC_EVERY or i == n_iter - 1 or local_stop):
                    stop = stops.read_losses(self, pending, i)
                    self.progress.update(len(pending), self.recorder.smooth_losses[-1])
                    pending = []
                    if stop:
                        name = signal.Signals(self._stop_signal).name
                        stops.stop_and_save(self, f"{name}: stopped at epoch {self.epoch}, "
                                                  f"batch {i + 1}", i + 1)
        finally:
            self.progress.end_epoch()

    def one_batch(self, x: torch.Tensor, y: torch.Tensor, epoch: int,
                  i: int) -> torch.Tensor | None:
        """Batch `i` of `epoch` between before_batch and after_batch; returns the loss (no
        sync), or None when a callback cancelled the batch before its loss."""
        self.epoch, self.iter, self.xb, self.yb, self.mix, self.loss = epoch, i, x, y, None, None
        try:
            self.event("before_batch")
            self.train_step(self.xb, self.yb, self.mix)
        except CancelBatchException:
            self.event("after_cancel_batch")
        self.event("after_batch")
        return self.loss

    def train_step(self, x: torch.Tensor, y: torch.Tensor, mix=None) -> torch.Tensor:
        """One optimizer step, with its events. The scaler is a no-op unless fp16 (nanoGPT's
        one-line AMP)."""
        with autocast(self.precision, self.device.type):
            self.pred = self.forward_model(x)
            self.event("after_pred")
            if not self._checked:
                self._checked = check_first_batch(self.pred, y, self.dls, self.metrics)
            self.loss_grad = (mixed_loss(self.loss_func, self.pred, y, mix) if mix
                              else self.loss_func(self.pred, y))
            self.event("after_loss")
        self.loss = self.loss_grad.detach()
        self.event("before_backward")
        self.scaler.scale(self.loss_grad).backward()
        self.event("after_backward")
        if self.settings.clip:
            self.scaler.unscale_(self.opt)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.settings.clip)
        self.event("before_step")
        self.scaler.step(self.opt)
        self.scaler.update()
        self.event("after_step")
        self.opt.zero_grad(set_to_none=True)
        return self.loss

    def _validate_epoch(self) -> None:
        last = self.epoch == self.schedule.n_epoch - 1
        self.valid_metrics = self.score(keep=last)   # the last epoch's outputs: the evaluation
        if not math.isfinite(self.valid_metrics[VALID_LOSS]):
            raise stops.diverged(self, len(self.dls.train) - 1)

    # ---- stopping without losing work ------------------------------------------------------
    def _request_stop(self, signum: int) -> None:   # SIGINT/SIGTERM: finish the batch, save, stop
        if self._stop_signal is not None:   # a second Ctrl-C: stop right now
            raise KeyboardInterrupt
        self._stop_signal = signum
