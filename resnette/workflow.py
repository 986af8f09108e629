"""From a TrainConfig to a finished run folder: what `resnette train` and `lr-find` do.

    data -> model (optionally initialised from another run) -> Learner -> fit -> plots

Everything here is glue between the layers; the work itself is done by resnette.data,
resnette.models and resnette.train. The run folder's layout lives in resnette.runs.
"""
from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import torch

from resnette import plots, runs
from resnette.bench import has_fast_bf16
from resnette.config import TrainConfig, make_config, read_toml, save_config
from resnette.models import create_model, list_models
from resnette.predict import collect, summarize, top_losses
from resnette.train import distributed
from resnette.train.checkpoints import save_weights
from resnette.train.learner import Learner, TrainingInterrupted
from resnette.trained import init_from
from resnette.utils import ResnetteError, seed_everything


def pick_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ResnetteError(f"--device {name}: no CUDA GPU is visible; use --device cpu")
    return name


def pick_precision(precision: str, device: str) -> str:
    """`auto`: bfloat16 on a GPU that has it (float16 on older ones); on a CPU bfloat16 only
    where it is measured to be at least as fast as float32 (chips with AMX or AVX512-BF16;
    elsewhere it is emulated and many times slower)."""
    if precision != "auto":
        return precision
    if device.startswith("cuda"):
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if has_fast_bf16(device) else "fp32"


def progressive_schedule(sizes: list[int], epochs: int) -> list[tuple[int, int]]:
    """Sizes spread evenly over the epochs, as the Learner's (first epoch, size) pairs."""
    return [(round(i * epochs / len(sizes)), s) for i, s in enumerate(sizes)]


def build_data(cfg: TrainConfig, device: str = "cpu", augment: bool | None = None,
               rank: int = 0, world_size: int = 1):
    from resnette.data import get_data
    kwargs = dict(size=cfg.size, presize=cfg.presize, bs=cfg.bs, seed=cfg.seed, device=device, augment=cfg.augment if augment is None else augment,
                  min_scale=cfg.min_scale, rank=rank, world_size=world_size)
    if cfg.data_dir:
        kwargs["data_dir"] = cfg.data_dir
    if cfg.valid_pct is not None:  # None means "the dataset's own split": let it choose
        kwargs["valid_pct"] = cfg.valid_pct
    dls = get_data(cfg.data, **kwargs)
    n_train = len(dls.train.items)
    if n_train < cfg.bs:  # training drops the last partial batch: there would be no batch
        raise ResnetteError(f"batch size {cfg.bs} is larger than the training set "
                            f"({n_train} images); use --bs {max(1, n_train // 2)} or less")
    return dls


class RunLearner(Learner):
    """A Learner that also keeps the best epoch's weights as best.safetensors."""

    def _after_epoch(self, epoch, sched, table, start):  # noqa: D102 (see Learner)
        super()._after_epoch(epoch, sched, table, start)
        rows = self.recorder.rows
        key = "accuracy" if "accuracy" in rows[-1] else "valid_loss"
        sign = 1 if key == "accuracy" else -1
        if self.run_dir is not None and self.is_main and all(sign * rows[-1][key] >= sign * r[key] for r in rows):
            model = self.ema.module if self.ema is not None else self.model
            save_weights(runs.Run(self.run_dir).best, model)


def make_learner(cfg: TrainConfig, dls, model, run: runs.Run | None, quiet: bool) -> Learner:
    device = str(dls.train.device) if hasattr(dls.train, "device") else "cpu"
    return RunLearner(dls, model, opt=cfg.opt, lr=peak_lr(cfg), wd=cfg.wd,
                      metrics=["accuracy", "top_k_accuracy"] if dls.c > 5 else ["accuracy"],
                      precision=pick_precision(cfg.precision, device),
                      channels_last=cfg.channels_last, compile=cfg.compile, clip=cfg.clip,
                      ema=cfg.ema, label_smoothing=cfg.label_smoothing, mixup=cfg.mixup,
                      cutmix=cfg.cutmix,
                      progressive=progressive_schedule(cfg.progressive, cfg.epochs) or None,
                      seed=cfg.seed, run_dir=run.path if run else None, quiet=quiet)


