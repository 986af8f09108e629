"""The Learner: a model, its data, an optimizer and the training loop, in the book's vocabulary.

    learn = Learner(dls, model, metrics=["accuracy"]); learn.lr_find(); learn.fit_one_cycle(5, 3e-3)

`fit` reads top to bottom here: `_fit` runs the epochs, `_train_epoch` the batches, `one_batch`
one batch (its events around `train_step`: forward under autocast -> loss -> backward -> clip
-> step), `_end_epoch` validates and writes the row. The optional tricks (progressive resizing,
Mixup/CutMix, EMA, saving the run) are callbacks (train/callbacks.py) at the events a user's
callbacks get too. The loop waits for the device only every `SYNC_EVERY` batches, to read the
recent losses (bar, recorder, NaN check) at once.
"""
from __future__ import annotations

import math
import signal
import time
from pathlib import Path
from typing import Iterable

import torch
from torch import nn

from ..run.folder import Run
from ..utils import ResnetteError, seed_everything
from . import checkpoints, distributed, stops
from .callbacks import AverageWeights, Callback, MixBatch, ProgressiveResize, SaveRun
from .ema import EMA
from .evaluation import predict_logits
from .losses import CrossEntropy, CutMix, LabelSmoothingCrossEntropy, Mixup, mixed_loss, summed_loss
from .lr_find import LRFindResult, lr_find as sweep_lr
from .metrics import get_metrics
from .optim import get_mom, make_optimizer, set_hypers
from .precision import autocast, resolve
from .progress import ProgressBar, Recorder, Table
from .schedules import Schedule
from .settings import Settings

SYNC_EVERY = 10         # batches between reads of the loss from the device (bar, NaN check)


