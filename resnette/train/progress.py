"""What the user sees while training: a bar over the batches and the chapter's epoch table.

    epoch  train_loss  valid_loss  accuracy  time
    0      1.901582    2.155090    0.325350  00:07

The table prints unless `quiet` (it is the run's log, useful in a terminal and in a CI log
alike); the bar only draws on a terminal, since a redrawn line is noise in a log file. In a
Jupyter notebook (resnette.notebook.in_notebook) both are one HTML output instead, updated in
place as fastprogress does: a bar over the epochs, the table growing row by row, and a bar
over the epoch's batches. The loop updates the bar only where it reads the losses anyway
(every SYNC_EVERY batches), and the HTML is redrawn at most every `REDRAW_S` seconds and never
sooner than 100 times its own last cost, so it takes at most 1% of an epoch on any machine,
and neither output makes the device wait.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence, TextIO

from tqdm import tqdm

from ..display import format_time, show
from ..notebook import Live, in_notebook, progress_html, table_html

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SMOOTH_BETA = 0.98      # fastai's AvgSmoothLoss: train_loss is this EMA of the batch losses
REDRAW_S = 0.2          # the notebook's bar is redrawn at most this often (fastprogress's)
REDRAW_SHARE = 0.01     # ... and it takes at most this share of the time


class Table:
    """The per-epoch table: a header once, then one aligned row per epoch."""

    def __init__(self, columns: list[str], quiet: bool = False, file: TextIO | None = None):
        self.columns, self.quiet, self.file = columns, quiet, file or sys.stdout
        self.widths = [max(len(c), 8) + 2 for c in columns]
        self.header_done = False

    def write_row(self, row: dict) -> None:
        if self.quiet:
            return
        if not self.header_done:
            self._print([c for c in self.columns])
            self.header_done = True
        self._print([show(c, row.get(c)) for c in self.columns])

    def _print(self, cells: list[str]) -> None:
        line = "".join(c.ljust(w) for c, w in zip(cells, self.widths)).rstrip()
        print(line, file=self.file, flush=True)


class ProgressBar:
    """A bar over one epoch's batches; drawn only on a terminal and when not quiet."""

    def __init__(self, total: int, desc: str, quiet: bool = False, initial: int = 0):
        enabled = not quiet and sys.stderr.isatty()
        self.bar = tqdm(total=total, desc=desc, initial=initial, leave=False,
                        dynamic_ncols=True, disable=not enabled)

    def update(self, n: int = 1, loss: float | None = None) -> None:
        self.bar.update(n)
        if loss is not None:
            self.bar.set_postfix_str(f"loss {loss:.4f}", refresh=False)

    def close(self) -> None:
        self.bar.close()

    @property
    def enabled(self) -> bool:
        return not self.bar.disable


