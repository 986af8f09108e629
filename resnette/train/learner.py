"""The Learner: a model, its data, an optimizer and the training loop, in the book's vocabulary.

    learn = Learner(dls, model, metrics=["accuracy"])
    learn.lr_find()
    learn.fit_one_cycle(5, 3e-3)

One batch goes: schedule sets lr/momentum -> (Mixup/CutMix) -> forward under autocast -> loss
-> backward -> (clip) -> step -> (EMA). The loop never waits for the device except every
`SYNC_EVERY` batches, where it reads the recent losses (for the bar, the recorder and the
NaN check) in one transfer. The named hooks `_before_epoch` (progressive resizing), `_mix`
(Mixup/CutMix), `_after_step` (EMA) and `_after_epoch` (table, checkpoints) are where the
optional tricks live, so the loop itself stays as short as the chapter's.
"""
from __future__ import annotations

import math
import signal
import time
from pathlib import Path

import torch
from torch import nn

from .. import faults
from ..utils import ResnetteError, atomic_write, seed_everything
from . import distributed
from .checkpoints import (check_compatible, load_checkpoint, rng_state, save_checkpoint,
                          save_weights, set_rng_state)
from .ema import EMA
from .losses import CrossEntropy, CutMix, LabelSmoothingCrossEntropy, Mixup, mixed_loss, summed_loss
from .metrics import get_metrics
from .optim import get_mom, make_optimizer, set_hypers
from .precision import autocast, resolve_precision
from .progress import ProgressBar, Recorder, Table
from .schedules import Schedule
from .stops import TrainingInterrupted, catch_stop_signals, is_out_of_memory

SYNC_EVERY = 10         # batches between reads of the loss from the device (bar, NaN check)
SMOOTH_BETA = 0.98      # fastai's AvgSmoothLoss: train_loss is this EMA of the batch losses


