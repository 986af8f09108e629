"""From a TrainConfig to what training needs: a prepared run folder, the data, a Learner;
and `training`, the whole of `resnette train` but its fit.

The parts are used by `resnette train`, `lr-find`, `evaluate` and `reproduce`, so each builds
these one way. The work itself is done by resnette.data, resnette.models and resnette.train.
"""
from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from resnette.compiled import use_compiled_dir
from resnette.display import lr_suggestions, seconds, term
from resnette.files import check_inside_run
from resnette.measures import ACCURACY, TOP_K, TOP_K_K
from resnette.plots import save_pixels
from resnette.run.config import TrainConfig, eval_size, make_config, read_toml
from resnette.run.claim import Plan, check_resumable, plan_run, recover
from resnette.run.reading import read_config
from resnette.run.folder import Run, newest_default, resolve
from resnette.run.trained import check_arch, init_from, model_for
from resnette.train import distributed
from resnette.run.mlflow_log import Connection, MLflowLog, connect
from resnette.train.callbacks import Callback, CompileTime, SaveBest, TensorBoard, size_at
from resnette.train.evaluation import collect
from resnette.train.learner import Learner
from resnette.train.precision import resolve as resolve_compute
from resnette.train.settings import Settings
from resnette.utils import ResnetteError, seed_everything

__all__ = ["prepare", "open_run_for", "resume_config", "config_from_args", "check_arch",
           "build_data", "model_for", "schedule_options", "train_images", "peak_lr",
           "make_learner", "Job", "training", "elastic_resume"]


def prepare(path: str | Path, resume: bool = False, overwrite: bool = False) -> Run:
    """A run folder ready to be written without data (a Learner's `run_dir`), with the checks
    and the lock of `resnette train` (run/claim.py); the lock is released on return."""
    run = Run(Path(path))
    cfg = TrainConfig(run_dir=str(run.path))
    if resume and run.config.is_file():   # compared with itself: only the checkpoint is checked
        cfg = replace(make_config(read_toml(run.config)), run_dir=str(run.path))
    plan = plan_run(cfg, resume, overwrite, verb="resnette")
    try:
        plan.commit(config=False)
    except BaseException:
        plan.abandon()
        raise
    plan.settle()
    return run


def open_run_for(cfg: TrainConfig, resume: bool, overwrite: bool, root: str | Path = "runs",
                 verb: str = "resnette train") -> Plan:
    """The run folder `cfg` names, locked and checked, nothing written yet (run/claim.py)."""
    return plan_run(cfg, resume, overwrite, root, verb)


def resume_config(name: str | None, run_dir: str | None, flags: dict, root: str | Path = "runs"
                  ) -> TrainConfig:
    """On --resume the run's own config.toml is the base; flags still override it."""
    path, _ = resolve(name, run_dir, "", "", 0, root)
    run = Run(path)
    recover(run)   # an interrupted --overwrite of it: the old run back first
    if not run.config.is_file():
        raise ResnetteError(f"cannot resume: {run.config} does not exist; check --name/--run-dir")
    read_config(run.config)   # checked first: a damaged file is one line naming it
    return make_config(read_toml(run.config), flags)


def config_from_args(args) -> TrainConfig:
    """The config of `resnette train`/`lr-find`: the flags typed (argparse leaves the others
    out) over the --config file, or with --resume over the run's own config.toml."""
    flags = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    if getattr(args, "resume", False) and not args.config:
        return resume_config(flags.get("name"), flags.get("run_dir"), flags)
    return make_config(read_toml(args.config) if args.config else {}, flags)


def build_data(cfg: TrainConfig, device: str = "cpu", augment: bool | None = None,
               rank: int = 0, world_size: int = 1):
    """The DataLoaders the config describes (the loaders check the batch size against the data)."""
    from resnette.data import get_data
    on = cfg.augment if augment is None else augment
    kwargs = dict(size=cfg.size, presize=cfg.presize, bs=cfg.bs, seed=cfg.seed, device=device,
                  augment=cfg.aug if on else False, min_scale=cfg.min_scale,
                  rank=rank, world_size=world_size)
    if cfg.data_dir:
        kwargs["data_dir"] = cfg.data_dir
    if cfg.valid_pct is not None:  # None means "the dataset's own split": let it choose
        kwargs["valid_pct"] = cfg.valid_pct
    dls = get_data(cfg.data, **kwargs)
    dls.valid.size = eval_size(cfg)   # --test-size: validate at another size than the crops
    return dls


