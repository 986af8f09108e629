"""An interrupted `--overwrite`: the old run, moved aside, put back (or dropped once the new
run has saved). Every command that opens a run calls `recover` first (run/setup.py,
run/trained.py). Only a folder holding ASIDE_MARKER, written just before the move, is ever
touched: a run the user named `.x.replaced-1`, or a backup copied to such a name, never is."""
from __future__ import annotations

import glob
import os
import sys
from pathlib import Path

from resnette.files import (RUN_MARKER, has_marker, is_run_folder, read_text, remove_owned,
                            remove_temporary)
from resnette.run.folder import Run
from resnette.run.lock import LOCK_NAME, lock_run
from resnette.utils import ResnetteError

ASIDE_MARKER = ".resnette-aside"


def taken(run: Run) -> bool:
    """Whether the folder holds anything but a lock a killed process left and our marker."""
    return run.path.is_dir() and any(p.name not in (LOCK_NAME, RUN_MARKER) for p in run.path.iterdir())


def has_weights(run: Run) -> bool:
    return any(f.is_file() for f in (run.checkpoint, run.model, run.best))


def recover(run: Run, strict: bool = False) -> None:
    """A `--overwrite` killed between moving the old run aside and the new run's first
    checkpoint: put the old run back (the new one holds no weights); after it, drop it.
    Every command that opens a run calls this first (`open_existing`); `strict`: an old run
    that cannot be put back (its --overwrite still runs, or the place is read-only) is an
    error saying where it is, instead of the new, empty folder being used."""
    for aside in sorted(run.path.parent.glob(f".{glob.escape(run.name)}.replaced-*")):
        if (aside.is_symlink() or not aside.is_dir() or not is_run_folder(aside)
                or not has_marker(aside, ASIDE_MARKER)):
            continue   # not a run --overwrite moved aside (a run named so, a backup): untouched
        try:
            probe = lock_run(aside, "resnette: recovering")
        except ResnetteError as e:   # its --overwrite is still running (or it is unreadable)
            if strict and not has_weights(run):
                raise ResnetteError(_still_aside(run, aside, str(e))) from None
            continue
        probe.release()
        try:
            if has_weights(run):
                remove_owned(aside)
                continue
            if run.path.is_dir():   # the new run that never saved (no weights), or nothing
                remove_temporary(run.path) if _never_saved(run) else remove_owned(run.path)
            os.rename(aside, run.path)
            os.unlink(run.path / ASIDE_MARKER)   # in place again: no longer aside
        except OSError as e:
            raise ResnetteError(_still_aside(run, aside, e.strerror)) from None
        print(f"restored {run.path}: the --overwrite that replaced it was stopped before its "
              "first checkpoint", file=sys.stderr, flush=True)


def _never_saved(run: Run) -> bool:
    """The folder a killed `--overwrite` made holds only what train writes before its first
    checkpoint (also from a resnette before run markers): it is this program's to delete."""
    start = {LOCK_NAME, RUN_MARKER, run.config.name, run.classes.name, run.plots.name}
    names = {p.name for p in run.path.iterdir()}
    plots_empty = (not run.plots.is_symlink() and
                   (not run.plots.exists() or (run.plots.is_dir() and not any(run.plots.iterdir()))))
    return names <= start and plots_empty


def _still_aside(run: Run, aside: Path, why: str) -> str:
    holder = ""
    try:
        holder = read_text(aside / LOCK_NAME, "lock", 200, follow=False).strip()
    except (OSError, ValueError, ResnetteError):
        pass
    if holder:
        return (f"{run.path} is being replaced by `train --overwrite` (process {holder}); until "
                f"its first checkpoint the old run is in {aside}: use that folder, or wait")
    return (f"{run.path} was being replaced by a `train --overwrite` that stopped; the old run "
            f"is in {aside} and cannot be moved back ({why}): move it back to {run.path}")
