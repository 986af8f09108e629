"""`resnette predict`: class names and probabilities for image files or folders.

Images are prepared exactly as the validation set was during training (the same functions):
decoded at the presize (shortest side scaled, centre square), resized to the training size,
normalised with the run's mean and std. Flip test-time augmentation averages the probabilities
of each image and its mirror image (the chapter's `tta`, train/evaluation.py).
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from resnette.data.augment import resize_batch
from resnette.run.config import eval_size
from resnette.data.decode import decode_images, unreadable_warning
from resnette.data.folders import IMAGE_EXTENSIONS, image_files
from resnette.display import percent, term, to_json
from resnette.run.reading import nfc
from resnette.run.trained import Trained, load_trained
from resnette.train.evaluation import probabilities
from resnette.train.precision import INFERENCE, resolve
from resnette.utils import ResnetteError


def find_images(paths: Sequence[str | Path]) -> list[Path]:
    """Every image given directly or found (recursively) under a given folder. A path that
    exists but is no regular file (a FIFO, a device) is kept: decoding reports it as "not a
    regular file" without opening it, like any other unreadable file."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += image_files(p)
        elif p.exists():
            found.append(p)
        else:
            raise ResnetteError(f"{p} does not exist; give image files or folders of images")
    if not found:
        raise ResnetteError(f"no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) found in "
                            f"{', '.join(map(str, paths))}")
    return found


def prepare(paths: Sequence[Path], trained: Trained) -> tuple[torch.Tensor, np.ndarray]:
    """Decode, resize and normalise the readable images of `paths` into a float batch N,C,H,W,
    and the mask of which paths those are. Unreadable files are skipped with one warning, as
    training skips them; none readable at all is an error."""
    cfg = trained.config
    decoded = decode_images(paths, cfg.presize, channels=trained.channels)
    if decoded.bad:
        where = _common(paths)
        if not decoded.ok.any():
            raise ResnetteError("cannot read any image: " + unreadable_warning(
                decoded.bad, len(paths), where).split(": ", 1)[1])
        warnings.warn(unreadable_warning(decoded.bad, len(paths), where), stacklevel=2)
    batch = resize_batch(torch.from_numpy(decoded.images), eval_size(cfg),
                         torch.tensor(trained.mean), torch.tensor(trained.std))
    return batch, decoded.ok


def _common(paths: Sequence[Path]) -> str:
    """The folder the paths share, for the warning."""
    try:
        return os.path.commonpath([os.fspath(p.parent) for p in paths]) or "."
    except ValueError:   # absolute and relative paths mixed
        return "."


@dataclass
class Prediction:
    path: str
    top: list[tuple[str, float]]   # (class name, probability), most likely first

    def as_dict(self) -> dict:
        return {"path": self.path, "predictions": [{"class": c, "probability": round(p, 6)}
                                                   for c, p in self.top]}


def predict_files(trained: Trained, paths: Sequence[Path], k: int = 3, tta: bool = False,
                  bs: int = 64) -> list[Prediction]:
    k = min(k, len(trained.names))
    device = resolve(INFERENCE).device   # the precision table's inference row
    model = trained.model.to(device)
    out: list[Prediction] = []
    for start in range(0, len(paths), bs):
        chunk = paths[start:start + bs]
        x, ok = prepare(chunk, trained)
        probs = probabilities(model, x.to(device), tta)
        top_p, top_i = probs.topk(k, dim=1)
        readable = [p for p, good in zip(chunk, ok) if good]   # in the order of the rows of x
        for p, ps, idx in zip(readable, top_p.tolist(), top_i.tolist()):
            out.append(Prediction(str(p), [(trained.names[i], q) for i, q in zip(idx, ps)]))
    return out


PREDICT_HEADER = "path\tclass probability, most likely first"


def format_predictions(preds: Iterable[Prediction]) -> str:
    """A plain table: a header line, then one line per image: its path, a tab, then
    `name  probability` for each of the top k (`cut -f1` gives the paths); one row per image
    whatever its path or the class names hold (resnette.display.term)."""
    lines = [PREDICT_HEADER]
    for pred in preds:
        tops = "   ".join(f"{term(name)} {percent(p):>6}" for name, p in pred.top)
        lines.append(f"{term(pred.path, raw_bytes=True)}\t{tops}")
    return "\n".join(lines)


def labelled_folder(folder: Path, trained: Trained, bs: int = 64):
    """Batches of a folder laid out <label>/*.jpg, labels mapped to the model's vocabulary."""
    files = [f for f in find_images([folder]) if f.parent.parent == folder]
    if not files:
        raise ResnetteError(f"no labelled images in {folder}; expected <label>/*.jpg inside it")
    index = {v: i for i, v in enumerate(nfc(trained.vocab))}   # a Mac's NFD names match too
    label = {f: nfc([f.parent.name])[0] for f in files}
    unknown = sorted(set(label.values()) - set(index))
    if unknown:
        raise ResnetteError(f"labels {unknown[:5]} in {folder} are not classes of this model "
                            f"({', '.join(trained.vocab[:10])}{', ...' if len(index) > 10 else ''})")
    for start in range(0, len(files), bs):
        chunk = files[start:start + bs]
        x, ok = prepare(chunk, trained)
        yield x, torch.tensor([index[label[f]] for f, good in zip(chunk, ok) if good])


def samples(trained: Trained, folder: str = "digits-samples") -> list[Path]:
    """`--sample`: one validation digit per class of the run's own split, written as PNGs."""
    from resnette.data.digits import save_samples
    if trained.config.data != "digits":
        raise ResnetteError(f"--sample has digits to try for a run trained on --data digits; "
                            f"this one was trained on {trained.config.data}: give image files")
    cfg = trained.config   # valid_pct None: the digits' own default split
    written = save_samples(folder, 0.2 if cfg.valid_pct is None else cfg.valid_pct, cfg.seed)
    print(f"wrote {len(written)} validation digits to {term(folder)}/ (the true digit starts each "
          "name)", file=sys.stderr)
    return written


def main(args: argparse.Namespace) -> None:
    trained = load_trained(args.model, config=args.config)
    images = list(args.images)
    if getattr(args, "sample", False):   # a few validation digits to try (data/digits.py)
        images += [str(p) for p in samples(trained)]
    if not images:
        raise ResnetteError("give image files or folders to predict (or --sample for a run "
                            "trained on --data digits)")
    preds = predict_files(trained, find_images(images), k=args.top, tta=args.tta)
    if args.json:
        print(to_json([p.as_dict() for p in preds]))
    else:
        print(format_predictions(preds))
