"""Many run folders side by side: what `resnette runs` lists, filters, sorts and diffs.

Reading only: nothing here writes, creates or locks anything in a run folder (the lock is
looked at, never taken, so listing never delays a training). A damaged folder (a config that
is not TOML, a metrics.csv that is not CSV, missing or unreadable files) becomes a summary
whose `problem` says what is wrong, never an exception: one bad folder among fifty must not
hide the other forty-nine. Every number comes from the run's own files: accuracy, top-5 and
losses are metrics.csv's cells of the last validated epoch, the wall time is the sum of its
`time` column, so the table and the file always agree.
"""
from __future__ import annotations

import csv
import glob
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from resnette.measures import ACCURACY, TOP_K, TRAIN_LOSS, VALID_LOSS
from resnette.run.aside import ASIDE_MARKER
from resnette.run.folder import Run, read_metrics
from resnette.run.lock import LOCK_NAME
from resnette.run.tomlfile import read_toml
from resnette.runfiles import metrics_problem
from resnette.files import peek, read_small
from resnette.utils import ResnetteError

# files only a run folder has: a folder holding one of them but no config.toml is a damaged run
_RUN_FILES = ("config.toml", "metrics.csv", "checkpoint.pt", "model.safetensors", "classes.json")
# what `--sort` and `--where` accept besides config keys, and their summary attribute
COLUMNS = {"name": "name", "data": "data", "arch": "arch", "size": "size", "epochs": "done",
           "acc": ACCURACY, ACCURACY: ACCURACY, TOP_K: TOP_K, "top5": TOP_K, "loss": VALID_LOSS,
           VALID_LOSS: VALID_LOSS, TRAIN_LOSS: TRAIN_LOSS, "time": "wall", "date": "date", "state": "state"}


@dataclass
class RunSummary:
    """One row of the runs table. Numbers are None where the run has none (yet)."""
    path: Path
    name: str
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, list[Any]] = field(default_factory=dict)
    done: int = 0                  # epochs in metrics.csv
    accuracy: float | None = None  # metrics.csv, the last epoch that was validated
    top_k_accuracy: float | None = None
    valid_loss: float | None = None
    train_loss: float | None = None
    wall: float | None = None      # seconds: the sum of metrics.csv's time column
    date: float | None = None      # when the run last wrote an epoch (else its config)
    state: str = "damaged"
    problem: str = ""              # why the folder is damaged ("" when it is not)

    @property
    def data(self) -> Any: return self.config.get("data")
    @property
    def arch(self) -> Any: return self.config.get("arch")
    @property
    def size(self) -> Any: return self.config.get("size")
    @property
    def planned(self) -> Any: return self.config.get("epochs")

    def value(self, key: str) -> Any:
        """A column (`acc`, `time`, ...) or a config key (`lr`, `mixup`, ...) of this run."""
        if key in COLUMNS:
            return getattr(self, COLUMNS[key])
        return self.config.get(key)


def find_runs(paths: Iterable[str | os.PathLike] = ("runs",)) -> list[Path]:
    """The run folders named by `paths`: a run folder itself, a folder of runs (one level down,
    and one more for folders of runs such as `reproduce`'s), or a glob of either. Hidden
    folders (`.name.replaced-123`: --overwrite's old run) are not runs."""
    found: list[Path] = []
    for p in paths:
        text = os.fspath(p)
        matches = sorted(glob.glob(text)) if glob.has_magic(text) else [text]
        if not matches:
            raise ResnetteError(f"no run folder matches {text!r}")
        for m in map(Path, matches):
            if not m.is_dir():
                if glob.has_magic(text):
                    continue
                raise ResnetteError(f"no run folder at {m}; give a run folder or a folder of runs")
            found += [m] if _looks_like_run(m) else _runs_below(m, depth=2)
    unique: dict[Path, None] = {}
    for f in found:
        unique.setdefault(f, None)
    return list(unique)


def _looks_like_run(folder: Path) -> bool:
    return any(_exists(folder / name) for name in _RUN_FILES)


def _exists(path: Path) -> bool:
    try:
        return os.path.lexists(path)
    except OSError:
        return False


def _runs_below(folder: Path, depth: int) -> list[Path]:
    """Runs at most `depth` levels below `folder`. A hidden folder is listed when it is a run
    (`--name .x` makes one), except one that `--overwrite` moved aside for the moment (its
    marker says so); hidden folders that are not runs (.git, .ipynb_checkpoints) are not
    searched."""
    try:
        children = sorted(folder.iterdir())
    except OSError:
        return []
    out: list[Path] = []
    for child in children:
        hidden = child.name.startswith(".")
        try:
            if not child.is_dir():
                continue
        except OSError:
            continue
        if _looks_like_run(child):
            if not (hidden and _exists(child / ASIDE_MARKER)):
                out.append(child)
        elif depth > 1 and not hidden:
            out += _runs_below(child, depth - 1)
    return out


