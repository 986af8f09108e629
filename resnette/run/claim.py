"""Claiming a run folder: every check first, then the writes, and a way back on failure.

A command changes a run folder only when it will succeed. `plan_run` takes the folder's lock
(one writer per run, run/lock.py) and does every check that needs no data: --resume's
checkpoint and settings, --overwrite's target. The caller then builds the data and the
model (which checks the batch size against the data and reads --init-from's weights), and
only then `Plan.commit(dls)` writes: the run marker, config.toml, classes.json. `--overwrite`
moves the old run aside (`.<name>.replaced-<pid>`) at commit and deletes it at the new run's
first checkpoint; a failure before (`abandon`) or a kill -9 (`recover`) puts it back.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, fields, replace
from pathlib import Path

from resnette.run.config import TrainConfig, save_config
from resnette.run.folder import Run, open_run, resolve, save_classes
from resnette.run.reading import nfc, read_classes, read_config
from resnette.run.aside import ASIDE_MARKER, has_weights, recover, taken
from resnette.run.lock import RunLock, lock_run
from resnette.train.callbacks import Callback
from resnette.train.checkpoints import load_checkpoint
from resnette.files import RUN_MARKER, is_run_folder, make_folder, remove_temporary, write_marker
from resnette.utils import NAME_MAX, ResnetteError, long_name

# What `--resume` may change: where things are and how fast they run, never what is learned.
RESUME_MAY_CHANGE = frozenset({
    "data", "data_dir", "name", "run_dir", "init_from", "lr_find", "device", "precision",
    "channels_last", "compile", "bs", "sync_bn", "valid_every", "tensorboard", "test_size", "mlflow"})

WRITE_ADVICE = "make it writable, or copy the run to a writable place"


def as_used(cfg: TrainConfig) -> TrainConfig:
    """The config as the run really trains: "auto" precision, device and memory format
    resolved for this machine (config.toml records what was used, not what was asked)."""
    from resnette.train.precision import resolve
    compute = resolve(cfg.precision, cfg.device, cfg.channels_last)
    return replace(cfg, precision=compute.precision, device=str(compute.device),
                   channels_last=compute.channels_last)


def check_resumable(run: Run, cfg: TrainConfig) -> None:
    """Refuse a --resume whose settings differ from the run's in what the model learns."""
    saved = read_config(run.config)
    for f in fields(TrainConfig):
        old, new = getattr(saved, f.name), getattr(cfg, f.name)
        if f.name not in RESUME_MAY_CHANGE and old != new:
            raise ResnetteError(
                f"cannot resume {run.path}: it was trained with {f.name} = {old!r}, not {new!r}; "
                "--resume continues a run as it was started. To train differently, start a new run "
                f"from its weights: --init-from {run.path} --name NEW")


