"""Every file read back from a run folder, checked before it is used.

A run folder is written by resnette, but it lives on a user's disk for months: it is copied,
synced, edited by hand, cut short by a full disk. So nothing read from it is trusted. Each
reader here checks the file's shape and values and, when they are wrong, raises one line that
names the file, says what is wrong with it and what to do (`predict`, `evaluate`, `export`,
`report` and `train --resume` never show a traceback for a damaged file, and never print
`nan%` from a zero standard deviation).

    read_config      config.toml   -> TrainConfig
    read_classes     classes.json  -> vocab, names, mean, std, channels
    read_evaluation  evaluation.json (and evaluations/*.json) -> dict, or None when absent
    read_metrics     metrics.csv   -> columns
    check_pixels     plots/*.npz   (the pictures the image grids are drawn from)
    check_run_files  all of the above that a run folder has
"""
from __future__ import annotations

import csv
import unicodedata
import zipfile
from pathlib import Path
from typing import Any, Iterable

from resnette.data.classes import class_info, strings
from resnette.measures import CROSS_ENTROPY, EVALUATION, current
from resnette.run.config import TrainConfig, make_config, read_toml
from resnette.run.folder import Run, read_metrics as _read_metrics
from resnette.runfiles import metrics_problem
from resnette.files import open_read, read_json
from resnette.utils import ResnetteError

CLASSES_ADVICE = ("it holds the run's class names and input normalisation: restore it from a "
                  "copy of the run, or train the run again")
CONFIG_ADVICE = "it holds the run's settings: restore it from a copy of the run"


def nfc(labels: Iterable[str]) -> list[str]:
    """Class names as compared everywhere: Unicode NFC (a folder copied from a Mac is NFD;
    both print the same, so they are the same class; data/folders.py names classes in NFC)."""
    return [unicodedata.normalize("NFC", label) for label in labels]


def damaged(path: Path, what: str, advice: str) -> ResnetteError:
    """The one line for a run file that cannot be used."""
    return ResnetteError(f"{path} is damaged ({what}); {advice}")


def read_config(path: str | Path) -> TrainConfig:
    """A run's config.toml as a TrainConfig. A config recorded before the progressive sizes
    were checked against the other keys (an older resnette) still rebuilds its model: those
    sizes only mattered while it trained."""
    path = Path(path)
    try:
        values = read_toml(path)
    except ResnetteError as e:
        raise ResnetteError(f"{e}; {CONFIG_ADVICE}") from None
    try:
        return make_config(values)
    except ResnetteError as e:
        if "progressive" in values:
            try:
                return make_config({k: v for k, v in values.items() if k != "progressive"})
            except ResnetteError:
                pass
        raise damaged(path, str(e), CONFIG_ADVICE) from None


def _json(path: Path, advice: str) -> Any:
    try:
        return read_json(path, path.name)
    except UnicodeDecodeError as e:
        raise damaged(path, f"not UTF-8 text at byte {e.start}", advice) from None
    except ValueError as e:
        raise damaged(path, f"not JSON: {e}", advice) from None
    except IsADirectoryError:
        raise damaged(path, "a folder, not a file", advice) from None
    except OSError as e:
        raise ResnetteError(f"cannot read {path} ({e.strerror})") from None


def check_classes(data: Any, where: Path, advice: str = CLASSES_ADVICE) -> dict:
    """classes.json's content (or the same embedded in an export), complete and usable
    (data/classes.py says what that is)."""
    try:
        return class_info(data)
    except ValueError as e:
        raise damaged(where, str(e), advice) from None


def read_classes(path: str | Path) -> dict:
    """A run's classes.json, checked (see `check_classes`)."""
    path = Path(path)
    if not path.is_file():
        raise ResnetteError(f"{path} is missing: the run never got to build its data; "
                            "train it again")
    return check_classes(_json(path, CLASSES_ADVICE), path)


def evaluation_advice(run_path: Path) -> str:
    return f"run `resnette evaluate {run_path}` to measure it again"