class FitProgress:
    """What one fit shows: the table and a bar per epoch, in a terminal or in a notebook."""

    def __init__(self, columns: list[str], n_epoch: int, quiet: bool = False):
        self.columns, self.n_epoch, self.quiet = columns, n_epoch, quiet
        self.live = Live() if not quiet and in_notebook() else None
        self.table = Table(columns, quiet or self.live is not None)
        self.rows: list[list[str]] = []
        self.bar: ProgressBar | None = None
        self.epoch = self.done = self.total = 0
        self.started = self.drawn = 0.0
        self.gap = REDRAW_S   # seconds until the next redraw may happen
        self.loss: float | None = None

    def write_row(self, row: dict) -> None:
        self.table.write_row(row)
        self.rows.append([show(c, row.get(c)) for c in self.columns])
        self._draw(batches=False)

    def start_epoch(self, epoch: int, total: int, initial: int = 0) -> None:
        if self.live is None:
            self.bar = ProgressBar(total, f"epoch {epoch}", self.quiet, initial=initial)
            return
        self.epoch, self.total, self.done, self.loss = epoch, total, initial, None
        self.started = time.perf_counter()
        self._draw()

    def update(self, n: int, loss: float | None = None) -> None:
        if self.bar is not None:
            self.bar.update(n, loss)
            return
        self.done, self.loss = self.done + n, loss
        if self.live is not None and time.perf_counter() - self.drawn >= self.gap:
            self._draw()

    def end_epoch(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def _draw(self, batches: bool = True) -> None:
        """The notebook's output: epochs bar, table, and this epoch's batches bar."""
        if self.live is None:
            return
        self.drawn = time.perf_counter()
        epochs = len(self.rows)
        parts = [progress_html(epochs, self.n_epoch, f"{epochs}/{self.n_epoch} epochs")]
        if self.rows:
            parts.append(table_html(self.columns, self.rows))
        if batches and self.done < self.total:
            spent = self.drawn - self.started
            loss = "" if self.loss is None else f" loss {self.loss:.4f}"
            parts.append(progress_html(self.done, self.total, f"epoch {self.epoch}: {self.done}/"
                                       f"{self.total} batches [{format_time(spent)}]{loss}"))
        self.live.update("\n".join(parts))
        self.gap = max(REDRAW_S, (time.perf_counter() - self.drawn) / REDRAW_SHARE)


@dataclass
class Recorder:
    """Everything measured during training, for plots and for the caller.

    Per training batch: the raw loss, the smoothed loss (fastai's train_loss: an EMA of the
    losses with bias correction, carried across epochs), the learning rate and the momentum.
    Per epoch: the rows of the printed table.
    """

    losses: list[float] = field(default_factory=list)
    smooth_losses: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)
    moms: list[float] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)
    smooth: float = 0.0

    def add_losses(self, values: list[float]) -> None:
        for v in values:
            self.losses.append(v)
            self.smooth = SMOOTH_BETA * self.smooth + (1 - SMOOTH_BETA) * v
            self.smooth_losses.append(self.smooth / (1 - SMOOTH_BETA ** len(self.losses)))

    def plot_loss(self, skip_start: int = 5, with_valid: bool = True,
                  path: str | Path | None = None) -> "Figure":
        """fastai's: the training loss (smoothed, as fastai records it) per batch from
        `skip_start` on, and each epoch's validation loss at its last batch; inline in a
        notebook, a PNG at `path` if given; returns the Figure."""
        from ..plots import plot_loss, present
        valid = None
        if with_valid and self.rows:   # epochs have equal batch counts (train drops the rest)
            per_epoch = len(self.smooth_losses) / len(self.rows)
            valid = ([round((i + 1) * per_epoch) for i in range(len(self.rows))],
                     [r.get("valid_loss") for r in self.rows])
        return present(plot_loss(self.smooth_losses, valid, skip_start), path)

    def plot_sched(self, keys: Sequence[str] = ("lr", "mom"),
                   path: str | Path | None = None) -> "Figure":
        """fastai's: the hyper-parameters' schedules per batch (lr and momentum), side by side."""
        from ..plots import plot_sched, present
        values = {"lr": self.lrs, "mom": self.moms}
        return present(plot_sched({k: values[k] for k in keys}), path)

    def plot_lr(self, path: str | Path | None = None) -> "Figure":
        """The learning rate per batch (fastai v1's name; plot_sched(["lr"]))."""
        return self.plot_sched(["lr"], path)

    def state(self) -> dict:
        """Plain lists and dicts, so it can ride in a weights_only checkpoint."""
        return {"losses": list(self.losses), "smooth_losses": list(self.smooth_losses),
                "lrs": list(self.lrs), "moms": list(self.moms),
                "rows": [dict(r) for r in self.rows],
                "smooth": self.smooth}

    def load_state(self, s: dict) -> None:
        self.losses, self.smooth_losses = list(s["losses"]), list(s["smooth_losses"])
        self.lrs, self.moms = list(s["lrs"]), list(s["moms"])
        self.rows = [dict(r) for r in s["rows"]]
        self.smooth = float(s["smooth"])