class Learner:
    """Trains `model` on `dls` (see docs/DESIGN.md, "train/", for every argument)."""

    def __init__(self, dls, model: nn.Module, loss_func: nn.Module | None = None, opt: str = "adamw",
                 lr: float = 1e-3, wd: float = 0.01, metrics=("accuracy",), precision: str = "auto",
                 channels_last: bool | None = None, compile: bool = False, clip: float | None = None,
                 ema: float | None = None, label_smoothing: float = 0.0, mixup: float = 0.0,
                 cutmix: float = 0.0, progressive: list[tuple[int, int]] | None = None, seed: int = 0,
                 run_dir: str | Path | None = None, quiet: bool = False,
                 moms: tuple[float, float, float] = (0.95, 0.85, 0.95)):
        self.dls, self.lr, self.wd, self.moms, self.seed = dls, lr, wd, moms, seed
        # Under DDP (torchrun) every rank runs this same code; only rank 0 prints and writes.
        self.world_size = distributed.world_size()
        self.is_main = distributed.is_main()
        self.quiet = quiet or not self.is_main
        self.device = torch.device(getattr(dls.train, "device", "cpu"))
        self.precision = resolve_precision(precision, self.device, self.quiet)
        self.model = model.to(self.device)
        # None = where it pays: NHWC lets cuDNN use tensor cores on a GPU, but PyTorch's CPU
        # batchnorm is 2-5x slower in NHWC, so CPU training is faster in NCHW (benchmarks/models.py).
        if channels_last is None:
            channels_last = self.device.type == "cuda"
        self.channels_last = channels_last
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
            if hasattr(dls.train, "channels_last"):
                dls.train.channels_last = dls.valid.channels_last = True
        train_model = self.model
        self.ddp = distributed.in_job()
        if self.ddp:  # gradients averaged across ranks during backward
            distributed.check_sharded(dls.train, self.world_size)
            train_model = distributed.wrap_ddp(self.model, self.device)
        self.forward_model = torch.compile(train_model) if compile else train_model
        if loss_func is None:
            loss_func = LabelSmoothingCrossEntropy(label_smoothing) if label_smoothing else CrossEntropy()
        self.loss_func = loss_func
        self.metrics = get_metrics(metrics)
        self.opt_name = opt
        self.opt = make_optimizer(opt, self.model, lr, wd)
        self.scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None
        self.clip = clip
        self.ema = EMA(self.model, ema) if ema else None
        self.mixers = [m for m in (Mixup(mixup) if mixup else None, CutMix(cutmix) if cutmix else None) if m]
        self.progressive = sorted((int(e), int(s)) for e, s in (progressive or []))
        self.base_size = getattr(dls.train, "size", None)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.recorder = Recorder()
        self.config = dict(arch=type(model).__name__, opt=opt, lr=lr, wd=wd, precision=self.precision,
                           channels_last=channels_last, compile=compile, clip=clip, ema=ema,
                           label_smoothing=label_smoothing, mixup=mixup, cutmix=cutmix,
                           progressive=[list(p) for p in self.progressive], seed=seed,
                           metrics=list(self.metrics), n_out=len(getattr(dls, "vocab", [])) or None)
        self._smooth, self._count = 0.0, 0     # fastai's smoothed train loss, persists across epochs
        self._stop_signal: int | None = None
        self._mix_gen = torch.Generator()

    # ---- fitting: the three schedules of the book ------------------------------------------
    def fit(self, n_epoch: int, lr: float | None = None, resume: bool = False) -> None:
        """Train `n_epoch` epochs at a constant learning rate."""
        self._fit(Schedule("constant", n_epoch, lr or self.lr, moms=None), resume)

    def fit_one_cycle(self, n_epoch: int, lr_max: float | None = None, div: float = 25.0,
                      div_final: float = 1e5, pct_start: float = 0.25,
                      moms: tuple[float, float, float] | None = None, resume: bool = False) -> None:
        """fastai's 1cycle: lr warms up lr_max/div -> lr_max over pct_start, anneals to lr_max/div_final."""
        self._fit(Schedule("one_cycle", n_epoch, lr_max or self.lr, div, div_final, pct_start,
                           tuple(moms or self.moms)), resume)

    def fit_flat_cos(self, n_epoch: int, lr: float | None = None, div_final: float = 1e5,
                     pct_start: float = 0.75, resume: bool = False) -> None:
        """Flat lr for pct_start of training, then a cosine anneal (the leaderboard's Ranger schedule)."""
        self._fit(Schedule("flat_cos", n_epoch, lr or self.lr, div_final=div_final,
                           pct_start=pct_start, moms=None), resume)

    def lr_find(self, start: float = 1e-7, end: float = 10.0, num_it: int = 100,
                stop_div: bool = True, plot: str | Path | None = None):
        """Sweep the lr exponentially, then restore everything; see `train/lr_find.py`."""
        from .lr_find import lr_find
        if plot is None and self.run_dir is not None:
            plot = self.run_dir / "lr_find.png"
        return lr_find(self, start, end, num_it, stop_div, plot if self.is_main else None)

    # ---- the loop ------------------------------------------------------------------------------
    def _fit(self, sched: Schedule, resume: bool) -> None:
        if sched.n_epoch < 1 or not sched.lr > 0:
            raise ResnetteError(f"need at least 1 epoch and a positive lr (got {sched.n_epoch}, {sched.lr})")
        epoch, skip = self._resume(sched) if resume else (0, 0)
        if (epoch, skip) == (0, 0):
            seed_everything(self.seed)
            self.recorder, self._smooth, self._count = Recorder(), 0.0, 0
        table = Table(["epoch", "train_loss", "valid_loss", *self.metrics, "time"], self.quiet)
        for row in self.recorder.rows:
            table.write_row(row)
        old_handlers = self._catch_signals()
        try:
            for e in range(epoch, sched.n_epoch):
                start = time.perf_counter()
                self._train_epoch(e, sched, skip if e == epoch else 0)
                self._after_epoch(e, sched, table, start)
        except (RuntimeError, torch.distributed.DistError) as err:
            # DDP's gradient all-reduce failing inside backward: another rank died or hung
            if self.ddp and distributed.is_peer_failure(err):
                raise distributed.peer_failure(err, "training") from None
            raise
        finally:
            for s, h in old_handlers.items():
                signal.signal(s, h)
            self._stop_signal = None

    def _train_epoch(self, epoch: int, sched: Schedule, skip: int) -> None:
        self._before_epoch(epoch)
        loader = self.dls.train
        loader.set_epoch(epoch, skip)
        n_iter = len(loader)
        self.model.train()
        bar = ProgressBar(n_iter, f"epoch {epoch}", self.quiet, initial=skip)
        pending: list[torch.Tensor] = []
        try:
            for i, (x, y) in enumerate(loader, start=skip):
                lr, mom = sched((epoch * n_iter + i) / (sched.n_epoch * n_iter))
                set_hypers(self.opt, lr, mom)
                try:
                    pending.append(self._train_batch(x, y, epoch, i))
                    out_of_memory = False
                except RuntimeError as e:
                    if not is_out_of_memory(e):
                        raise
                    out_of_memory = True   # handled below, once the failed step's tensors are freed
                if out_of_memory:
                    self._out_of_memory(pending, epoch, i, sched, len(y))
                self.recorder.lrs.append(lr)
                self.recorder.moms.append(get_mom(self.opt))
                # Under DDP the ranks must sync at the same batches (it is a collective), so a
                # stop signal waits for the next regular sync, where all ranks agree on it.
                local_stop = self._stop_signal is not None and self.world_size == 1
                if len(pending) == SYNC_EVERY or i == n_iter - 1 or local_stop:
                    stop = self._sync(pending, epoch, i, sched)
                    bar.update(len(pending), self.recorder.smooth_losses[-1])
                    pending = []
                    if stop:
                        self._interrupted(epoch, i + 1, sched)
        finally:
            bar.close()

    def _train_batch(self, x: torch.Tensor, y: torch.Tensor, epoch: int, i: int) -> torch.Tensor:
        """One optimizer step; returns the loss as a device tensor (no sync)."""
        x = faults.before_step(x, epoch, i)   # test-only (RESNETTE_TEST_FAULT); inert otherwise
        x, mixed = self._mix(x, y, epoch, i)
        with self._autocast():
            pred = self.forward_model(x)
            loss = mixed_loss(self.loss_func, pred, y, mixed) if mixed else self.loss_func(pred, y)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.opt)
        else:
            loss.backward()
        if self.clip:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        if self.scaler is not None:
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self._after_step()
        return loss.detach()

    def _sync(self, pending: list[torch.Tensor], epoch: int, last: int, sched: Schedule) -> bool:
        """Read the pending losses at once; stop on NaN/inf before anything gets saved.

        Returns whether to stop for a signal. Under DDP the losses are averaged over the ranks
        (the global batch's loss, as one process would see it) in the same all-reduce that
        tells every rank whether any of them got Ctrl-C/SIGTERM, so all ranks record the same
        numbers and stop at the same batch.
        """
        values, stop = distributed.mean_and_any(torch.stack(pending).float(), self._stop_signal is not None)
        if stop and self._stop_signal is None:  # another rank was told to stop
            self._stop_signal = signal.SIGTERM
        for j, v in enumerate(values):
            if not math.isfinite(v):
                self._diverged(epoch, last - len(values) + 1 + j, sched)
            self._count += 1
            self._smooth = SMOOTH_BETA * self._smooth + (1 - SMOOTH_BETA) * v
            self.recorder.losses.append(v)
            self.recorder.smooth_losses.append(self._smooth / (1 - SMOOTH_BETA ** self._count))
        return stop

    def _mean_over_ranks(self, loss: torch.Tensor) -> float:
        """One batch's loss averaged over the ranks (the lr finder's stop rule must agree)."""
        return distributed.mean_and_any(loss.detach().float().reshape(1), False)[0][0]

    # ---- hooks ---------------------------------------------------------------------------------
    def _before_epoch(self, epoch: int) -> None:
        """Progressive resizing: the train loader's crop size for this epoch."""
        if self.progressive:
            size = self.base_size
            for e, s in self.progressive:
                if e <= epoch:
                    size = s
            self.dls.train.size = size

    def _mix(self, x: torch.Tensor, y: torch.Tensor, epoch: int, i: int):
        """Mixup/CutMix (one of them at random per batch when both are on).

        The generator is re-seeded from (seed, epoch, batch), so a resumed run mixes exactly
        as the uninterrupted one would have, with no RNG state to carry.
        """
        if not self.mixers:
            return x, None
        self._mix_gen.manual_seed(hash((self.seed, epoch, i)) & (2**62 - 1))
        k = int(torch.randint(len(self.mixers), (1,), generator=self._mix_gen))
        return self.mixers[k].mix(x, y, self._mix_gen)

    def _after_step(self) -> None:
        if self.ema is not None:
            self.ema.update(self.model)

    def _after_epoch(self, epoch: int, sched: Schedule, table: Table, start: float) -> None:
        """Validate, print the row, and (with run_dir) write checkpoint, weights and metrics.csv.

        The row's time runs from the epoch's `start` (a perf_counter reading) to the end of
        validation, as in fastai's table (the chapter's "time" column includes validation).
        """
        metrics = self.validate()
        if not math.isfinite(metrics["valid_loss"]):
            self._diverged(epoch, len(self.dls.train) - 1, sched)
        row = {"epoch": epoch, "train_loss": self.recorder.smooth_losses[-1], **metrics,
               "time": time.perf_counter() - start}
        self.recorder.rows.append(row)
        table.write_row(row)
        if self.run_dir is not None and self.is_main:
            self._save(sched, epoch + 1, 0)
            self._write_csv()

    # ---- evaluation -----------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self, loader=None, tta: bool = False) -> dict[str, float]:
        """valid_loss and every metric over the whole loader (default: dls.valid), summed per item.

        With EMA on, this evaluates the averaged weights. With tta=True, each image's
        probabilities are the mean over it and its horizontal mirror. A loader sharded over
        DDP ranks is reduced as sums and counts, so each image counts once (every rank must
        call this then).
        """
        loader = loader or self.dls.valid
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(0)
        sharded = getattr(loader, "world_size", 1) > 1
        if sharded:
            distributed.broadcast_buffers(self.model)
        model = self._eval_model()
        loss_sum = torch.zeros((), device=self.device)
        sums = {k: torch.zeros((), device=self.device) for k in self.metrics}
        n = 0
        for x, y in loader:
            pred = self._predict_batch(model, x, tta)
            loss_sum += summed_loss(self.loss_func, pred, y)
            for k, f in self.metrics.items():
                sums[k] += f(pred, y)
            n += len(y)
        if sharded:  # sums and counts, so each image counts once
            loss_sum, *metric_sums, n = distributed.sum_over_ranks([loss_sum, *sums.values(), n])
            sums = dict(zip(sums, metric_sums))
        if n == 0:
            raise ResnetteError("the validation set is empty; give the data a valid split")
        out = {"valid_loss": float(loss_sum) / n}
        out.update({k: float(v) / n for k, v in sums.items()})
        return out

    @torch.no_grad()
    def predict(self, x: torch.Tensor, tta: bool = False) -> torch.Tensor:
        """Class probabilities for a normalised batch N,C,H,W (or one image C,H,W)."""
        single = x.ndim == 3
        x = (x[None] if single else x).to(self.device)
        probs = self._predict_batch(self._eval_model(), x, tta).softmax(dim=1).float().cpu()
        return probs[0] if single else probs

    def _eval_model(self) -> nn.Module:
        # under DDP, the plain module: ranks' validation shards differ in length, and the
        # DDP wrapper would expect every rank to run the same forwards
        plain = self.model if self.ddp else self.forward_model
        model = self.ema.module if self.ema is not None else plain
        model.eval()
        return model

    def _predict_batch(self, model: nn.Module, x: torch.Tensor, tta: bool) -> torch.Tensor:
        """Logits (float32); with TTA, log of the mean probabilities over x and its mirror."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with self._autocast():
            pred = model(x).float()
            if tta:
                flipped = model(torch.flip(x, dims=[3])).float()
                pred = ((pred.softmax(1) + flipped.softmax(1)) / 2).log()
        return pred

    def _autocast(self):
        return autocast(self.precision, self.device.type)

    # ---- checkpoints, resume, interruption ------------------------------------------------------
    def _state(self, sched: Schedule, epoch: int, batch: int) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                "ema": self.ema.state_dict() if self.ema else None,
                "scaler": self.scaler.state_dict() if self.scaler else None,
                "schedule": sched.as_dict(), "position": {"epoch": epoch, "batch": batch},
                "rng": rng_state(), "smooth": {"value": self._smooth, "count": self._count},
                "recorder": self.recorder.state(), "config": self.config,
                "vocab": list(getattr(self.dls, "vocab", []))}

    def _save(self, sched: Schedule, epoch: int, batch: int) -> Path:
        path = save_checkpoint(self.run_dir / "checkpoint.pt", self._state(sched, epoch, batch))
        weights = self.ema.module if self.ema else self.model
        save_weights(self.run_dir / "model.safetensors", weights,
                     {"arch": self.config["arch"], "vocab": "\n".join(getattr(self.dls, "vocab", []))})
        return path

    def _write_csv(self) -> None:
        cols = ["epoch", "train_loss", "valid_loss", *self.metrics, "time"]
        lines = [",".join(cols)] + [",".join(str(r[c]) for c in cols) for r in self.recorder.rows]
        atomic_write(self.run_dir / "metrics.csv",
                     lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"))

    def load(self, path: str | Path, with_opt: bool = True) -> dict:
        """Load weights (and optimizer/EMA state) from a resnette checkpoint; returns the checkpoint."""
        state = load_checkpoint(path)
        check_compatible(self.model, state["model"], str(path))
        self.model.load_state_dict(state["model"])
        if with_opt:
            self.opt.load_state_dict(state["optimizer"])
            if self.ema is not None and state.get("ema") is not None:
                self.ema.load_state_dict(state["ema"])
            if self.scaler is not None and state.get("scaler") is not None:
                self.scaler.load_state_dict(state["scaler"])
        return state

    def _resume(self, sched: Schedule) -> tuple[int, int]:
        if self.run_dir is None:
            raise ResnetteError("resume=True needs a run_dir to read the checkpoint from")
        path = self.run_dir / "checkpoint.pt"
        if not path.exists():
            if not self.quiet:
                print(f"no checkpoint in {self.run_dir}; starting from the beginning")
            return 0, 0
        saved = Schedule.from_dict(load_checkpoint(path)["schedule"])
        if saved != sched:
            raise ResnetteError(f"{path} was written by a different schedule ({saved.kind}, "
                                f"{saved.n_epoch} epochs, lr {saved.lr:g}); resume with the same settings")
        state = self.load(path)
        set_rng_state(state["rng"])
        self.recorder.load_state(state["recorder"])
        self._smooth, self._count = state["smooth"]["value"], state["smooth"]["count"]
        return state["position"]["epoch"], state["position"]["batch"]

    def _catch_signals(self) -> dict:
        """On SIGINT/SIGTERM, let the current batch finish, then save and stop (see _interrupted)."""
        def request_stop(signum: int) -> None:
            if self._stop_signal is not None:   # a second Ctrl-C: stop right now
                raise KeyboardInterrupt
            self._stop_signal = signum
        return catch_stop_signals(request_stop)

    def _interrupted(self, epoch: int, batch: int, sched: Schedule) -> None:
        name = signal.Signals(self._stop_signal).name
        if self.run_dir is not None and not self.is_main:   # rank 0 saves for everyone
            raise TrainingInterrupted(f"{name}: stopped at epoch {epoch}, batch {batch}; rank 0 saved "
                                      "the checkpoint")
        if self.run_dir is None:
            raise TrainingInterrupted(f"{name}: stopped at epoch {epoch}, batch {batch}; "
                                      "nothing saved (no run_dir)")
        path = self._save(sched, epoch, batch)
        raise TrainingInterrupted(f"{name}: stopped at epoch {epoch}, batch {batch}; saved {path}; "
                                  "run again with resume=True (--resume) to continue",
                                  reason=f"{name}: stopped at epoch {epoch}, batch {batch}")

    def _out_of_memory(self, pending: list[torch.Tensor], epoch: int, batch: int,
                       sched: Schedule, bs: int) -> None:
        """Save the position before the batch that did not fit, then stop with advice.

        Out of memory almost always strikes in the forward or backward pass, before the
        optimizer step, so the weights are exactly those after batch `batch - 1`.
        """
        if self.world_size > 1:
            # DDP: the other ranks wait inside this step's gradient all-reduce, so no collective
            # (the loss sync) and no mid-epoch save is possible; the epoch checkpoint stays.
            reason = (f"out of memory on rank {distributed.rank()} at epoch {epoch}, batch {batch} "
                      f"with batch size {bs} per process; use a smaller --bs, e.g. --bs {max(1, bs // 2)}")
            raise TrainingInterrupted(f"{reason}; the last epoch's checkpoint is kept", reason=reason)
        if pending:
            self._sync(pending, epoch, batch - 1, sched)   # NaN check first: never save NaN weights
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        reason = (f"out of memory at epoch {epoch}, batch {batch} with batch size {bs}; "
                  f"use a smaller batch size, e.g. --bs {max(1, bs // 2)}")
        if self.run_dir is None or not getattr(self, "is_main", True):  # DDP: rank 0 saves
            raise TrainingInterrupted(f"{reason}; nothing saved (no run_dir)", reason=reason)
        path = self._save(sched, epoch, batch)
        raise TrainingInterrupted(f"{reason}; saved {path}; resume=True (--resume) continues from it",
                                  reason=reason)

    def _diverged(self, epoch: int, batch: int, sched: Schedule) -> None:
        kept = (f"; the last good checkpoint {self.run_dir / 'checkpoint.pt'} is kept"
                if self.run_dir is not None and (self.run_dir / "checkpoint.pt").exists() else "")
        raise ResnetteError(f"loss became NaN/inf at epoch {epoch}, batch {batch}; "
                            f"lower the learning rate, e.g. lr={sched.lr / 10:.1e}{kept}")
