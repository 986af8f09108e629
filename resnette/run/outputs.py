"""Where a command may write what the user names with --out: never over a run's own files.

`report --out` and `export --out` take any path; one inside a run folder could replace its
config, weights or metrics (`report --out runs/x/config.toml` did). Inside a run folder only
the command's own outputs (report.html, model.onnx, export/, ...) may be written.
"""
from __future__ import annotations

import fnmatch
import os
from pathlib import Path

from resnette.run.folder import Run
from resnette.utils import ResnetteError


def guard_output(out: str | Path, own: tuple[str, ...], verb: str) -> None:
    """Refuse `out` when it lies inside a run folder (one with classes.json, metrics.csv or
    checkpoint.pt) and is not one of `own` (names or fnmatch patterns at the run's top)."""
    out = Path(os.path.abspath(out))
    for folder in out.parents:
        run = Run(folder)
        if run.exists() and any(f.exists() for f in (run.classes, run.metrics, run.checkpoint)):
            top = out.relative_to(folder).parts[0]
            if not any(fnmatch.fnmatch(top, pattern) for pattern in own):
                raise ResnetteError(f"{out} is inside the run folder {folder}: {verb} would "
                                    "write over the run's files there; choose an --out outside "
                                    f"it (or no --out: {verb} writes {own[0]} in the run)")
            return