def schedule_options(cfg: TrainConfig) -> dict:
    """Keyword arguments of the fit_* method for the config's schedule."""
    if cfg.pct_start is None or cfg.schedule == "constant":
        return {}
    return {"pct_start": cfg.pct_start}


def train_images(dls) -> int:
    """The training set's size: every image, not only those in full batches."""
    return len(dls.train.items)


def progressive_schedule(sizes: list[int], epochs: int) -> list[tuple[int, int]]:
    """Sizes spread evenly over the epochs, as the Learner's (first epoch, size) pairs."""
    return [(round(i * epochs / len(sizes)), s) for i, s in enumerate(sizes)]


def sizes_per_epoch(cfg: TrainConfig) -> list[int]:
    """The training image size of each epoch, as the Learner trains them (progressive
    resizing, else --size throughout)."""
    schedule = progressive_schedule(cfg.progressive, cfg.epochs)
    return [size_at(schedule, cfg.size, e) for e in range(cfg.epochs)]


def peak_lr(cfg: TrainConfig) -> float:
    """cfg.lr, times the number of processes with --scale-lr (the linear scaling rule)."""
    return distributed.scale_lr(cfg.lr, distributed.world_size()) if cfg.scale_lr else cfg.lr


def make_learner(cfg: TrainConfig, dls, model, run: Run | None, quiet: bool,
                 callbacks: Iterable[Callback] = ()) -> Learner:
    """The Learner for `cfg`: every Settings field the config shares is taken as it is."""
    shared = {f.name: getattr(cfg, f.name) for f in fields(Settings) if hasattr(cfg, f.name)}
    shared.update(lr=peak_lr(cfg), progressive=progressive_schedule(cfg.progressive, cfg.epochs),
                  quiet=quiet)
    metrics = [ACCURACY, TOP_K] if dls.c > TOP_K_K else [ACCURACY]
    return Learner(dls, model, metrics=metrics, run_dir=run, callbacks=callbacks, **shared)


# ---- `resnette train`: one call sets a run up, leaving it settles the run ------------------
@dataclass
class Job:
    """A training run set up and ready to fit: what `training` hands the command."""
    cfg: TrainConfig          # as the run folder records it (a default name filled in)
    run: Run
    resume: bool              # continue from checkpoint.pt
    learn: Learner
    lr: float                 # the peak learning rate (--scale-lr: times the processes)
    schedule: dict            # the fit_* method's options (pct_start)
    d: distributed.Dist
    quiet: bool
    plan: Plan = field(repr=False)
    dls: Any = field(repr=False)


# writes a run's evaluation from (run, probs, targets, loader, names, split): the command's
Record = Callable[..., Any]


@contextlib.contextmanager
def training(cfg: TrainConfig, resume: bool = False, overwrite: bool = False,
             quiet: bool = False, root: str | Path = "runs", *, record: Record
             ) -> Iterator[Job]:
    """`resnette train` around its fit: entering sets the run up, leaving settles it.

    Entering: the checks that need nothing (architecture, precision/device), the job
    (torchrun's process group, if launched), the run folder claimed once (rank 0; every
    check before any write), the data (each machine's first process first), the model and
    the Learner. Leaving: the evaluation is recorded (rank 0; `record` writes it, e.g.
    commands/evaluate.py's record_evaluation), the folder settled, the job left. Leaving with
    an error: the folder goes back to what it was unless training began (run/claim.py).
    """
    check_arch(cfg.arch)
    compute = resolve_compute(cfg.precision, cfg.device)   # what cannot work here fails first
    d = distributed.init(str(compute.device))
    quiet = quiet or not d.is_main
    mlflow = connect(cfg.mlflow) if cfg.mlflow and d.is_main else None   # before any folder
    # every check before any write; the folder locked; --overwrite undone on failure
    plan = distributed.on_rank0(d, lambda: open_run_for(*elastic_resume(cfg, resume, root),
                                                        overwrite, root))
    try:
        job = _set_up(plan, d, quiet, mlflow)
        yield job
    except BaseException:
        if d.is_main:
            plan.abandon()
        raise
    _settle(job, record)
    # Not on failure: the other ranks may be gone, tearing the group down could wait on them,
    # and the launcher's SIGTERM would then cut the error message off.
    distributed.shutdown(d)


