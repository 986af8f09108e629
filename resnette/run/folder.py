"""The run folder: every file a training run leaves behind, named in one place: `Run`.

    runs/<name>/
        config.toml          the complete TrainConfig (rerun with --config)
        classes.json         vocab (folder names), names (human names), and the input
                             normalisation: mean, std, channels
        metrics.csv          one row per epoch, written by the Learner
        model.safetensors    final weights;  best.safetensors: the best validation epoch
        checkpoint.pt        everything needed to --resume mid-schedule
        evaluation.json      what `resnette evaluate` measured last
        plots/*.png          curves, LR finder, confusion matrix, batch grid, top losses
                             (plots/*.npz: the images the grids are drawn from)
        tensorboard/         TensorBoard event files (--tensorboard)
        report.html          `resnette report` (self-contained)
        model.onnx, export/  `resnette export`'s default outputs

Nobody else spells these names: the Learner is handed a `Run` and writes where it says.
This module is a leaf (paths, CSV and JSON only, no torch), so every layer may be given one.
"""
from __future__ import annotations

import csv
import itertools
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from resnette.utils import ResnetteError, atomic_write

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

    def plot(self, kind: str) -> Path:
        return self.plots / PLOT_NAMES[kind]

    def pixels(self, kind: str) -> Path:
        """The images and titles an image-grid plot is drawn from (plots/<plot>.npz)."""
        return self.plots / PLOT_NAMES[kind].replace(".png", ".npz")

    def exists(self) -> bool:
        return self.config.is_file()


def default_name(data: str, arch: str, size: int) -> str:
    """`imagenette-160-xresnet18-128px`, or the folder's name for a folder of images."""
    stem = Path(data).name if ("/" in data or os.sep in data) else data
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-.") or "data"
    return f"{stem}-{arch}-{size}px"


def resolve(name: str | None, run_dir: str | None, data: str, arch: str, size: int,
            root: str | Path = "runs") -> tuple[Path, bool]:
    """The run folder, and whether the user chose it (an explicit name or folder is never
    silently renamed; a default name gets -2, -3, ... when taken)."""
    if run_dir:
        return Path(run_dir), True
    if name is not None:
        if name in ("", ".", "..") or "/" in name or os.sep in name or "\0" in name:
            raise ResnetteError(f"--name {name!r} is not a run name: give one folder name (no "
                                "'/', not empty, '.' or '..'), or a path with --run-dir")
        return Path(root) / name, True
    base = Path(root) / default_name(data, arch, size)
    return next(p for p in _default_names(base) if not _taken(p)), False


def newest_default(data: str, arch: str, size: int, root: str | Path = "runs") -> Path | None:
    """The newest run folder under the default name (the last -N `resolve` gave), or None."""
    names = _default_names(Path(root) / default_name(data, arch, size))
    newest = None
    while _taken(path := next(names)):
        newest = path
    return newest


def _default_names(base: Path) -> Iterator[Path]:
    """`base`, `base-2`, `base-3`, ...: the default names in the order they are given."""
    yield base
    for n in itertools.count(2):
        yield base.with_name(f"{base.name}-{n}")


def _taken(path: Path) -> bool:
    return path.exists() and any(path.iterdir())


def open_run(path: str | Path) -> Run:
    """An existing run folder (for evaluate, predict, report, --init-from)."""
    run = Run(Path(path))
    if not run.path.is_dir():
        raise ResnetteError(f"run folder {run.path} does not exist")
    if not run.exists():
        raise ResnetteError(f"{run.path} is not a resnette run folder (no config.toml)")
    return run


def save_classes(run: Run, vocab: list[str], names: list[str], mean: Any = None,
                 std: Any = None, channels: int | None = None) -> None:
    """Class names, and the input normalisation a model of this run expects."""
    data: dict[str, Any] = {"vocab": list(vocab), "names": list(names)}
    if mean is not None:
        data.update(mean=[float(m) for m in _flat(mean)], std=[float(s) for s in _flat(std)],
                    channels=int(channels or len(_flat(mean))))
    text = json.dumps(data, indent=1)
    atomic_write(run.classes, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def _flat(values: Any) -> list:
    """A tensor/array/list of per-channel numbers as a flat list."""
    if hasattr(values, "flatten"):
        values = values.flatten()
    return list(values.tolist() if hasattr(values, "tolist") else values)


def load_classes(run: Run) -> tuple[list[str], list[str]]:
    """(vocab, names) saved with the run; names default to the vocab."""
    try:
        data = json.loads(run.classes.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResnetteError(f"{run.classes} is missing: the run never got to build its "
                            "data; train it again") from None
    return list(data["vocab"]), list(data.get("names") or data["vocab"])


def write_metrics(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> Path:
    """One row per epoch, full precision (people read it through `resnette.display`)."""
    lines = [",".join(columns)] + [",".join(str(r[c]) for c in columns) for r in rows]
    return atomic_write(path, lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"))


def read_metrics(path: str | Path) -> dict[str, list[Any]]:
    """metrics.csv as columns: whole numbers (the epoch) as ints, other numbers as floats, other
    cells (e.g. a time '0:13') as text."""
    path = Path(path)
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
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


def save_json(path: Path, data: dict[str, Any]) -> None:
    text = json.dumps(data, indent=1)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