def summarize(path: str | os.PathLike, root: str | os.PathLike | None = None) -> RunSummary:
    """A run folder's row. Never raises for what is in the folder: a damaged run gets
    state "damaged" and a `problem` in words."""
    path = Path(path)
    name = _display_name(path, root)
    s = RunSummary(path, name)
    run = Run(path)
    try:
        s.config = read_toml(run.config)
    except ResnetteError as e:
        s.problem = "no config.toml" if not _exists(run.config) else str(e)
    except Exception as e:   # noqa: BLE001 - a garbled file must not end the listing
        s.problem = f"cannot read {run.config.name} ({type(e).__name__})"
    try:
        s.metrics = _metrics(run)
    except ValueError as e:
        s.problem = s.problem or str(e)
    _numbers(s)
    s.date = _mtime(run.metrics) or _mtime(run.config)
    holder = training_holder(path)
    if holder:
        s.state = "training now" if "train" in holder else f"in use ({holder})"
    elif s.problem:
        s.state = "damaged"
    elif isinstance(s.planned, int) and s.done >= s.planned and _exists(run.model):
        s.state = "finished"
    else:
        s.state = "interrupted"
    return s


def _display_name(path: Path, root: str | os.PathLike | None) -> str:
    if root is not None:
        try:
            return path.relative_to(root).as_posix()
        except ValueError:
            pass
    return path.name or str(path)


def _metrics(run: Run) -> dict[str, list[Any]]:
    """metrics.csv's columns, or ValueError naming what is wrong with it."""
    try:
        columns = read_metrics(run.metrics)
    except OSError as e:
        raise ValueError(f"cannot read metrics.csv ({e.strerror})") from None
    except ResnetteError as e:   # a FIFO, a device, a huge file: the gate said what
        raise ValueError(str(e)) from None
    except (UnicodeDecodeError, csv.Error):
        raise ValueError("metrics.csv is not CSV text") from None
    if not columns:
        return {}
    if None in columns or "epoch" not in columns:
        raise ValueError("metrics.csv has rows longer than its header, or no epoch column")
    if any(cell is None for cells in columns.values() for cell in cells):
        raise ValueError("metrics.csv has a row with cells missing (cut short?)")
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1 or any(not isinstance(e, int) for e in columns["epoch"]):
        raise ValueError("metrics.csv has a row that is not an epoch's numbers")
    why = metrics_problem(columns)   # numbers no training writes: shown as damaged, not ranked
    if why:
        raise ValueError(f"metrics.csv: {why}")
    return columns


def _numbers(s: RunSummary) -> None:
    m = s.metrics
    s.done = len(m.get("epoch", []))
    s.accuracy = _last(m.get(ACCURACY))
    s.top_k_accuracy = _last(m.get(TOP_K))
    s.valid_loss = _last(m.get(VALID_LOSS))
    s.train_loss = _last(m.get(TRAIN_LOSS))
    times = [t for t in m.get("time", []) if finite(t)]
    s.wall = float(sum(times)) if times else None


def finite(v: Any) -> bool:
    """A real number (not NaN, not infinite, not a bool)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _last(values: list[Any] | None) -> float | None:
    """The last measured value of a column (epochs not validated hold NaN)."""
    for v in reversed(values or []):
        if finite(v):
            return v
    return None


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def training_holder(folder: str | os.PathLike) -> str:
    """Who holds the run's lock exclusively ("1234 (resnette train)"), or "" when nobody does.

    Looked at without taking it: the exclusive holder writes `pid (verb)` into `<run>/.lock`
    (run/lock.py) and removes the file when done; the file left by a holder killed with -9
    names a process whose lock the kernel dropped, so on Linux the lock is confirmed in
    /proc/locks, elsewhere by the process still being alive."""
    seen = peek(Path(folder) / LOCK_NAME)   # None for a FIFO, a link, /dev/zero: no holder
    if seen is None:
        return ""
    text, st = seen[0].decode("utf-8", "replace").strip(), seen[1]
    if not text:
        return ""   # shared holders (evaluate, export, report) write nothing
    held = _in_proc_locks(st.st_dev, st.st_ino)
    if held is None:
        held = _alive(text.split()[0])
    return text if held else ""


def _in_proc_locks(dev: int, ino: int) -> bool | None:
    """Whether /proc/locks lists an exclusive flock on (dev, ino); None without /proc/locks."""
    try:
        lines = read_small("/proc/locks", "lock table").decode("utf-8", "replace").splitlines()
    except (OSError, ResnetteError):
        return None
    for line in lines:
        parts = line.split()
        if len(parts) < 6 or parts[1] != "FLOCK" or parts[3] != "WRITE":
            continue
        try:
            major, minor, inode = parts[5].split(":")
            if (int(major, 16), int(minor, 16), int(inode)) == (os.major(dev), os.minor(dev), ino):
                return True
        except ValueError:
            continue
    return False


def _alive(pid_text: str) -> bool:
    try:
        os.kill(int(pid_text), 0)
    except (ValueError, ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True
    return True


def load_runs(paths: Iterable[str | os.PathLike] = ("runs",)) -> list[RunSummary]:
    """Every run under `paths`, summarised (see `find_runs`, `summarize`)."""
    paths = list(paths)
    roots = [Path(p) for p in paths if not glob.has_magic(os.fspath(p))]
    out = []
    for folder in find_runs(paths):
        root = next((r for r in roots if r in folder.parents), None)
        out.append(summarize(folder, root))
    return out


def when(timestamp: float | None) -> str:
    """A run's date as people read it: local time to the minute."""
    if timestamp is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))
