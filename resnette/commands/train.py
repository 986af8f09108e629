"""`resnette train`: a TrainConfig becomes a finished run folder.

    data -> model (optionally initialised from another run) -> Learner -> fit -> evaluation

Under torchrun every process runs this: rank 0 picks the run folder and writes it, each
machine's local rank 0 prepares the data first, all ranks train (docs/DISTRIBUTED.md).
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from resnette import plots
from resnette.commands.evaluate import evaluate_into
from resnette.run.config import TrainConfig
from resnette.run.folder import Run, read_metrics
from resnette.run.setup import (build_data, check_arch, config_from_args, make_learner,
                                model_for, open_run_for, peak_lr, schedule_options,
                                train_images)
from resnette.run.trained import init_from
from resnette.train import distributed
from resnette.train.callbacks import SaveBest
from resnette.train.precision import resolve
from resnette.train.stops import TrainingInterrupted
from resnette.utils import ResnetteError, seed_everything


def train(cfg: TrainConfig, resume: bool = False, overwrite: bool = False, quiet: bool = False,
          root: str | Path = "runs") -> Run:
    """Train as `cfg` says into a run folder; return the run."""
    check_arch(cfg.arch)
    compute = resolve(cfg.precision, cfg.device)   # a choice that cannot work fails here, first
    d = distributed.init(str(compute.device))
    run = _train(cfg, d, resume, overwrite, quiet or not d.is_main, root)
    # Not in a `finally`: after a failure the other ranks may be gone, tearing the group down
    # could wait on them, and the launcher's SIGTERM would then cut the error message off.
    distributed.shutdown()
    return run


def _train(cfg: TrainConfig, d: distributed.Dist, resume: bool, overwrite: bool, quiet: bool,
           root: str | Path) -> Run:
    # every check before any write; the folder locked; --overwrite undone on failure (run/claim.py)
    plan = distributed.on_rank0(d, lambda: open_run_for(cfg, resume, overwrite, root))
    cfg, run, resume = plan.cfg, plan.run, plan.resume
    try:
        learn, dls = _start(cfg, run, resume, quiet, d, plan)
        fit = {"one_cycle": learn.fit_one_cycle, "flat_cos": learn.fit_flat_cos,
               "constant": learn.fit}[cfg.schedule]
        try:
            fit(cfg.epochs, peak_lr(cfg), resume=resume, **schedule_options(cfg))
        except TrainingInterrupted as e:
            raise ResnetteError(f"{e.reason}; {run.checkpoint} is saved: continue with "
                                f"`resnette train --resume --run-dir {run.path}`") from None
    except BaseException:
        if d.is_main:
            plan.abandon()
        raise
    if d.is_main:
        if d.is_distributed:  # this rank's loader holds only its shard of the valid set
            dls = build_data(cfg, d.device)
        plots.plot_curves(read_metrics(run.metrics), run.plot("curves"))
        evaluate_into(run, learn.eval_model(), dls.valid, dls.names, split="valid")
        plan.settle()
    return run


def _start(cfg: TrainConfig, run: Run, resume: bool, quiet: bool, d: distributed.Dist, plan):
    seed_everything(cfg.seed)
    dls = distributed.local_rank0_first(d, lambda: build_data(cfg, d.device, rank=d.rank,
                                                              world_size=d.world_size))
    model = model_for(cfg, dls.c, dls.channels)
    if cfg.init_from and not resume:   # read before --overwrite moves a run aside
        _say(init_from(model, cfg.init_from, cfg.arch), quiet)
    if d.is_main:   # every check passed: config.toml and classes.json are the first writes
        plan.commit(dls)
        dls.show_batch(run.plot("batch"))
    if cfg.sync_bn:
        model = distributed.sync_batchnorm(model, d.device, d.world_size)
    if distributed.in_job():
        _say(f"DDP: {d.world_size} process(es), batch {cfg.bs} each = {cfg.bs * d.world_size} "
             f"a step, peak lr {peak_lr(cfg):g}{' (scaled)' if cfg.scale_lr else ''}", quiet)
    learn = make_learner(cfg, dls, model, run, quiet,
                         callbacks=[SaveBest(run.best), *(plan.callbacks() if d.is_main else [])])
    if cfg.lr_find and not resume:
        found = learn.lr_find()
        _say(f"lr_find: valley {found.valley:.2e}, steepest {found.steepest:.2e}, "
             f"minimum/10 {found.minimum:.2e}", quiet)
    _say(f"training {cfg.arch} on {cfg.data} ({train_images(dls)} train / {dls.valid.n} valid "
         f"images, {dls.c} classes) into {run.path}", quiet)
    return learn, dls


def _say(msg: str, quiet: bool) -> None:
    if not quiet:
        print(msg, flush=True)


def main(args: argparse.Namespace) -> None:
    run = train(config_from_args(args), resume=args.resume, overwrite=args.overwrite, quiet=args.quiet)
    if os.environ.get("RANK", "0") == "0":  # under torchrun: once, not once per process
        print(f"run saved in {run.path}  (next: resnette report {run.path})")