@dataclass
class Plan:
    """A locked run folder and what committing it will do (see the module's docstring)."""
    cfg: TrainConfig
    run: Run
    resume: bool                  # continue from checkpoint.pt
    verb: str
    lock: RunLock | None = None
    replace: bool = False         # --overwrite: the old run is moved aside at commit
    created: bool = False         # the folder was made by this command
    restart: bool = False         # --resume of a run stopped before its first checkpoint
    aside: Path | None = None
    old_lock: RunLock | None = None
    committed: bool = False

    def commit(self, dls=None, config: bool = True) -> None:
        """The checks passed and the data is built: now the run folder changes."""
        run = self.run
        if self.resume and dls is not None and run.classes.is_file():
            vocab = read_classes(run.classes)["vocab"]
            if nfc(dls.vocab) != nfc(vocab):
                raise ResnetteError(f"cannot resume {run.path}: the data's classes "
                                    f"({', '.join(dls.vocab[:5])}, ...) are not the run's "
                                    f"({', '.join(vocab[:5])}, ...) in {run.classes}; give "
                                    "the same --data")
        try:
            if self.replace:
                aside = run.path.with_name(f".{run.name}.replaced-{os.getpid()}")
                write_marker(run.path, ASIDE_MARKER, f"{os.getpid()}\n")   # recover's proof
                os.rename(run.path, aside)
                self.aside, self.old_lock = aside, self.lock
                self.old_lock.moved(aside)   # type: ignore[union-attr]
                run.path.mkdir()
                self.lock = lock_run(run.path, self.verb)
            write_marker(run.path, RUN_MARKER, "resnette run folder\n")   # now it is a run
            for stale in run.path.glob(".*.tmp"):   # atomic_write's leftovers from a killed process
                stale.unlink(missing_ok=True)
            make_folder(run.plots, "the run's plots")
        except OSError as e:
            raise ResnetteError(f"cannot write to run folder {run.path} ({e.strerror}); "
                                "choose another --run-dir") from None
        if config:
            save_config(as_used(self.cfg), run.config)
        if dls is not None:
            save_classes(run, dls.vocab, dls.names, dls.mean, dls.std, dls.channels)
        self.committed = True

    def drop_replaced(self) -> None:
        """The new run has started cleanly: the run it replaces goes."""
        if self.aside is not None:
            remove_temporary(self.aside)   # the old run, moved aside by this process
            self.aside = None
        if self.old_lock is not None:
            self.old_lock.release()
            self.old_lock = None

    def settle(self) -> None:   # the command succeeded
        self.drop_replaced()
        if self.lock is not None:
            self.lock.release()

    def abandon(self) -> None:
        """The command failed: the folder goes back to what it was, unless training began (a
        checkpoint exists: the error tells the user to --resume it)."""
        run = self.run
        started = not self.resume and not self.restart and run.checkpoint.is_file()
        if self.resume or self.restart or started:
            if started:
                self.drop_replaced()
        elif self.aside is not None:
            remove_temporary(run.path)   # the new folder this process made at commit
            os.rename(self.aside, run.path)
            (run.path / ASIDE_MARKER).unlink(missing_ok=True)   # in place: byte for byte as before
            self.old_lock.moved(run.path)   # type: ignore[union-attr]
            self.aside = None
        elif not self.replace:            # a new run that never started leaves nothing behind
            remove_temporary(run.path)   # it held nothing but what this command wrote
            if not self.created:
                run.path.mkdir(exist_ok=True)
        for lock in (self.old_lock, self.lock):
            if lock is not None:
                lock.release()

    def callbacks(self) -> list[Callback]: return [DropReplaced(self)]


class DropReplaced(Callback):
    """After each epoch's checkpoint: --overwrite's old run is no longer needed."""

    def __init__(self, plan: Plan) -> None: self.plan = plan

    def after_epoch(self, learn) -> None:
        if self.plan.aside is not None and self.plan.run.checkpoint.is_file():
            self.plan.drop_replaced()


def plan_run(cfg: TrainConfig, resume: bool, overwrite: bool, root: str | Path = "runs",
             verb: str = "resnette train") -> Plan:
    """Lock the run folder `cfg` names and check everything that needs no data; write nothing
    but the lock file (removed again on refusal)."""
    path, chosen = resolve(cfg.name, cfg.run_dir, cfg.data, cfg.arch, cfg.size, root)
    path = Path(os.path.abspath(path)) if path.name in ("", "..") else path   # `--run-dir .`
    _check_name_length(path, cfg, NAME_MAX if resume else MAX_RUN_NAME)
    if resume and not chosen:
        raise ResnetteError("--resume needs the run to continue: pass --name NAME or --run-dir DIR")
    run = Run(path)
    if path.exists() and not path.is_dir():
        raise ResnetteError(f"{path} is a file, not a run folder; choose another --name/--run-dir")
    cfg = _named(cfg, run)
    recover(run)
    created = not path.exists()
    if created and not resume:
        try:
            path.mkdir(parents=True)
        except OSError as e:
            raise ResnetteError(f"cannot write to run folder {path} ({e.strerror}); "
                                "choose another --run-dir") from None
    plan = Plan(cfg, run, resume, verb, created=created and not resume)
    try:
        advice = ("make it writable to continue the run there" if resume else
                  "choose another --run-dir")
        plan.lock = lock_run(path, verb, advice) if path.is_dir() else None
        _check(plan, overwrite)
    except BaseException:
        if plan.lock is not None:
            plan.lock.release()
        if plan.created:
            remove_temporary(path)
        raise
    return plan


