"""`resnette lr-find`: the learning rate finder alone. It writes one file, its plot, and never
claims a run folder (nor a run number) for it:

- `--name`/`--run-dir` naming an existing run: the run it is for. Its config.toml is the
  base (flags override it) and the plot goes to its plots/lr_find.png.
- otherwise: `--out FILE`, by default `lr_find-<name>.png` in the current folder (the name
  is --name, or the default run name `<data>-<arch>-<size>px`).
"""
from __future__ import annotations

import argparse
import tempfile
from dataclasses import fields
from pathlib import Path
from typing import Any

from resnette.display import lr_suggestions, term
from resnette.run.config import TrainConfig, make_config, read_toml
from resnette.run.folder import Run, default_name, resolve
from resnette.run.lock import lock_run
from resnette.run.outputs import guard_output
from resnette.run.setup import build_data, check_arch, make_learner, model_for
from resnette.train import distributed
from resnette.train.precision import resolve as resolve_device
from resnette.utils import ResnetteError, seed_everything


def lr_find_run(cfg: TrainConfig, out: str | Path | None = None, quiet: bool = False,
                root: str | Path = "runs") -> tuple[Path, Any]:
    """The sweep for `cfg`'s data and model; returns where the plot went, and the result."""
    check_arch(cfg.arch)
    if distributed.launched():
        raise ResnetteError("`resnette lr-find` runs in one process; run it without torchrun "
                            "(or use `resnette train --lr-find` under torchrun)")
    run = existing_run(cfg, root)
    if run is None:
        name = cfg.name or default_name(cfg.data, cfg.arch, cfg.size)
        plot = Path(out) if out else Path(f"lr_find-{name}.png")
        check_plot_place(plot)   # before the sweep: minutes of work, then nowhere to put it
        return plot, _sweep(cfg, plot, quiet)
    if out:
        raise ResnetteError(f"{run.path} is a run: its plot goes to {run.plot('lr_find')}; "
                            "drop --out, or drop --name/--run-dir to write the plot elsewhere")
    # the run's own config, the flags over it; shared lock: never beside its training
    with lock_run(run.path, "resnette lr-find", "pass --out to write the plot elsewhere",
                  shared=True):
        return run.plot("lr_find"), _sweep(cfg, run.plot("lr_find"), quiet)


def check_plot_place(plot: Path) -> None:
    """One line now, not after the sweep, when the plot could not be written where asked: a
    read-only place, or a run's own file (`--out runs/x/config.toml`)."""
    guard_output(plot, ("lr_find*.png",), "lr-find", makes_parents=True)
    folder = plot.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent   # missing folders are made when the plot is written
    try:
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as e:
        raise ResnetteError(f"cannot write {plot} ({e.strerror}); pass --out with a "
                            "writable place") from None


def existing_run(cfg: TrainConfig, root: str | Path = "runs") -> Run | None:
    """The run `--name`/`--run-dir` names when it exists (has a config.toml), else None."""
    if not (cfg.name or cfg.run_dir):
        return None
    run = Run(resolve(cfg.name, cfg.run_dir, cfg.data, cfg.arch, cfg.size, root)[0])
    return run if run.config.is_file() else None


def _sweep(cfg: TrainConfig, plot: Path, quiet: bool) -> Any:   # lr_find's suggestions
    device = resolve_device(cfg.precision, cfg.device).device
    seed_everything(cfg.seed)
    dls = build_data(cfg, str(device))
    model = model_for(cfg, dls.c, dls.channels)
    return make_learner(cfg, dls, model, None, quiet).lr_find(plot=plot)


def config_for(args: argparse.Namespace, root: str | Path = "runs") -> TrainConfig:
    """The flags over --config, or over the named run's own config.toml when it exists."""
    flags = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    base = read_toml(args.config) if args.config else {}
    cfg = make_config(base, flags)
    run = None if args.config else existing_run(cfg, root)
    return make_config(read_toml(run.config), flags) if run is not None else cfg


def main(args: argparse.Namespace) -> None:
    plot, found = lr_find_run(config_for(args), out=args.out, quiet=args.quiet)
    print(lr_suggestions(found.valley, found.steepest, found.minimum))
    print(f"plot: {term(plot, raw_bytes=True)}")
