"""`resnette reproduce chapter14`: the chapter's experiments beside the book's numbers, and
the experiments its "Further Research" section asks for, as one markdown table.

Each experiment is a TrainConfig (plus, for two of them, a net built here); they run one
after another in this process and report final accuracy and seconds per epoch. `quick`
shrinks every experiment to a smoke test: ~150 images, 1 epoch, 32 px. Its numbers mean
nothing; it only proves that every experiment runs.
"""
from __future__ import annotations

import argparse
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from resnette.data.folders import IMAGE_EXTENSIONS
from resnette.display import percent, seconds, show, term
from resnette.models import ConvLayer, init_cnn, pool_head
from resnette.run.config import make_config
from resnette.run.setup import build_data, make_learner, model_for
from resnette.train.precision import resolve
from resnette.files import output, write_text
from resnette.utils import ResnetteError, seed_everything


@dataclass
class Experiment:
    name: str
    title: str
    settings: dict[str, Any]                     # TrainConfig overrides
    book_accuracy: float | None = None           # the chapter's number (their GPU)
    book_seconds: float | None = None
    model: Callable[[int, int], nn.Module] | None = None   # (n_out, c_in) -> net; None: arch
    lr_find: bool = False
    on_digits: bool = False                      # MNIST-style data, not Imagenette
    notes: str = ""
    results: dict[str, float] = field(default_factory=dict)


# ------------------------------------------------- the further-research MNIST nets

def small_conv_net(n_out: int, c_in: int, pooled: bool) -> nn.Sequential:
    """Three stride-2 ConvLayers (32 px -> a 4x4 grid), then either the fully convolutional
    head (average pool: works at any size) or a flatten head (a linear layer over all 4x4x64
    activations, which ties the net to 32 px inputs)."""
    body = [ConvLayer(c_in, 16, stride=2), ConvLayer(16, 32, stride=2), ConvLayer(32, 64, stride=2)]
    flat = nn.Sequential(nn.Flatten(), nn.Linear(64 * 4 * 4, n_out))
    head = pool_head(64, n_out) if pooled else flat
    model = nn.Sequential(*body, *head)
    init_cnn(model)
    return model


CHAPTER = dict(size=128, presize=160, epochs=5, lr=3e-3, bs=128)
DIGITS = dict(data="digits", size=32, presize=32, epochs=5, lr=1e-2, bs=64, augment=False)


def experiments() -> list[Experiment]:
    xr50 = dict(arch="xresnet50", size=224, presize=320, epochs=20, lr=3e-3, bs=64)
    return [
        Experiment("plain", "plain 5-block net", dict(CHAPTER, arch="simple_cnn"), 0.659, 7),
        Experiment("resblock", "same with ResBlocks", dict(CHAPTER, arch="resblock_cnn"), 0.668, 9),
        Experiment("resblock2", "two ResBlocks per stage", dict(CHAPTER, arch="resblock2_cnn"),
                   0.693, 12),
        Experiment("xresnet18", "XResNet-18", dict(CHAPTER, arch="xresnet18"), 0.757, 13),
        Experiment("xresnet50", "XResNet-50 (bottleneck), 224 px from 320", xr50, 0.873, 32),
        Experiment("lr_find", "lr_find, XResNet-18", dict(CHAPTER, arch="xresnet18"), lr_find=True,
                   notes="suggested lr (valley)"),
        Experiment("mnist_pool", "digits: fully convolutional (average pool)", dict(DIGITS),
                   model=lambda n, c: small_conv_net(n, c, pooled=True), on_digits=True),
        Experiment("mnist_flatten", "digits: flatten head (no pooling)", dict(DIGITS),
                   model=lambda n, c: small_conv_net(n, c, pooled=False), on_digits=True),
        Experiment("basic18", "18 layers, basic blocks", dict(CHAPTER, arch="xresnet18")),
        Experiment("bottleneck18", "18 layers, bottleneck blocks",
                   dict(CHAPTER, arch="xresnet18_bottleneck")),
        Experiment("no_smoothing", "XResNet-18, 20 epochs, no label smoothing",
                   dict(CHAPTER, arch="xresnet18", epochs=20)),
        Experiment("label_smoothing", "XResNet-18, 20 epochs, label smoothing 0.1",
                   dict(CHAPTER, arch="xresnet18", epochs=20, label_smoothing=0.1)),
    ]


def names() -> list[str]:
    return [e.name for e in experiments()]


# ------------------------------------------------------------------------ running

