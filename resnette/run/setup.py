"""From a TrainConfig to what training needs: a prepared run folder, the data, a Learner.

Used by `resnette train`, `lr-find`, `evaluate` and `reproduce`, so each builds these one
way. The work itself is done by resnette.data, resnette.models and resnette.train.
"""
from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path
from typing import Iterable

from torch import nn

from resnette.models import create_model, list_models
from resnette.run.config import TrainConfig, eval_size, make_config, read_toml
from resnette.run.claim import Plan, plan_run
from resnette.run.folder import Run, resolve
from resnette.train import distributed
from resnette.train.callbacks import Callback
from resnette.train.learner import Learner
from resnette.train.settings import Settings
from resnette.utils import ResnetteError


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
    if not run.config.is_file():
        raise ResnetteError(f"cannot resume: {run.config} does not exist; check --name/--run-dir")
    return make_config(read_toml(run.config), flags)


def config_from_args(args) -> TrainConfig:
    """The config of `resnette train`/`lr-find`: the flags typed (argparse leaves the others
    out) over the --config file, or with --resume over the run's own config.toml."""
    flags = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    if getattr(args, "resume", False) and not args.config:
        return resume_config(flags.get("name"), flags.get("run_dir"), flags)
    return make_config(read_toml(args.config) if args.config else {}, flags)


def check_arch(arch: str) -> None:
    """Fail on a misspelt --arch before any data is downloaded or decoded."""
    if arch not in list_models():
        raise ResnetteError(f"unknown architecture {arch!r}; choose one of: " + ", ".join(list_models()))


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


def model_for(cfg: TrainConfig, n_out: int, c_in: int = 3) -> nn.Module:
    """The config's architecture with its options (--act, --sa, --blur). Only options that
    differ from the default are passed, so a net without self-attention or blur-pool options
    is never handed them (and says so in one line if the user asks for them)."""
    opts: dict = {"act": cfg.act} if cfg.act != "relu" else {}
    opts.update({k: True for k in ("sa", "blur") if getattr(cfg, k)})
    return create_model(cfg.arch, n_out=n_out, c_in=c_in, **opts)


def schedule_options(cfg: TrainConfig) -> dict:
    """Keyword arguments of the fit_* method for the config's schedule."""
    return {} if cfg.pct_start is None or cfg.schedule == "constant" else {"pct_start": cfg.pct_start}


def train_images(dls) -> int:
    """The training set's size: every image, not only those in full batches."""
    return len(dls.train.items)


def progressive_schedule(sizes: list[int], epochs: int) -> list[tuple[int, int]]:
    """Sizes spread evenly over the epochs, as the Learner's (first epoch, size) pairs."""
    return [(round(i * epochs / len(sizes)), s) for i, s in enumerate(sizes)]


def peak_lr(cfg: TrainConfig) -> float:
    """cfg.lr, times the number of processes with --scale-lr (the linear scaling rule)."""
    return distributed.scale_lr(cfg.lr, distributed.world_size()) if cfg.scale_lr else cfg.lr


def make_learner(cfg: TrainConfig, dls, model, run: Run | None, quiet: bool,
                 callbacks: Iterable[Callback] = ()) -> Learner:
    """The Learner for `cfg`: every Settings field the config shares is taken as it is."""
    shared = {f.name: getattr(cfg, f.name) for f in fields(Settings) if hasattr(cfg, f.name)}
    shared.update(lr=peak_lr(cfg), progressive=progressive_schedule(cfg.progressive, cfg.epochs),
                  quiet=quiet)
    metrics = ["accuracy", "top_k_accuracy"] if dls.c > 5 else ["accuracy"]
    return Learner(dls, model, metrics=metrics, run_dir=run, callbacks=callbacks, **shared)
