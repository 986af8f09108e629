"""The names of a run folder's files, and metrics.csv in and out: what every layer that writes
or reads a run needs, as a leaf (paths and CSV only), so `train/` can be handed a `Run` without
importing the run layer above it. The folder's layout is told in resnette/run/folder.py, which
creates, names and checks run folders.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resnette.files import RUN_MARKER, read_text, write_text

PLOT_NAMES = {
    "curves": "loss_accuracy.png",
    "lr_find": "lr_find.png",
    "confusion": "confusion_matrix.png",
    "batch": "augmented_batch.png",
    "top_losses": "top_losses.png",
}


@dataclass(frozen=True)
class Run:
    """Paths inside one run folder (nothing is read or created by just making a Run)."""
    path: Path

    @property
    def name(self) -> str: return self.path.name
    @property
    def config(self) -> Path: return self.path / "config.toml"
    @property
    def classes(self) -> Path: return self.path / "classes.json"
    @property
    def metrics(self) -> Path: return self.path / "metrics.csv"
    @property
    def model(self) -> Path: return self.path / "model.safetensors"
    @property
    def best(self) -> Path: return self.path / "best.safetensors"
    @property
    def checkpoint(self) -> Path: return self.path / "checkpoint.pt"
    @property
    def evaluation(self) -> Path: return self.path / "evaluation.json"
    @property
    def report(self) -> Path: return self.path / "report.html"
    @property
    def plots(self) -> Path: return self.path / "plots"
    @property
    def onnx(self) -> Path: return self.path / "model.onnx"
    @property
    def export(self) -> Path: return self.path / "export"

    @property
    def tensorboard(self) -> Path: return self.path / "tensorboard"
    @property
    def marker(self) -> Path:
        """What makes the folder a run (resnette/files/owned.py: the one rule)."""
        return self.path / RUN_MARKER

    def plot(self, kind: str) -> Path:
        return self.plots / PLOT_NAMES[kind]

    def pixels(self, kind: str) -> Path:
        """The images and titles an image-grid plot is drawn from (plots/<plot>.npz)."""
        return self.plots / PLOT_NAMES[kind].replace(".png", ".npz")

    def exists(self) -> bool:
        return self.config.is_file()


def write_metrics(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> Path:
    """One row per epoch, full precision (people read it through `resnette.display`)."""
    text = io.StringIO()
    out = csv.writer(text, lineterminator="\n")
    out.writerow(columns)
    out.writerows([r[c] for c in columns] for r in rows)
    return write_text(path, text.getvalue())


def read_metrics(path: str | Path) -> dict[str, list[Any]]:
    """metrics.csv as columns: whole numbers (the epoch) as ints, other numbers as floats, other
    cells (e.g. a time '0:13') as text."""
    path = Path(path)
    if not path.is_file():
        return {}
    rows = list(csv.DictReader(io.StringIO(read_text(path, "metrics file"), newline="")))
    columns: dict[str, list[Any]] = {}
    for row in rows:
        for key, cell in row.items():
            columns.setdefault(key, []).append(_number_or_text(cell))
    return columns


def _number_or_text(cell: str | None) -> Any:
    for kind in (int, float):
        try:
            return kind(cell)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            pass
    return cell


# metrics.csv's columns that are fractions of the validation images (train/metrics.py)
FRACTIONS = ("accuracy", "error_rate", "top_k_accuracy")


def metrics_problem(columns: dict[str, list[Any]]) -> str | None:
    """What in metrics.csv's columns (as `read_metrics` gives them) a training run cannot have
    written, or None. Training writes: epochs 0, 1, 2... each once and in order; losses that
    are finite and not negative (cross-entropy, smoothed or mixed, never is), NaN or blank for
    a loss that was not measured (an epoch not validated); fractions (accuracy, error rate,
    top-k) in [0, 1], NaN or blank where not validated; times in seconds, finite, not
    negative. One decision for `runs`, `report` and everything that shows a run's numbers."""
    epochs = columns.get("epoch")
    if not epochs:
        return "no 'epoch' column" if columns else None
    if not all(isinstance(e, int) and e >= 0 for e in epochs):
        return "its 'epoch' column must hold whole numbers from 0"
    if any(b <= a for a, b in zip(epochs, epochs[1:])):
        return "its epochs are not in order or repeat one (" + ", ".join(
            str(e) for e in epochs[:6]) + (", ..." if len(epochs) > 6 else "") + ")"
    for key, cells in columns.items():
        for cell in cells:
            if not _possible(key, cell):
                return f"its '{key}' column holds {cell!r}, which {_rule(key)}"
    return None


def _possible(key: str, cell: Any) -> bool:
    if isinstance(cell, str):   # blank: not measured; a time as text: an older resnette's
        return cell == "" or key == "time"
    if not isinstance(cell, (int, float)) or isinstance(cell, bool):
        return False
    if key == "epoch":
        return True
    if cell != cell:   # NaN: not measured
        return key != "time"
    if key == "time" or key.endswith("loss"):
        return 0 <= cell < float("inf")
    if key in FRACTIONS:
        return 0 <= cell <= 1
    return abs(cell) < float("inf")   # a metric of the user's: any finite number


def _rule(key: str) -> str:
    if key == "time":
        return "no epoch's time in seconds can be"
    if key.endswith("loss"):
        return "no loss can be (finite, not negative, or NaN where not measured)"
    if key in FRACTIONS:
        return "no fraction can be (from 0 to 1, or NaN where not validated)"
    return "no metric can be (a finite number, or NaN where not measured)"
