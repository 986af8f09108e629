"""`resnette train`: a TrainConfig becomes a finished run folder.

    data -> model (optionally initialised from another run) -> Learner -> fit -> evaluation

Under torchrun every process runs this: rank 0 picks the run folder and writes it, each
machine's local rank 0 prepares the data first, all ranks train (docs/DISTRIBUTED.md).

Fast to start and to finish (issue 13): the evaluation is the last epoch's validation, kept
by the Learner, not a second pass over the valid set; the plots are drawn from the run
folder's files by `resnette report`, which training starts as a detached background process
(`draw="background"`): the command returns as soon as the numbers are saved, and a report
that fails or never runs loses nothing (`resnette report RUN` draws everything again).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from resnette import plots
from resnette.commands.evaluate import evaluate_into, record_evaluation
from resnette.run.config import TrainConfig
from resnette.run.drawing import draw_run
from resnette.run.claim import check_resumable
from resnette.run.folder import Run, default_name, resolve as resolve_folder
from resnette.run.setup import (build_data, check_arch, config_from_args, make_learner,
                                model_for, open_run_for, peak_lr, schedule_options,
                                train_images)
from resnette.run.trained import init_from
from resnette.train import distributed
from resnette.train.callbacks import CompileTime, SaveBest, TensorBoard
from resnette.train.precision import resolve
from resnette.train.stops import TrainingInterrupted
from resnette.utils import ResnetteError, seed_everything


DRAW = ("background", "wait", "none")


def train(cfg: TrainConfig, resume: bool = False, overwrite: bool = False, quiet: bool = False,
          root: str | Path = "runs", draw: str = "background") -> Run:
    """Train as `cfg` says into a run folder; return the run.

    `draw`: the plots and report.html are drawn by a detached `resnette report` ("background",
    done a few seconds after this returns), before returning ("wait"), or not ("none").
    """
    if draw not in DRAW:
        raise ResnetteError(f"draw must be one of {', '.join(DRAW)}, got {draw!r}")
    check_arch(cfg.arch)
    compute = resolve(cfg.precision, cfg.device)   # a choice that cannot work fails here, first
    d = distributed.init(str(compute.device))
    run = _train(cfg, d, resume, overwrite, quiet or not d.is_main, root)
    # Not in a `finally`: after a failure the other ranks may be gone, tearing the group down
    # could wait on them, and the launcher's SIGTERM would then cut the error message off.
    distributed.shutdown()
    if d.is_main and draw == "background":
        draw_later(run)
    elif d.is_main and draw == "wait":
        draw_run(run)
    return run


def draw_later(run: Run) -> None:
    """`resnette report RUN` in a detached process (its own session, no terminal, output to
    nothing): it draws the plots and report.html from the files already saved, so its failure,
    or the machine going away first, cannot lose anything of the run."""
    try:
        subprocess.Popen([sys.executable, "-m", "resnette", "report", str(run.path)],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
    except OSError:   # no process to spare: the plots wait for `resnette report`
        pass


def restart_count() -> int:
    """How many times torchrun restarted this job (`--max-restarts`); 0 outside torchrun."""
    try:
        return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
    except ValueError:
        return 0


def elastic_resume(cfg: TrainConfig, resume: bool, root: str | Path = "runs"
                   ) -> tuple[TrainConfig, bool]:
    """After torchrun restarted the job, continue the run its earlier attempt started, as
    `--resume` would (one line says so): the same command line would otherwise start over (a
    default name) or be refused (a chosen one), losing every epoch done. The earlier attempt
    is the folder the command names (--name/--run-dir), or for a default name the newest
    `<data>-<arch>-<size>px[-N]`; it is resumed only when it was trained with the same
    settings (run/claim.py's check_resumable): a chosen folder holding another run is an
    error, as for --resume; a default-named one is left alone and a new run starts."""
    if resume or restart_count() < 1:
        return cfg, resume
    path, chosen = resolve_folder(cfg.name, cfg.run_dir, cfg.data, cfg.arch, cfg.size, root)
    if not chosen:   # resolve() gave the first free default name; the attempt took the one before
        base = Path(root) / default_name(cfg.data, cfg.arch, cfg.size)
        if path == base:
            return cfg, resume
        n = int(path.name.rsplit("-", 1)[1])
        path = base if n == 2 else base.with_name(f"{base.name}-{n - 1}")
    run = Run(path)
    if not run.exists():
        return cfg, resume
    try:
        check_resumable(run, cfg)
    except ResnetteError:
        if chosen:   # never over another run's work: the error --resume would give
            raise
        return cfg, resume   # another run under the default name: left alone
    print(f"elastic restart {restart_count()}: continuing {run.path} (as with --resume)",
          file=sys.stderr, flush=True)
    return (cfg if chosen else replace(cfg, name=path.name)), True


def _train(cfg: TrainConfig, d: distributed.Dist, resume: bool, overwrite: bool, quiet: bool,
           root: str | Path) -> Run:
    # every check before any write; the folder locked; --overwrite undone on failure (run/claim.py)
    plan = distributed.on_rank0(d, lambda: open_run_for(*elastic_resume(cfg, resume, root),
                                                        overwrite, root))
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
    timer = next((cb for cb in learn.cbs if isinstance(cb, CompileTime)), None)
    if timer is not None and timer.seconds is not None:
        _say(f"torch.compile: the first training batch took {timer.seconds:.1f} s (compiling); "
             f"epoch {timer.epoch}'s time includes it, and the validation graph's", quiet)
    if d.is_main:
        outputs = getattr(learn, "valid_outputs", None)
        if outputs and not d.is_distributed:   # the last epoch's validation: no second pass
            record_evaluation(run, *outputs, dls.valid, dls.names, split="valid")
        else:   # resumed after the last epoch, or under DDP (this rank holds only its shard)
            if d.is_distributed:
                dls = build_data(cfg, d.device)
            evaluate_into(run, learn.eval_model(), dls.valid, dls.names, split="valid", draw=False)
        plan.settle()
    return run


def _start(cfg: TrainConfig, run: Run, resume: bool, quiet: bool, d: distributed.Dist, plan):
    callbacks = [SaveBest(run.best), *(plan.callbacks() if d.is_main else [])]
    if cfg.tensorboard:   # first: a missing package stops the run before any work
        callbacks.append(TensorBoard(run.tensorboard))
    if cfg.compile:
        callbacks.append(CompileTime())
    seed_everything(cfg.seed)
    dls = distributed.local_rank0_first(d, lambda: build_data(cfg, d.device, rank=d.rank,
                                                              world_size=d.world_size))
    model = model_for(cfg, dls.c, dls.channels)
    if cfg.init_from and not resume:   # read before --overwrite moves a run aside
        _say(init_from(model, cfg.init_from, cfg.arch), quiet)
    if d.is_main:   # every check passed: config.toml and classes.json are the first writes
        plan.commit(dls)
        _save_batch(run, dls)
    if cfg.sync_bn:
        model = distributed.sync_batchnorm(model, d.device, d.world_size)
    if distributed.in_job():
        _say(f"DDP: {d.world_size} process(es), batch {cfg.bs} each = {cfg.bs * d.world_size} "
             f"a step, peak lr {peak_lr(cfg):g}{' (scaled)' if cfg.scale_lr else ''}", quiet)
    learn = make_learner(cfg, dls, model, run, quiet, callbacks=callbacks)
    if cfg.lr_find and not resume:
        found = learn.lr_find()
        _say(f"lr_find: valley {found.valley:.2e}, steepest {found.steepest:.2e}, "
             f"minimum/10 {found.minimum:.2e}", quiet)
    _say(f"training {cfg.arch} on {cfg.data} ({train_images(dls)} train / {dls.valid.n} valid "
         f"images, {dls.c} classes) into {run.path}", quiet)
    return learn, dls


def _save_batch(run: Run, dls, n: int = 16) -> None:
    """The pixels of the first augmented batch (what `show_batch` draws), for the plot."""
    loader = dls.train
    x, y = loader.batch(loader.order(0), 0, 0)
    n = min(n, len(y))
    plots.save_pixels(run.pixels("batch"), loader.decode_batch(x[:n]).numpy(),
                      [dls.names[int(i)] for i in y[:n]])


def _say(msg: str, quiet: bool) -> None:
    if not quiet:
        print(msg, flush=True)


def main(args: argparse.Namespace) -> None:
    run = train(config_from_args(args), resume=args.resume, overwrite=args.overwrite, quiet=args.quiet)
    if os.environ.get("RANK", "0") == "0":  # under torchrun: once, not once per process
        print(f"run saved in {run.path}  (next: resnette report {run.path})")
