"""`resnette evaluate`: a trained run measured on its validation split, its training split,
or any folder laid out <label>/*.jpg. Results land in the run folder (evaluation.json, the
confusion matrix and the top losses) and are returned for printing."""
from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import torch

from resnette import plots
from resnette.commands.predict import labelled_folder
from resnette.display import show
from resnette.run.config import validate
from resnette.run.drawing import draw_run
from resnette.run.folder import Run, open_run, save_json
from resnette.run.lock import lock_run
from resnette.run.setup import build_data
from resnette.run.trained import load_trained
from resnette.train.evaluation import collect, summarize, top_losses
from resnette.utils import ResnetteError


def evaluate_run(run_path: str | Path, split: str = "valid", folder: str | Path | None = None,
                 tta: bool = False, bs: int = 64, test_size: int | None = None) -> dict:
    """`test_size` overrides the size the run validates at (its --test-size, else --size).
    The run folder is locked (shared) while its evaluation.json and plots are written."""
    run = open_run(run_path)
    with lock_run(run.path, "resnette evaluate", "evaluate writes evaluation.json and plots "
                  "there: make it writable, or copy the run to a writable place", shared=True):
        return _evaluate(run, split, folder, tta, bs, test_size)


def _evaluate(run: Run, split: str, folder: str | Path | None, tta: bool, bs: int,
              test_size: int | None) -> dict:
    trained = load_trained(run.path)
    if folder is not None:
        batches = list(labelled_folder(Path(folder), trained, bs))
        return evaluate_into(run, trained.model, batches, trained.names, split=str(folder), tta=tta)
    # Batch size 1 for building: the training split's batch-size check (a full batch of
    # training images) must not stop an evaluation of the validation split; the loader that
    # is evaluated then gets the batch size asked for (Loader.bs is read at each iteration).
    cfg = replace(validate(replace(trained.config, device="cpu",
                                   test_size=test_size or trained.config.test_size)), bs=1)
    dls = build_data(cfg, augment=False)
    if list(dls.vocab) != list(trained.vocab):
        raise ResnetteError(f"the data's classes ({', '.join(dls.vocab[:5])}, ...) are not the "
                            f"run's ({', '.join(trained.vocab[:5])}, ...); was the folder changed?")
    loader = dls.valid if split == "valid" else dls.train
    loader.bs = min(bs, len(loader.items)) if split == "train" else bs
    return evaluate_into(run, trained.model, loader, trained.names, split=split, tta=tta)


def evaluate_into(run: Run, model: torch.nn.Module, loader, names: list[str],
                  split: str, tta: bool = False, draw: bool = True) -> dict:
    """Evaluate on a loader and leave evaluation.json, the confusion matrix and the top losses
    (`draw=False`: their numbers only, for resnette.run.drawing to draw later)."""
    probs, targets = collect(model.float(), loader, tta)
    ev = record_evaluation(run, probs, targets, loader, names, split, tta)
    if draw:
        draw_run(run, only=("confusion", "top_losses"))
    return ev


def record_evaluation(run: Run, probs: torch.Tensor, targets: torch.Tensor, loader,
                      names: list[str], split: str, tta: bool = False) -> dict:
    """evaluation.json, and the top losses' images (plots/top_losses.npz), from probabilities
    already computed (`resnette train` passes its last epoch's validation): numbers only, the
    plots are drawn from these files (resnette.run.drawing)."""
    ev = {"split": split, "tta": tta, **summarize(probs, targets, names)}
    save_json(run.evaluation, ev)
    if hasattr(loader, "images") and not getattr(loader, "train", True):
        # only the validation loader keeps its order, so position i is items[i]
        worst, losses = top_losses(probs, targets, n=9)
        p = probs[worst]
        titles = plots.top_loss_titles([names[i] for i in targets[worst]],
                                       [names[i] for i in p.argmax(1)], losses.tolist(),
                                       p.max(1).values.tolist())
        plots.save_pixels(run.pixels("top_losses"),
                          loader.images(worst).permute(0, 2, 3, 1).numpy(), titles)
    return ev


def format_evaluation(ev: dict) -> str:
    """The numbers as people read them (resnette.display's rule)."""
    lines = [f"{label:<11}{show(key, ev[key])}" for label, key in
             (("images", "n"), ("accuracy", "accuracy"), ("top-5", "top5"), ("loss", "loss"))]
    lines += ["", "per class:"]
    width = max(len(n) for n in ev["per_class"])
    for name, v in ev["per_class"].items():
        acc = "n/a" if v["accuracy"] is None else show("accuracy", v["accuracy"])
        lines.append(f"  {name:<{width}}  {acc:>8}  ({v['n']} images)")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> None:
    ev = evaluate_run(args.run, split=args.split, folder=args.folder, tta=args.tta, bs=args.bs,
                      test_size=args.test_size)
    print(json.dumps(ev, indent=1) if args.json else format_evaluation(ev))
