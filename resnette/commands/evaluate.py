"""`resnette evaluate`: a trained run measured on its validation split, its training split,
or any folder laid out <label>/*.jpg. Results land in the run folder and are returned for
printing: the run's own evaluation (validation split, its size, no TTA) as evaluation.json,
the confusion matrix and the top losses; any other beside it, as evaluations/<what>.json
(e.g. train.json, valid-tta.json, valid-160px.json, folder-photos-1a2b3c4d.json), so a
look at the training split never replaces what the report headlines."""
from __future__ import annotations

import argparse
import copy
import hashlib
import os
import re
from dataclasses import replace
from pathlib import Path

import torch

from resnette import plots
from resnette.commands.predict import labelled_folder
from resnette.display import show, term, to_json
from resnette.measures import EVALUATION
from resnette.files import make_folder
from resnette.run.claim import open_existing
from resnette.run.config import eval_size, validate
from resnette.run.drawing import draw_run
from resnette.run.folder import Run, save_json
from resnette.run.lock import lock_run
from resnette.run.setup import build_data
from resnette.run.reading import nfc
from resnette.run.trained import load_trained
from resnette.train.precision import INFERENCE, resolve
from resnette.train.evaluation import collect, summarize, top_losses
from resnette.utils import ResnetteError


def evaluate_run(run_path: str | Path, split: str = "valid", folder: str | Path | None = None,
                 tta: bool = False, bs: int = 64, test_size: int | None = None) -> dict:
    """`test_size` overrides the size the run validates at (its --test-size, else --size).
    The run folder is locked (shared) while its evaluation files and plots are written. The
    run's own evaluation (its validation split, at its size, without TTA) is evaluation.json;
    any other is kept beside it, in evaluations/<what>.json (`evaluation_name`)."""
    run = open_existing(run_path)
    with lock_run(run.path, "resnette evaluate", "evaluate writes evaluation.json and plots "
                  "there: make it writable, or copy the run to a writable place", shared=True):
        make_folder(run.plots, "the run's plots")   # checked before anything is written
        return _evaluate(run, split, folder, tta, bs, test_size)


def evaluation_name(split: str, folder: str | Path | None, tta: bool, size: int,
                    run_size: int) -> str | None:
    """The file name (without .json) under evaluations/ for an evaluation other than the
    run's own; None for the run's own (the validation split at the run's size, no TTA)."""
    if folder is not None:
        raw = os.fsencode(os.path.abspath(folder))
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(folder).name).strip("-.")[:40] or "folder"
        what = f"folder-{stem}-{hashlib.sha256(raw).hexdigest()[:8]}"
    else:
        what = split
    parts = [what] + (["tta"] if tta else []) + ([f"{size}px"] if size != run_size else [])
    return None if parts == ["valid"] else "-".join(parts)


def _evaluate(run: Run, split: str, folder: str | Path | None, tta: bool, bs: int,
              test_size: int | None) -> dict:
    trained = load_trained(run.path)
    run_size = eval_size(trained.config)
    size = test_size or run_size
    device = resolve(INFERENCE).device   # the precision table's inference row
    trained.model.to(device)
    # the config checks the size (at least 32, at most 4096) for --folder as for the splits
    cfg = replace(validate(replace(trained.config, device=str(device), test_size=size)), bs=1)
    save_as = evaluation_name(split, folder, tta, size, run_size)
    where = {"split": split if folder is None else "folder", "size": size,
             **({"folder": os.fsdecode(os.path.abspath(folder))} if folder is not None else {})}
    if folder is not None:
        trained.config = cfg
        batches = [(x.to(device), y) for x, y in labelled_folder(Path(folder), trained, bs)]
        return evaluate_into(run, trained.model, batches, trained.names, tta=tta,
                             save_as=save_as, where=where)
    # Batch size 1 for building: the training split's batch-size check (a full batch of
    # training images) must not stop an evaluation of the validation split; the loader that
    # is evaluated then gets the batch size asked for (Loader.bs is read at each iteration).
    dls = build_data(cfg, str(device), augment=False)
    if nfc(dls.vocab) != nfc(trained.vocab):
        raise ResnetteError(f"the data's classes ({', '.join(dls.vocab[:5])}, ...) are not the "
                            f"run's ({', '.join(trained.vocab[:5])}, ...); was the folder changed?")
    loader = dls.valid if split == "valid" else in_order(dls.train, size)
    loader.bs = bs
    return evaluate_into(run, trained.model, loader, trained.names, tta=tta, save_as=save_as,
                         where=where)


def in_order(loader, size: int):
    """A training Loader read as the validation one is: every image once, in order (the last
    partial batch too), not augmented, at `size`."""
    ordered = copy.copy(loader)
    ordered.train, ordered.augment, ordered.size = False, None, size
    return ordered


def evaluate_into(run: Run, model: torch.nn.Module, loader, names: list[str],
                  split: str = "valid", tta: bool = False, draw: bool = True,
                  save_as: str | None = None, where: dict | None = None) -> dict:
    """Evaluate on a loader. The run's own evaluation (`save_as` None) leaves evaluation.json,
    the confusion matrix and the top losses (`draw=False`: their numbers only, for
    resnette.run.drawing to draw later); any other leaves evaluations/<save_as>.json only,
    saying what it evaluated (`where`: split or folder, size), and never touches the former."""
    probs, targets = collect(model.float(), loader, tta)
    where = where or {"split": split}
    if save_as is not None:
        ev = {**where, "tta": tta, **summarize(probs, targets, names)}
        save_json(run.path / "evaluations" / f"{save_as}.json", ev)
        return ev
    ev = record_evaluation(run, probs, targets, loader, names, where["split"], tta)
    if draw:
        draw_run(run, only=("confusion", "top_losses"))
    return ev


def record_evaluation(run: Run, probs: torch.Tensor, targets: torch.Tensor, loader,
                      names: list[str], split: str, tta: bool = False) -> dict:
    """evaluation.json, and the top losses' images (plots/top_losses.npz), from probabilities
    already computed (`resnette train` passes its last epoch's validation): numbers only, the
    plots are drawn from these files (resnette.run.drawing)."""
    ev = {"split": split, "tta": tta, **({"size": loader.size} if hasattr(loader, "size") else {}),
          **summarize(probs, targets, names)}
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
    """The numbers as people read them (resnette.display's rule), each under its one name
    (resnette.measures: the names evaluation.json, the report and `runs` use); no top-5 for
    5 classes or fewer (train/evaluation.py leaves it out)."""
    lines = [f"{'images':<16}{show('n', ev['n'])}"]
    lines += [f"{key:<16}{show(key, ev[key])}" for key in EVALUATION if key in ev]
    lines += ["", "per class:"]
    names = {name: term(name) for name in ev["per_class"]}   # one row each, escaped
    width = max(map(len, names.values()), default=0)
    for name, v in ev["per_class"].items():
        acc = "n/a" if v["accuracy"] is None else show("accuracy", v["accuracy"])
        lines.append(f"  {names[name]:<{width}}  {acc:>8}  ({v['n']} images)")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> None:
    ev = evaluate_run(args.run, split=args.split, folder=args.folder, tta=args.tta, bs=args.bs,
                      test_size=args.test_size)
    print(to_json(ev) if args.json else format_evaluation(ev))
