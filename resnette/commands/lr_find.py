"""`resnette lr-find`: the learning rate finder alone, its plot saved into a run folder."""
from __future__ import annotations

import argparse
from pathlib import Path

from resnette.display import lr_suggestions
from resnette.run.config import TrainConfig
from resnette.run.folder import Run
from resnette.run.setup import build_data, check_arch, config_from_args, make_learner, model_for, open_run_for
from resnette.train import distributed
from resnette.train.lr_find import LRFindResult
from resnette.train.precision import resolve
from resnette.utils import ResnetteError, seed_everything


def lr_find_run(cfg: TrainConfig, overwrite: bool = False, quiet: bool = False,
                root: str | Path = "runs") -> tuple[Run, LRFindResult]:
    """The sweep for `cfg`'s data and model; the plot lands in the run's plots folder. The run
    folder is written only once the data is built (run/claim.py), and locked meanwhile."""
    check_arch(cfg.arch)
    if distributed.launched():
        raise ResnetteError("`resnette lr-find` runs in one process; run it without torchrun "
                            "(or use `resnette train --lr-find` under torchrun)")
    device = resolve(cfg.precision, cfg.device).device
    plan = open_run_for(cfg, False, overwrite, root, verb="resnette lr-find")
    cfg, run = plan.cfg, plan.run
    try:
        seed_everything(cfg.seed)
        dls = build_data(cfg, str(device))
        model = model_for(cfg, dls.c, dls.channels)
        plan.commit(dls)
        found = make_learner(cfg, dls, model, run, quiet).lr_find()
    except BaseException:
        plan.abandon()
        raise
    plan.settle()
    return run, found


def main(args: argparse.Namespace) -> None:
    run, found = lr_find_run(config_from_args(args), overwrite=args.overwrite, quiet=args.quiet)
    print(lr_suggestions(found.valley, found.steepest, found.minimum))
    print(f"plot: {run.plot('lr_find')}")