class Learner:
    """Trains `model` on `dls`. Settings are keywords (train/settings.py: opt, lr, wd,
    precision, mixup, progressive, ...); `run_dir` (a folder or a `Run`) is where checkpoints,
    weights and metrics.csv go; `callbacks` (or `cbs`) run at the events of train/callbacks.py."""

    def __init__(self, dls, model: nn.Module, loss_func: nn.Module | None = None,
                 metrics=("accuracy",), run_dir: str | Path | Run | None = None,
                 callbacks: Iterable[Callback] = (), cbs: Iterable[Callback] = (), **settings):
        self.settings = s = Settings.make(**settings)
        self.dls = dls
        # Under DDP (torchrun) every rank runs this same code; only rank 0 prints and writes.
        self.world_size, self.is_main = distributed.world_size(), distributed.is_main()
        self.quiet = s.quiet or not self.is_main
        compute = resolve(s.precision, getattr(dls.train, "device", "cpu"), s.channels_last)
        self.device, self.precision, self.channels_last = compute.device, compute.precision, compute.channels_last
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
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.ema = EMA(self.model, s.ema) if s.ema else None
        self.mixers = [m for m in (Mixup(s.mixup) if s.mixup else None,
                                   CutMix(s.cutmix) if s.cutmix else None) if m]
        self.run = run_dir if isinstance(run_dir, Run) or run_dir is None else Run(Path(run_dir))
        self.recorder = Recorder()
        # the loop's own tricks first, then the user's callbacks in the order given
        own = [ProgressiveResize(s.progressive, getattr(dls.train, "size", None)) if s.progressive else None,
               MixBatch(s.seed), AverageWeights() if self.ema else None, SaveRun() if self.run else None]
        self.cbs: list[Callback] = [cb for cb in own if cb is not None] + [*callbacks, *cbs]
        self.epoch, self.iter, self.xb, self.yb, self.mix, self.loss = 0, 0, None, None, None, None
        self._stop_signal: int | None = None

    run_dir = property(lambda self: self.run.path if self.run else None)

    @property
    def columns(self) -> list[str]:   # the table's and metrics.csv's
        return ["epoch", "train_loss", "valid_loss", *self.metrics, "time"]

    @property
    def kept_model(self) -> nn.Module:
        """The weights worth keeping: the EMA's when on, else the live ones (never compiled)."""
        return self.ema.module if self.ema is not None else self.model

    # ---- fitting: the three schedules of the book ------------------------------------------
    def fit(self, n_epoch: int, lr: float | None = None, resume: bool = False) -> None:
        """Train `n_epoch` epochs at a constant learning rate."""
        self._fit(Schedule("constant", n_epoch, lr or self.settings.lr, moms=None), resume)

    def fit_one_cycle(self, n_epoch: int, lr_max: float | None = None, div: float = 25.0,
                      div_final: float = 1e5, pct_start: float = 0.25,
                      moms: tuple[float, float, float] | None = None, resume: bool = False) -> None:
        """fastai's 1cycle: lr warms up lr_max/div -> lr_max over pct_start, anneals to lr_max/div_final."""
        self._fit(Schedule("one_cycle", n_epoch, lr_max or self.settings.lr, div, div_final,
                           pct_start, tuple(moms or self.settings.moms)), resume)

    def fit_flat_cos(self, n_epoch: int, lr: float | None = None, div_final: float = 1e5,
                     pct_start: float = 0.75, resume: bool = False) -> None:
        """Flat lr for pct_start of training, then a cosine anneal (the leaderboard's Ranger schedule)."""
        self._fit(Schedule("flat_cos", n_epoch, lr or self.settings.lr, div_final=div_final,
                           pct_start=pct_start, moms=None), resume)

    def lr_find(self, start: float = 1e-7, end: float = 10.0, num_it: int = 100,
                stop_div: bool = True, plot: str | Path | None = None) -> LRFindResult:
        """Sweep the lr exponentially, then restore everything (train/lr_find.py); the plot goes
        to `plot`, else into the run's plots folder when there is a run."""
        plot = plot or (self.run.plot("lr_find") if self.run else None)
        return sweep_lr(self, start, end, num_it, stop_div, plot if self.is_main else None)

    # ---- the loop ------------------------------------------------------------------------------
    def _fit(self, sched: Schedule, resume: bool) -> None:
        if sched.n_epoch < 1 or not sched.lr > 0:
            raise ResnetteError(f"need at least 1 epoch and a positive lr (got {sched.n_epoch}, {sched.lr})")
        first, skip = checkpoints.resume(self, sched) if resume else (0, 0)
        if (first, skip) == (0, 0):
            seed_everything(self.settings.seed)
            self.recorder = Recorder()
        self.schedule = sched
        table = Table(self.columns, self.quiet)
        for row in self.recorder.rows:
            table.write_row(row)
        old_handlers = stops.catch_stop_signals(self._request_stop)
        try:
            self.event("before_fit")
            for self.epoch in range(first, sched.n_epoch):
                start = time.perf_counter()
                self.event("before_epoch")
                self._train_epoch(sched, skip if self.epoch == first else 0)
                self._end_epoch(table, start)
                self.event("after_epoch")
            self.event("after_fit")
        except (RuntimeError, torch.distributed.DistError) as err:
            # DDP's gradient all-reduce failing inside backward: another rank died or hung
            if self.ddp and distributed.is_peer_failure(err):
                raise distributed.peer_failure(err, "training") from None
            raise
        finally:
            for s, h in old_handlers.items():
                signal.signal(s, h)
            self._stop_signal = None

    def _train_epoch(self, sched: Schedule, skip: int) -> None:
        loader = self.dls.train
        loader.set_epoch(self.epoch, skip)
        n_iter = len(loader)
        self.model.train()
        bar = ProgressBar(n_iter, f"epoch {self.epoch}", self.quiet, initial=skip)
        pending: list[torch.Tensor] = []
        try:
            for i, (x, y) in enumerate(loader, start=skip):
                lr, mom = sched((self.epoch * n_iter + i) / (sched.n_epoch * n_iter))
                set_hypers(self.opt, lr, mom)
                try:
                    pending.append(self.one_batch(x, y, self.epoch, i))
                except RuntimeError as e:   # the one out-of-memory guard
                    if not stops.is_out_of_memory(e):
                        raise
                    e.__traceback__ = None   # frees the failed step's tensors before saving
                    stops.out_of_memory(self, pending, len(y))
                self.recorder.lrs.append(lr)
                self.recorder.moms.append(get_mom(self.opt))
                # Under DDP the ranks must sync at the same batches (it is a collective), so a
                # stop signal waits for the next regular sync, where all ranks agree on it.
                local_stop = self._stop_signal is not None and self.world_size == 1
                if len(pending) == SYNC_EVERY or i == n_iter - 1 or local_stop:
                    stop = self.read_losses(pending, i)
                    bar.update(len(pending), self.recorder.smooth_losses[-1])
                    pending = []
                    if stop:
                        name = signal.Signals(self._stop_signal).name
                        stops.stop_and_save(self, f"{name}: stopped at epoch {self.epoch}, batch {i + 1}", i + 1)
        finally:
            bar.close()

    def one_batch(self, x: torch.Tensor, y: torch.Tensor, epoch: int, i: int) -> torch.Tensor:
        """Batch `i` of `epoch`: before_batch, the step, after_batch; returns the loss (no sync)."""
        self.epoch, self.iter, self.xb, self.yb, self.mix = epoch, i, x, y, None
        self.event("before_batch")
        self.loss = self.train_step(self.xb, self.yb, self.mix)
        self.event("after_batch")
        return self.loss

    def train_step(self, x: torch.Tensor, y: torch.Tensor, mix=None) -> torch.Tensor:
        """One optimizer step. The scaler is a no-op unless fp16 (nanoGPT's one-line AMP)."""
        with autocast(self.precision, self.device.type):
            pred = self.forward_model(x)
            loss = mixed_loss(self.loss_func, pred, y, mix) if mix else self.loss_func(pred, y)
        self.scaler.scale(loss).backward()
        if self.settings.clip:
            self.scaler.unscale_(self.opt)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.settings.clip)
        self.scaler.step(self.opt)
        self.scaler.update()
        self.opt.zero_grad(set_to_none=True)
        return loss.detach()

    def read_losses(self, pending: list[torch.Tensor], last: int) -> bool:
        """Read the pending losses at once, stop on NaN/inf before anything is saved; returns
        whether to stop for a signal. Under DDP one all-reduce averages the losses and tells every
        rank whether any got Ctrl-C/SIGTERM, so all record the same numbers and stop together."""
        values, stop = distributed.mean_and_any(torch.stack(pending).float(), self._stop_signal is not None)
        if stop and self._stop_signal is None:  # another rank was told to stop
            self._stop_signal = signal.SIGTERM
        bad = [j for j, v in enumerate(values) if not math.isfinite(v)]
        if bad:
            raise stops.diverged(self, last - len(values) + 1 + bad[0])
        self.recorder.add_losses(values)
        return stop

    def _end_epoch(self, table: Table, start: float) -> None:
        """Validate (every `valid_every` epochs and the last; NaN in the row, shown blank, in
        between: docs/RECIPES.md) and record the row; its time includes validation, as fastai's."""
        every, last = self.settings.valid_every, self.epoch == self.schedule.n_epoch - 1
        if last or (every and (self.epoch + 1) % every == 0):
            metrics = self.validate(keep=last)   # the last epoch's outputs: the run's evaluation
            if not math.isfinite(metrics["valid_loss"]):
                raise stops.diverged(self, len(self.dls.train) - 1)
        else:
            metrics = dict.fromkeys(["valid_loss", *self.metrics], math.nan)
        row = {"epoch": self.epoch, "train_loss": self.recorder.smooth_losses[-1], **metrics,
               "time": time.perf_counter() - start}
        self.recorder.rows.append(row)
        table.write_row(row)

    def event(self, name: str) -> None:   # every callback's `name` (train/callbacks.py), in order
        for cb in self.cbs:
            getattr(cb, name)(self)

    # ---- evaluation -----------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self, loader=None, tta: bool = False, keep: bool = False) -> dict[str, float]:
        """valid_loss and every metric over the whole loader (default: dls.valid), summed per item.
        `keep`: also leave (probabilities, targets) on the CPU in `valid_outputs` (this rank's).

        With EMA on, this evaluates the averaged weights. A loader sharded over DDP ranks is
        reduced as sums and counts, so each image counts once (every rank must call this then).
        """
        loader = loader or self.dls.valid
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(0)
        sharded = getattr(loader, "world_size", 1) > 1
        if sharded:
            distributed.broadcast_buffers(self.model)
        model = self.eval_model()
        loss_sum = torch.zeros((), device=self.device)
        sums = {k: torch.zeros((), device=self.device) for k in self.metrics}
        n, kept = 0, []
        for x, y in loader:
            pred = self._logits(model, x, tta)
            kept += [(pred.softmax(1), y)] if keep else []
            loss_sum += summed_loss(self.loss_func, pred, y)
            for k, f in self.metrics.items():
                sums[k] += f(pred, y)
            n += len(y)
        if sharded:
            loss_sum, *metric_sums, n = distributed.sum_over_ranks([loss_sum, *sums.values(), n])
            sums = dict(zip(sums, metric_sums))
        if n == 0:
            raise ResnetteError("the validation set is empty; give the data a valid split")
        self.valid_outputs = tuple(torch.cat(t).cpu() for t in zip(*kept)) if keep else None
        return {"valid_loss": float(loss_sum) / n, **{k: float(v) / n for k, v in sums.items()}}

    @torch.no_grad()
    def predict(self, x: torch.Tensor, tta: bool = False) -> torch.Tensor:
        """Class probabilities for a normalised batch N,C,H,W (or one image C,H,W)."""
        single = x.ndim == 3
        x = (x[None] if single else x).to(self.device)
        probs = self._logits(self.eval_model(), x, tta).softmax(dim=1).float().cpu()
        return probs[0] if single else probs

    def eval_model(self) -> nn.Module:
        """In eval mode: the EMA's when on; under DDP the plain module (shards differ in length)."""
        return (self.ema.module if self.ema else self.model if self.ddp else self.forward_model).eval()

    def _logits(self, model: nn.Module, x: torch.Tensor, tta: bool) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(self.precision, self.device.type):
            return predict_logits(model, x, tta)

    # ---- the run's files, and stopping without losing work -----------------------------------
    def save_checkpoint(self, epoch: int, batch: int) -> Path:
        """checkpoint.pt (to resume at `epoch`, `batch`) and the weights, where the run says."""
        return checkpoints.save_learner(self, epoch, batch)

    def load(self, path: str | Path, with_opt: bool = True) -> dict:
        """Load weights (and optimizer/EMA/scaler state) from a resnette checkpoint; returns it."""
        return checkpoints.load_into(self, path, with_opt)

    def _request_stop(self, signum: int) -> None:   # SIGINT/SIGTERM: finish the batch, save, stop
        if self._stop_signal is not None:   # a second Ctrl-C: stop right now
            raise KeyboardInterrupt
        self._stop_signal = signum