def peak_lr(cfg: TrainConfig) -> float:
    """cfg.lr, times the number of processes with --scale-lr (the linear scaling rule)."""
    return distributed.scale_lr(cfg.lr, distributed.world_size()) if cfg.scale_lr else cfg.lr


def open_run_for(cfg: TrainConfig, resume: bool, overwrite: bool, root: str | Path = "runs"
                 ) -> tuple[TrainConfig, runs.Run]:
    path, chosen = runs.resolve(cfg.name, cfg.run_dir, cfg.data, cfg.arch, cfg.size, root)
    if resume and not chosen:
        raise ResnetteError("--resume needs the run to continue: pass --name NAME or --run-dir DIR")
    run = runs.prepare(path, resume=resume, overwrite=overwrite)
    return replace(cfg, name=run.name), run


def resume_config(name: str | None, run_dir: str | None, flags: dict, root: str | Path = "runs"
                  ) -> TrainConfig:
    """On --resume the run's own config.toml is the base; flags still override it."""
    path, _ = runs.resolve(name, run_dir, "", "", 0, root)
    run = runs.Run(path)
    if not run.config.is_file():
        raise ResnetteError(f"cannot resume: {run.config} does not exist; check --name/--run-dir")
    return make_config(read_toml(run.config), flags)


def train(cfg: TrainConfig, resume: bool = False, overwrite: bool = False, quiet: bool = False,
          root: str | Path = "runs") -> runs.Run:
    """Train as `cfg` says into a run folder; return the run.

    Under torchrun every process runs this: rank 0 picks the run folder and writes it, each
    machine's local rank 0 prepares the data first, all ranks train (docs/DISTRIBUTED.md).
    """
    check_arch(cfg.arch)
    d = distributed.init(pick_device(cfg.device))
    run = _train(cfg, d, resume, overwrite, quiet or not d.is_main, root)
    # Not in a `finally`: after a failure the other ranks may be gone, tearing the group down
    # could wait on them, and the launcher's SIGTERM would then cut the error message off.
    distributed.shutdown()
    return run


def _train(cfg: TrainConfig, d: distributed.Dist, resume: bool, overwrite: bool, quiet: bool,
           root: str | Path) -> runs.Run:
    cfg, run = distributed.on_rank0(d, lambda: open_run_for(cfg, resume, overwrite, root))
    try:
        learn, dls = _start(cfg, run, resume, quiet, d)
    except BaseException:
        if not resume and d.is_main:  # a run that never started training leaves no folder behind
            shutil.rmtree(run.path, ignore_errors=True)
        raise
    fit = {"one_cycle": learn.fit_one_cycle, "flat_cos": learn.fit_flat_cos,
           "constant": learn.fit}[cfg.schedule]
    try:
        fit(cfg.epochs, peak_lr(cfg), resume=resume)
    except TrainingInterrupted as e:
        raise ResnetteError(f"{getattr(e, 'reason', 'training stopped')}; {run.checkpoint} is "
                            f"saved: continue with `resnette train --resume --run-dir {run.path}`"
                            ) from None
    if d.is_main:
        if d.is_distributed:  # this rank's loader holds only its shard of the valid set
            dls = build_data(cfg, d.device)
        finish(run, learn, dls)
    return run


def check_arch(arch: str) -> None:
    """Fail on a misspelt --arch before any data is downloaded or decoded."""
    if arch not in list_models():
        raise ResnetteError(f"unknown architecture {arch!r}; choose one of: "
                            + ", ".join(list_models()))