def _set_up(plan: Plan, d: distributed.Dist, quiet: bool, mlflow: Connection | None = None
            ) -> Job:
    cfg, run, resume = plan.cfg, plan.run, plan.resume
    callbacks = [SaveBest(run.best), *(plan.callbacks() if d.is_main else [])]
    if cfg.tensorboard:   # first: a missing package stops the run before any work
        check_inside_run(run.tensorboard / "events")   # a link out of the run: never written
        callbacks.append(TensorBoard(run.tensorboard))
    if mlflow is not None:
        callbacks.append(MLflowLog(mlflow, run, cfg))
    if cfg.compile:
        use_compiled_dir()   # inductor's caches under RESNETTE_HOME: a second run loads them
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
    lr = peak_lr(cfg)
    if distributed.in_job():
        _say(f"DDP: {d.world_size} process(es), batch {cfg.bs} each = {cfg.bs * d.world_size} "
             f"a step, peak lr {lr:g}{' (scaled)' if cfg.scale_lr else ''}", quiet)
    learn = make_learner(cfg, dls, model, run, quiet, callbacks=callbacks)
    if cfg.lr_find and not resume:
        found = learn.lr_find()
        _say(lr_suggestions(found.valley, found.steepest, found.minimum), quiet)
    _say(f"training {cfg.arch} on {cfg.data} ({train_images(dls)} train / {dls.valid.n} valid "
         f"images, {dls.c} classes) into {run.path}", quiet)
    return Job(cfg, run, resume, learn, lr, schedule_options(cfg), d, quiet, plan, dls)


def _settle(job: Job, record: Record) -> None:
    """The evaluation is the last epoch's validation (no second pass), except after a resume
    past the last epoch or under DDP (each rank holds only its shard of the validation set)."""
    learn, d = job.learn, job.d
    timer = next((cb for cb in learn.cbs if isinstance(cb, CompileTime)), None)
    if timer is not None and timer.seconds is not None:
        _say(f"torch.compile: the first training batch took {seconds(timer.seconds)} "
             f"(compiling); epoch {timer.epoch}'s time includes it, and the validation graph's",
             job.quiet)
    if not d.is_main:
        return
    outputs, valid = learn.valid_outputs, job.dls.valid
    if not outputs or d.is_distributed:
        valid = build_data(job.cfg, d.device).valid if d.is_distributed else valid
        outputs = collect(learn.eval_model().float(), valid, tta=False)
    record(job.run, *outputs, valid, job.dls.names, "valid")
    for cb in learn.cbs:
        if isinstance(cb, MLflowLog):   # evaluation.json, written just now
            learn.call_optional(cb, lambda _: cb.log_files(), "sending the run's files")
    job.plan.settle()


def elastic_resume(cfg: TrainConfig, resume: bool, root: str | Path = "runs"
                   ) -> tuple[TrainConfig, bool]:
    """After torchrun restarted the job, continue the run its earlier attempt started, as
    `--resume` would (one line says so): the same command line would otherwise start over (a
    default name) or be refused (a chosen one), losing every epoch done. The earlier attempt
    is the folder the command names (--name/--run-dir), or for a default name the newest
    `<data>-<arch>-<size>px[-N]`; it is resumed only when it was trained with the same
    settings (run/claim.py's check_resumable): a chosen folder holding another run is an
    error, as for --resume; a default-named one is left alone and a new run starts."""
    if resume or distributed.restart_count() < 1:
        return cfg, resume
    path, chosen = resolve(cfg.name, cfg.run_dir, cfg.data, cfg.arch, cfg.size, root)
    if not chosen:   # resolve() gave the first free default name; the attempt took the newest
        newest = newest_default(cfg.data, cfg.arch, cfg.size, root)
        if newest is None:
            return cfg, resume
        path = newest
    run = Run(path)
    if not run.exists():
        return cfg, resume
    try:
        check_resumable(run, cfg)
    except ResnetteError:
        if chosen:   # never over another run's work: the error --resume would give
            raise
        return cfg, resume   # another run under the default name: left alone
    print(f"elastic restart {distributed.restart_count()}: continuing {term(run.path)} (as with "
          "--resume)", file=sys.stderr, flush=True)
    return (cfg if chosen else replace(cfg, name=path.name)), True


def _save_batch(run: Run, dls, n: int = 16) -> None:
    """The pixels of the first augmented batch (what `show_batch` draws), for the plot."""
    loader = dls.train
    x, y = loader.batch(loader.order(0), 0, 0)
    n = min(n, len(y))
    save_pixels(run.pixels("batch"), loader.decode_batch(x[:n]).numpy(),
                [term(dls.names[int(i)]) for i in y[:n]])   # one line each, escaped


def _say(msg: str, quiet: bool) -> None:
    if not quiet:   # one line: the data's and run's names escaped (resnette.display.term)
        print(term(msg), flush=True)
