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


def format_time(seconds: float) -> str:
    """mm:ss as fastai prints it (hh:mm:ss past an hour)."""
    s = int(round(seconds))
    h, m, s = s // 3600, s // 60 % 60, s % 60
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


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
        cells = []
        for c in self.columns:
            v = row.get(c, "")
            if c == "time":
                v = format_time(v)
            elif isinstance(v, float):
                v = f"{v:.6f}"
            cells.append(str(v))
        self._print(cells)

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

    Per training batch: the raw loss, the smoothed loss (fastai's train_loss), the learning
    rate and the momentum. Per epoch: the rows of the printed table.
    """

    losses: list[float] = field(default_factory=list)
    smooth_losses: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)
    moms: list[float] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)

    def state(self) -> dict:
        """Plain lists and dicts, so it can ride in a weights_only checkpoint."""
        return {"losses": list(self.losses), "smooth_losses": list(self.smooth_losses),
                "lrs": list(self.lrs), "moms": list(self.moms), "rows": [dict(r) for r in self.rows]}

    def load_state(self, s: dict) -> None:
        self.losses, self.smooth_losses = list(s["losses"]), list(s["smooth_losses"])
        self.lrs, self.moms, self.rows = list(s["lrs"]), list(s["moms"]), [dict(r) for r in s["rows"]]