MAX_RUN_NAME = NAME_MAX - len("..replaced-") - 7   # --overwrite's `.<name>.replaced-<pid>`


def _check_name_length(path: Path, cfg: TrainConfig, most: int) -> None:
    """A name too long for the file system (or --overwrite's aside) is said, blaming its flag."""
    flag = ("--name" if cfg.name else "--run-dir" if cfg.run_dir else
            "--name (the default name is made from --data)")
    part = long_name(path.parent)
    if part is not None:
        raise ResnetteError(f"--run-dir has a folder name of {len(os.fsencode(part))} bytes "
                            f"({part[:40]!r}...), over the {NAME_MAX} a name may have; shorten it")
    if (n := len(os.fsencode(path.name))) > most:
        raise ResnetteError(f"the run name {path.name[:40]!r}... is {n} bytes; a run name may "
                            f"have {MAX_RUN_NAME} (a file name {NAME_MAX}, and --overwrite keeps "
                            f"the old run as .<name>.replaced-<pid> until the new one saves); "
                            f"give a shorter {flag}")


def _named(cfg: TrainConfig, run: Run) -> TrainConfig:
    return replace(cfg, name=run.name)


def _check(plan: Plan, overwrite: bool) -> None:
    run = plan.run
    data = Path(os.path.expanduser(plan.cfg.data))
    if data.is_dir() and run.path.resolve().is_relative_to(data.resolve()):
        raise ResnetteError(f"run folder {run.path} is inside the data folder {data}: its files "
                            "would become part of the data; choose a --run-dir outside it")
    if plan.resume:
        if run.checkpoint.is_file():
            load_checkpoint(run.checkpoint)   # damaged or unsafe: said before anything is touched
            check_resumable(run, plan.cfg)
            return
        if run.exists() and not has_weights(run):   # stopped before its first checkpoint
            plan.resume, plan.restart = False, True
            print(f"{run.path} has no checkpoint yet (it stopped before its first epoch ended): "
                  "starting it from epoch 0 with its config", file=sys.stderr, flush=True)
            return
        raise ResnetteError(f"cannot resume: {run.checkpoint} does not exist; "
                            "start a new run without --resume")
    if not taken(run):
        return
    if not is_run_folder(run.path):   # one rule (files/owned.py): never a folder of photos
        raise ResnetteError(f"{run.path} is not empty and is not a resnette run folder (no "
                            f"{RUN_MARKER} in it); refusing to {'overwrite' if overwrite else 'use'} "
                            "it; choose another --name/--run-dir")
    if overwrite and Path.cwd().resolve().is_relative_to(run.path.resolve()):
        raise ResnetteError(f"--overwrite cannot replace {run.path}: the current folder is in it; "
                            "run the command from outside that run folder")
    if not overwrite:
        stub = "" if has_weights(run) else " (it stopped before its first checkpoint)"
        raise ResnetteError(f"run folder {run.path} already exists{stub}; pass --resume to "
                            "continue it, --overwrite to replace it, or choose --name")
    plan.replace = True


def open_existing(path: str | Path) -> Run:
    """An existing run folder for a command that reads it (predict, evaluate, export, report,
    --init-from): an interrupted --overwrite is undone first (`recover`)."""
    run = Run(Path(path))
    recover(run, strict=True)
    return open_run(run.path)