def read_evaluation(path: str | Path, advice: str = "") -> dict | None:
    """evaluation.json (or one of evaluations/*.json), checked, an older run's metric names
    read as today's (resnette.measures); None when there is none."""
    path = Path(path)
    advice = advice or evaluation_advice(path.parent)
    if not path.exists():
        return None
    ev = _json(path, advice)

    def bad(what: str) -> ResnetteError:
        return damaged(path, what, advice)
    if not isinstance(ev, dict):
        raise bad(f"a JSON object expected, got {type(ev).__name__}")
    n = ev.get("n")
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise bad("'n' must be the number of images evaluated")
    ev = current(ev)   # an older run's names (top5, loss) read as today's
    for key in EVALUATION:
        v = ev.get(key)
        fraction = key != CROSS_ENTROPY
        if v is not None and not (isinstance(v, (int, float)) and not isinstance(v, bool)
                                  and (not fraction or 0 <= v <= 1)):
            raise bad(f"'{key}' must be a number{' in [0, 1]' if fraction else ''}, got {v!r}")
    if not isinstance(ev.get("split", ""), str):
        raise bad("'split' must be text")
    names = ev.get("names")
    if names is not None and not strings(names):
        raise bad("'names' must be a list of class names")
    cm = ev.get("confusion")
    if cm is not None:
        k = len(names or [])
        if not (isinstance(cm, list) and len(cm) == k and all(
                isinstance(r, list) and len(r) == k and all(
                    isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in r)
                for r in cm)):
            raise bad(f"'confusion' must be a {k}x{k} table of counts, one row per name")
    per_class = ev.get("per_class", {})
    if not isinstance(per_class, dict) or not all(
            isinstance(v, dict) and isinstance(v.get("n"), int) and (
                v.get("accuracy") is None or isinstance(v.get("accuracy"), (int, float)))
            for v in per_class.values()):
        raise bad("'per_class' must map each class to its accuracy and number of images")
    return ev


def read_metrics(path: str | Path) -> dict[str, list[Any]]:
    """metrics.csv as columns ({} when there is none): an 'epoch' column of whole numbers,
    every row as long as the header, and numbers (NaN allowed: epochs not validated) in
    every column but the time."""
    path = Path(path)
    advice = (f"it is rewritten at every epoch of training: restore it from a copy, or move it "
              f"away to report {path.parent} without its training table")
    try:
        columns = _read_metrics(path)
    except UnicodeDecodeError as e:
        raise damaged(path, f"not UTF-8 text at byte {e.start}", advice) from None
    except csv.Error as e:
        raise damaged(path, f"not CSV: {e}", advice) from None
    except OSError as e:
        raise ResnetteError(f"cannot read {path} ({e.strerror})") from None
    if not columns:
        return columns
    if None in columns or any(None in v for v in columns.values()):
        raise damaged(path, "a row has more or fewer cells than the header", advice)
    if not all(isinstance(e, int) for e in columns.get("epoch", [None])):
        raise damaged(path, "its 'epoch' column must hold whole numbers", advice)
    for key, values in columns.items():
        if key not in ("epoch", "time") and not all(
                isinstance(v, (int, float)) or v == "" for v in values):
            raise damaged(path, f"its '{key}' column must hold numbers", advice)
    why = metrics_problem(columns)   # numbers no training writes (runfiles.py)
    if why:
        raise damaged(path, why, advice)
    return columns


def check_pixels(path: Path, advice: str) -> None:
    """A plots/*.npz file is what save_pixels writes: uint8 images N,H,W,C (C 1 or 3) and N
    titles, readable without unpickling anything."""
    import numpy as np
    if not path.is_file():
        return
    try:
        with open_read(path, path.name) as f, np.load(f, allow_pickle=False) as z:
            images, titles = z["images"], z["titles"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, ResnetteError) as e:
        raise damaged(path, f"not the pictures' pixels: {str(e)[:80]}", advice) from None
    if (images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3)
            or titles.ndim != 1 or len(titles) != len(images)):
        raise damaged(path, f"images {images.dtype} {images.shape} with {titles.shape} titles, "
                      "not uint8 N,H,W,C with N titles", advice)


def other_evaluations(run: Run) -> list[dict]:
    """The evaluations kept beside the run's own (evaluations/*.json), each checked."""
    folder = run.path / "evaluations"
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    return [ev for ev in (read_evaluation(f, evaluation_advice(run.path)) for f in files) if ev]


def check_run_files(run: Run) -> None:
    """Read and check every file of the run folder that a report or a plot reads."""
    read_config(run.config)
    if run.classes.exists():
        read_classes(run.classes)
    read_metrics(run.metrics)
    read_evaluation(run.evaluation)
    other_evaluations(run)
    check_pixels(run.pixels("top_losses"), evaluation_advice(run.path))
    check_pixels(run.pixels("batch"), "move it away: it is only the picture of a training batch")
