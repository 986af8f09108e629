"""The Learner's methods around the training loop, most with fastai's names and meaning
(differences said in each docstring): lr_find, save/load, export, to_fp16/to_bf16/to_fp32,
summary, add_cb/remove_cb, and where the weights worth keeping are (the EMA's when on).

`Learner` (train/learner.py) inherits them, and the evaluation methods of train/inference.py,
so the loop stays readable in one file.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..notebook import in_notebook
from ..plots import present
from . import checkpoints, export as exporting
from .callbacks import AverageWeights
from .ema import EMA
from .lr_find import SuggestedLRs, lr_find as sweep_lr
from .precision import half

if TYPE_CHECKING:
    from ..models.summary import Summary


class LearnerAPI:
    """Mixed into `Learner`; see the module's docstring."""

    model_dir = "models"   # fastai's: save/load names live in path/model_dir

    @property
    def run_dir(self) -> Path | None:
        return self.run.path if self.run else None

    @property
    def ema(self) -> EMA | None:
        """The average of the weights, kept by the AverageWeights callback when ema is set."""
        return next((cb.ema for cb in self.cbs if isinstance(cb, AverageWeights)), None)

    @property
    def kept_model(self) -> nn.Module:
        """The weights worth keeping: the EMA's when on, else the live ones (never compiled)."""
        ema = self.ema
        return ema.module if ema is not None else self.model

    @property
    def path(self) -> Path:
        """fastai's `learn.path`: the run folder when there is one, else the current folder."""
        return self.run.path if self.run else Path(".")

    # ---- the learning rate finder ------------------------------------------------------------
    def lr_find(self, start_lr: float = 1e-7, end_lr: float = 10.0, num_it: int = 100,
                stop_div: bool = True, show_plot: bool = True,
                plot: str | Path | None = None) -> SuggestedLRs:
        """fastai's: sweep the lr exponentially, then restore everything (train/lr_find.py);
        returns SuggestedLRs(valley=, steep=, minimum=). The plot is shown inline in a
        notebook (`show_plot`) and written to `plot`, else to the run's plots folder."""
        found = sweep_lr(self, start_lr, end_lr, num_it, stop_div)
        path = plot or (self.run.plot("lr_find") if self.run else None)
        inline = show_plot and in_notebook()
        if self.is_main and (path is not None or inline):
            present(found.plot(), path) if inline else found.plot(path)
        return found

    # ---- weights: the run's checkpoint, by name, and for sharing ---------------------------
    def save_checkpoint(self, epoch: int, batch: int) -> Path:
        """checkpoint.pt (to resume at `epoch`, `batch`) and the weights, where the run says."""
        return checkpoints.save_learner(self, epoch, batch)

    def load_checkpoint(self, path: str | Path, with_opt: bool = True) -> dict:
        """Load weights (and optimizer, callbacks', scaler state) from a resnette checkpoint."""
        return checkpoints.load_into(self, path, with_opt)

    def save(self, name: str, with_opt: bool = True) -> Path:
        """fastai's: the weights (and the optimizer's state) in path/models/<name>. As
        safetensors, not a pickle: the file is `<name>.safetensors` (fastai's is `.pth`)."""
        return exporting.save_named(self, name, with_opt)

    def load(self, name: str, with_opt: bool = True) -> "LearnerAPI":
        """fastai's: load what `save(name)` wrote (path/models/<name>.safetensors); returns self."""
        exporting.load_named(self, name, with_opt)
        return self

    def export(self, fname: str | Path = "export") -> Path:
        """fastai's, without a pickle: a folder `path/fname` holding model.safetensors and
        learner.toml (architecture and options, class names, normalisation), which
        `load_learner` rebuilds; a loaded export can never run code."""
        return exporting.export(self, self.path / fname)

    # ---- precision -----------------------------------------------------------------------------
    def set_precision(self, precision: str) -> None:
        """Train in `precision` (fp32, bf16 or fp16) from now on; fp16 gets loss scaling."""
        self.precision = self.settings.precision = precision
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=precision == "fp16")

    def to_fp16(self) -> "LearnerAPI":
        """fastai's mixed precision. fp16 on a GPU; a CPU has no fast fp16, so there it trains
        in bf16 where the CPU has it natively, else fp32, and prints one line saying so
        (train/precision.py's table). Returns self."""
        precision, note = half(self.device)
        if note and not self.quiet:
            print(note)
        self.set_precision(precision)
        return self

    def to_bf16(self) -> "LearnerAPI":
        """Mixed precision in bfloat16 (slow where a CPU only emulates it). Returns self."""
        self.set_precision("bf16")
        return self

    def to_fp32(self) -> "LearnerAPI":
        """Back to full precision. Returns self."""
        self.set_precision("fp32")
        return self

    # ---- the model and the callbacks -----------------------------------------------------------
    def summary(self) -> "Summary":
        """Each layer's output shape, parameters and multiply-adds at the training size (a
        printable table; fastai's prints its own layout)."""
        from ..models.summary import summary
        return summary(self.model, size=self.dls.size, c_in=getattr(self.dls, "channels", 3))

    def add_cb(self, cb) -> "LearnerAPI":
        """fastai's: add a callback (after the others)."""
        self.cbs = [*self.cbs, cb]
        return self

    def remove_cb(self, cb) -> "LearnerAPI":
        """fastai's: remove a callback."""
        self.cbs = [c for c in self.cbs if c is not cb]
        return self
