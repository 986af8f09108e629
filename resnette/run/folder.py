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

Nobody else spells these names: the Learner is handed a `Run` (resnette/runfiles.py, a leaf
below train/, with metrics.csv's reader and writer) and writes where it says; this module
names, checks and opens run folders for the commands.
"""
from __future__ import annotations

import itertools
import os
import re
from pathlib import Path
from typing import Any, Iterator

from resnette.display import has_controls, term, to_json
from resnette.runfiles import PLOT_NAMES, Run, read_metrics, write_metrics
from resnette.files import read_json, write_text
from resnette.utils import ResnetteError

__all__ = ["PLOT_NAMES", "Run", "read_metrics", "write_metrics", "default_name", "resolve",
           "open_run", "save_classes", "load_classes", "save_json"]


def default_name(data: str, arch: str, size: int) -> str:
    """`imagenette-160-xresnet18-128px`, or the folder's name for a folder of images."""
    stem = Path(data).name if ("/" in data or os.sep in data) else data
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-.") or "data"
    return f"{stem}-{arch}-{size}px"


def resolve(name: str | None, run_dir: str | None, data: str, arch: str, size: int,
            root: str | Path = "runs") -> tuple[Path, bool]:
    """The run folder, and whether the user chose it (an explicit name or folder is never
    silently renamed; a default name gets -2, -3, ... when taken)."""
    if run_dir:   # a folder resnette makes: named as --name must be (no control characters)
        if has_controls(run_dir):
            raise ResnetteError(f"--run-dir {term(run_dir)} holds control characters (such as "
                                "ESC or a newline, shown escaped): give a folder name without them")
        return Path(run_dir), True
    if name is not None:
        if name in ("", ".", "..") or "/" in name or os.sep in name or has_controls(name):
            raise ResnetteError(f"--name '{term(name)}' is not a run name: give one folder name "
                                "(no '/' or control characters such as a newline, not empty, '.' "
                                "or '..'), or a path with --run-dir")
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
    text = to_json(data)   # valid JSON always: NaN as null (resnette.display)
    write_text(run.classes, text)


def _flat(values: Any) -> list:
    """A tensor/array/list of per-channel numbers as a flat list."""
    if hasattr(values, "flatten"):
        values = values.flatten()
    return list(values.tolist() if hasattr(values, "tolist") else values)


def load_classes(run: Run) -> tuple[list[str], list[str]]:
    """(vocab, names) saved with the run; names default to the vocab."""
    try:
        data = read_json(run.classes, "class list")
    except FileNotFoundError:
        raise ResnetteError(f"{run.classes} is missing: the run never got to build its "
                            "data; train it again") from None
    return list(data["vocab"]), list(data.get("names") or data["vocab"])


def save_json(path: Path, data: dict[str, Any]) -> None:
    text = to_json(data)   # valid JSON always: NaN as null (resnette.display)
    write_text(path, text)