def run_experiment(exp: Experiment, data: str, quick: bool, out_dir: Path, quiet: bool) -> None:
    settings = dict(exp.settings)
    if not exp.on_digits:
        settings["data"] = data
    if quick:
        settings.update(epochs=1, size=32, presize=40 if not exp.on_digits else 32, bs=16)
    cfg = make_config(settings)
    seed_everything(cfg.seed)
    dls = build_data(cfg, str(resolve(cfg.precision, cfg.device).device))
    if exp.model is not None:
        model = exp.model(dls.c, dls.channels)
    else:
        model = model_for(cfg, dls.c, dls.channels)
    learn = make_learner(cfg, dls, model, None, quiet)
    if exp.lr_find:
        found = learn.lr_find(num_it=20 if quick else 100, plot=out_dir / "lr_find.png")
        exp.results = {"lr": found.valley}
        return
    learn.fit_one_cycle(cfg.epochs, cfg.lr)
    rows = learn.recorder.rows
    exp.results = {"accuracy": rows[-1]["accuracy"],
                   "seconds": sum(r["time"] for r in rows) / len(rows),
                   "epochs": cfg.epochs, "size": cfg.size}


def quick_subset(source: Path, dest: Path, per_class: tuple[int, int] = (10, 5)) -> Path:
    """A folder of links to the first few images of each class (train and valid)."""
    splits = [s for s in ("train", "val", "valid") if (source / s).is_dir()]
    if len(splits) < 2:
        raise ResnetteError(f"{source} has no train/ and val/ folders; give an Imagenette folder")
    for split, n in zip(splits, per_class):
        for label in sorted(p for p in (source / split).iterdir() if p.is_dir()):
            files = sorted(f for f in label.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS)
            target = dest / split / label.name
            target.mkdir(parents=True, exist_ok=True)
            for f in files[:n]:
                link = target / f.name
                if not link.exists():
                    os.symlink(f.resolve(), link)
    return dest


def reproduce(what: str, only: str | None = None, quick: bool = False, data: str | None = None,
              out_dir: str | Path = "runs/reproduce-chapter14", quiet: bool = False) -> Path:
    """Run the experiments (or `only` one), write and print the markdown table."""
    if what != "chapter14":
        raise ResnetteError(f"nothing to reproduce for {what!r}; choose chapter14")
    chosen = experiments()
    if only:
        wanted = [n.strip() for n in only.split(",")]
        unknown = [n for n in wanted if n not in names()]
        if unknown:
            raise ResnetteError(f"unknown experiment {unknown[0]!r}; choose from: "
                                f"{', '.join(names())}")
        chosen = [e for e in chosen if e.name in wanted]
    out_dir = output(out_dir, "reproduce", makes_parents=True, folder=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = data or "imagenette-160"
    if quick and any(not e.on_digits for e in chosen):
        if not Path(data).expanduser().is_dir():
            raise ResnetteError("--quick needs --data PATH: a local Imagenette folder to sample")
        data = str(quick_subset(Path(data).expanduser(), out_dir / "quick-data"))
    for exp in chosen:
        if not quiet:
            print(f"\n== {exp.name}: {exp.title}", flush=True)
        run_experiment(exp, data, quick, out_dir, quiet)
    table = markdown(chosen, quick)
    path = out_dir / "chapter14.md"
    write_text(path, table)
    print("\n" + table)
    return path


def machine() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU threads"


def markdown(chosen: list[Experiment], quick: bool) -> str:
    """The results beside the book's, as resnette.display shows percentages and seconds."""
    note = " (--quick: smoke test, numbers meaningless)" if quick else ""
    lines = [f"# Chapter 14, reproduced{note}",
             "", f"Ours: {machine()}, torch {torch.__version__}. The book: fastai on one GPU.", "",
             "| experiment | epochs | size | accuracy (ours) | accuracy (book) | time/epoch (ours) "
             "| time/epoch (book) |", "|---|---|---|---|---|---|---|"]
    for e in chosen:
        r = e.results
        if "lr" in r:
            lines.append(f"| {e.title} | | | {e.notes}: {show('lr', r['lr'])} | | | |")
            continue
        lines.append(f"| {e.title} | {r.get('epochs', '')} | {r.get('size', '')} | "
                     f"{percent(r.get('accuracy'))} | {percent(e.book_accuracy)} | "
                     f"{seconds(r.get('seconds'))} | {seconds(e.book_seconds)} |")
    return "\n".join(lines) + "\n"


def main(args: argparse.Namespace) -> None:
    out = reproduce(args.what, only=args.only, quick=args.quick, data=args.data,
                    out_dir=args.out, quiet=args.quiet)
    print(f"\nwritten to {term(out, raw_bytes=True)}")
