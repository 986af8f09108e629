"""`resnette train`: a TrainConfig becomes a finished run folder.

    set up (run/setup.py's `training`): checks -> job -> run folder -> data -> model -> Learner
    fit (here: the schedule the config names)
    settle (leaving `training`): evaluation -> run folder settled -> job left

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
from pathlib import Path

from resnette.commands.evaluate import record_evaluation
from resnette.display import term
from resnette.run.config import TrainConfig
from resnette.run.drawing import draw_run
from resnette.run.folder import Run
from resnette.run.setup import Job, config_from_args, training
from resnette.train import distributed
from resnette.train.stops import TrainingInterrupted
from resnette.utils import ResnetteError

DRAW = ("background", "wait", "none")


def train(cfg: TrainConfig, resume: bool = False, overwrite: bool = False, quiet: bool = False,
          root: str | Path = "runs", draw: str = "background") -> Run:
    """Train as `cfg` says into a run folder; return the run.

    `draw`: the plots and report.html are drawn by a detached `resnette report` ("background",
    done a few seconds after this returns), before returning ("wait"), or not ("none").
    """
    if draw not in DRAW:
        raise ResnetteError(f"draw must be one of {', '.join(DRAW)}, got {draw!r}")
    with training(cfg, resume, overwrite, quiet, root, record=record_evaluation) as job:
        fit(job)
    if job.d.is_main and draw == "background":
        draw_later(job.run)
    elif job.d.is_main and draw == "wait":
        draw_run(job.run)
    return job.run


def fit(job: Job) -> None:
    """The config's schedule over its epochs; a stop (Ctrl-C, SIGTERM) says how to continue."""
    fits = {"one_cycle": job.learn.fit_one_cycle, "flat_cos": job.learn.fit_flat_cos,
            "constant": job.learn.fit}
    try:
        fits[job.cfg.schedule](job.cfg.epochs, job.lr, resume=job.resume, **job.schedule)
    except TrainingInterrupted as e:
        raise ResnetteError(f"{e.reason}; {job.run.checkpoint} is saved: continue with "
                            f"`resnette train --resume --run-dir {job.run.path}`") from None


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


def main(args: argparse.Namespace) -> None:
    if distributed.assigned_rank() != 0:   # a worker rank under torchrun: rank 0 saves the run
        with training(config_from_args(args), args.resume, args.overwrite, True, "runs",
                      record=record_evaluation) as job:
            fit(job)
        # Exit holding `job`: freeing its DDP reducer destroys gloo's group in a destructor that
        # holds the GIL while joining a gloo thread waiting for it (py-spy, 2 of 4 resumed
        # 2-rank runs hung there for ever, 2026-12-06). Everything is saved; nothing is left.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    run = train(config_from_args(args), resume=args.resume, overwrite=args.overwrite,
                quiet=args.quiet)
    if distributed.assigned_rank() == 0:   # under torchrun: once, not once per process
        shown = term(run.path, raw_bytes=True)
        print(f"run saved in {shown}  (next: resnette report {shown})")