def _start(cfg: TrainConfig, run: runs.Run, resume: bool, quiet: bool,
           d: distributed.Dist):
    if d.is_main:
        save_config(cfg, run.config)
    seed_everything(cfg.seed)
    dls = distributed.local_rank0_first(d, lambda: build_data(cfg, d.device, rank=d.rank,
                                                              world_size=d.world_size))
    if d.is_main:
        runs.save_classes(run, dls.vocab, dls.names, dls.mean, dls.std, dls.channels)
        dls.show_batch(run.plot("batch"))
    model = create_model(cfg.arch, n_out=dls.c, c_in=dls.channels)
    if cfg.init_from and not resume:
        _say(init_from(model, cfg.init_from, cfg.arch), quiet)
    if cfg.sync_bn:
        model = distributed.sync_batchnorm(model, d.device, d.world_size)
    if distributed.in_job():
        _say(f"DDP: {d.world_size} process(es), batch {cfg.bs} each = {cfg.bs * d.world_size} "
             f"a step, peak lr {peak_lr(cfg):g}{' (scaled)' if cfg.scale_lr else ''}", quiet)
    learn = make_learner(cfg, dls, model, run, quiet)
    if cfg.lr_find and not resume:
        found = learn.lr_find(plot=run.plot("lr_find"))
        _say(f"lr_find: valley {found.valley:.2e}, steepest {found.steepest:.2e}, "
             f"minimum/10 {found.minimum:.2e}", quiet)
    _say(f"training {cfg.arch} on {cfg.data} ({dls.train.n} train / {dls.valid.n} valid "
         f"images, {dls.c} classes) into {run.path}", quiet)
    return learn, dls


def finish(run: runs.Run, learn: Learner, dls) -> dict:
    """After training: curves, confusion matrix, top losses, and evaluation.json."""
    plots.plot_curves(runs.read_metrics(run.metrics), run.plot("curves"))
    return evaluate_into(run, learn._eval_model(), dls.valid, dls.names, split="valid")


def evaluate_into(run: runs.Run, model: torch.nn.Module, loader, names: list[str],
                  split: str, tta: bool = False) -> dict:
    """Evaluate on a loader and leave evaluation.json, the confusion matrix and the top losses."""
    model = model.float()
    probs, targets = collect(model, loader, tta)
    ev = {"split": split, "tta": tta, **summarize(probs, targets, names)}
    runs.save_json(run.evaluation, ev)
    plots.plot_confusion(ev["confusion"], names, run.plot("confusion"))
    if hasattr(loader, "images") and not getattr(loader, "train", True):
        # only the validation loader keeps its order, so position i is items[i]
        worst = top_losses(probs, targets, n=9)
        imgs = loader.images(worst).permute(0, 2, 3, 1).numpy()
        p = probs[worst]
        losses = -p[torch.arange(len(worst)), targets[worst]].clamp_min(1e-12).log()
        plots.plot_top_losses(imgs, [names[i] for i in targets[worst]],
                              [names[i] for i in p.argmax(1)], losses.tolist(),
                              p.max(1).values.tolist(), run.plot("top_losses"))
    return ev


def lr_find_run(cfg: TrainConfig, overwrite: bool = False, quiet: bool = False,
                root: str | Path = "runs"):
    """`resnette lr-find`: the sweep alone, its plot saved into a run folder."""
    check_arch(cfg.arch)
    if distributed.launched():
        raise ResnetteError("`resnette lr-find` runs in one process; run it without torchrun "
                            "(or use `resnette train --lr-find` under torchrun)")
    cfg, run = open_run_for(cfg, False, overwrite, root)
    save_config(cfg, run.config)
    seed_everything(cfg.seed)
    dls = build_data(cfg, pick_device(cfg.device))
    runs.save_classes(run, dls.vocab, dls.names, dls.mean, dls.std, dls.channels)
    model = create_model(cfg.arch, n_out=dls.c, c_in=dls.channels)
    learn = make_learner(cfg, dls, model, None, quiet)
    found = learn.lr_find(plot=run.plot("lr_find"))
    return run, found


def _say(msg: str, quiet: bool) -> None:
    if not quiet:
        print(msg, flush=True)
