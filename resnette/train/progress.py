"""What the user sees while training: a bar over the batches and the chapter's epoch table.

    epoch  train_loss  valid_loss  accuracy  time
    0      1.901582    2.155090    0.325350  00:07

The table prints unless `quiet` (it is the run's log, useful in a terminal and in a CI log
alike); the bar only draws on a terminal, since a redrawn line is noise in a log file.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TextIO

from tqdm import tqdm

from ..display import show

SMOOTH_BETA = 0.98      # fastai's AvgSmoothLoss: train_loss is this EMA of the batch losses


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

    def state(self) -> dict:
        """Plain lists and dicts, so it can ride in a weights_only checkpoint."""
        return {"losses": list(self.losses), "smooth_losses": list(self.smooth_losses),
                "lrs": list(self.lrs), "moms": list(self.moms), "rows": [dict(r) for r in self.rows],
                "smooth": self.smooth}

    def load_state(self, s: dict) -> None:
        self.losses, self.smooth_losses = list(s["losses"]), list(s["smooth_losses"])
        self.lrs, self.moms, self.rows = list(s["lrs"]), list(s["moms"]), [dict(r) for r in s["rows"]]
        self.smooth = float(s["smooth"])
