"""Using a trained model: predict images or folders, and evaluate it on labelled images.

Images are prepared exactly as the validation set was during training (the same functions):
decoded at the presize (shortest side scaled, centre square), resized to the training size,
normalised with the run's mean and std. Flip test-time augmentation averages the probabilities of each image
and its mirror image (the chapter's `tta`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from resnette.data.augment import resize_batch
from resnette.data.decode import UnreadableImage, decode_image
from resnette.data.folders import IMAGE_EXTENSIONS, image_files
from resnette.trained import Trained
from resnette.utils import ResnetteError


def find_images(paths: Sequence[str | Path]) -> list[Path]:
    """Every image given directly or found (recursively) under a given folder."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += image_files(p)
        elif p.is_file():
            found.append(p)
        else:
            raise ResnetteError(f"{p} does not exist; give image files or folders of images")
    if not found:
        raise ResnetteError(f"no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) found in "
                            f"{', '.join(map(str, paths))}")
    return found


def prepare(paths: Sequence[Path], trained: Trained) -> torch.Tensor:
    """Decode, resize and normalise images into a float batch N,C,H,W."""
    cfg = trained.config
    arrays = []
    for p in paths:
        try:
            img = decode_image(p, cfg.presize, channels=trained.channels)
        except UnreadableImage as e:
            raise ResnetteError(f"cannot read image {p} ({e})") from None
        arrays.append(img)
    return resize_batch(torch.from_numpy(np.stack(arrays)), cfg.size,
                        torch.tensor(trained.mean), torch.tensor(trained.std))


@torch.no_grad()
def probabilities(model: torch.nn.Module, x: torch.Tensor, tta: bool = False) -> torch.Tensor:
    """Softmax probabilities, averaged with the horizontally flipped images under TTA."""
    model.eval()
    probs = F.softmax(model(x).float(), dim=1)
    if tta:
        probs = (probs + F.softmax(model(x.flip(3)).float(), dim=1)) / 2
    return probs


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
    out: list[Prediction] = []
    for start in range(0, len(paths), bs):
        chunk = paths[start:start + bs]
        probs = probabilities(trained.model, prepare(chunk, trained), tta)
        top_p, top_i = probs.topk(k, dim=1)
        for p, ps, idx in zip(chunk, top_p.tolist(), top_i.tolist()):
            out.append(Prediction(str(p), [(trained.names[i], q) for i, q in zip(idx, ps)]))
    return out


def format_predictions(preds: Iterable[Prediction]) -> str:
    """A plain table: path, then `name  probability` for each of the top k."""
    lines = []
    for pred in preds:
        tops = "   ".join(f"{name} {p:6.1%}" for name, p in pred.top)
        lines.append(f"{pred.path}\t{tops}")
    return "\n".join(lines)


# ------------------------------------------------------------------------- evaluation

@torch.no_grad()
def collect(model: torch.nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
            tta: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Probabilities and targets for every batch (fastai's `get_preds`)."""
    probs, targets = [], []
    for x, y in batches:
        probs.append(probabilities(model, x.float(), tta).cpu())
        targets.append(y.cpu())
    return torch.cat(probs), torch.cat(targets)


def labelled_folder(folder: Path, trained: Trained, bs: int = 64):
    """Batches of a folder laid out <label>/*.jpg, labels mapped to the model's vocabulary."""
    files = [f for f in find_images([folder]) if f.parent.parent == folder]
    if not files:
        raise ResnetteError(f"no labelled images in {folder}; expected <label>/*.jpg inside it")
    index = {v: i for i, v in enumerate(trained.vocab)}
    unknown = sorted({f.parent.name for f in files} - set(index))
    if unknown:
        raise ResnetteError(f"labels {unknown[:5]} in {folder} are not classes of this model "
                            f"({', '.join(trained.vocab[:10])}{', ...' if len(index) > 10 else ''})")
    for start in range(0, len(files), bs):
        chunk = files[start:start + bs]
        yield prepare(chunk, trained), torch.tensor([index[f.parent.name] for f in chunk])


def summarize(probs: torch.Tensor, targets: torch.Tensor, names: Sequence[str]) -> dict:
    """Accuracy, top-5 accuracy, loss, per-class accuracy and the confusion matrix."""
    n_classes = probs.shape[1]
    pred = probs.argmax(1)
    k = min(5, n_classes)
    top5 = (probs.topk(k, dim=1).indices == targets[:, None]).any(1).float().mean().item()
    loss = F.nll_loss(probs.clamp_min(1e-12).log(), targets).item()
    cm = torch.zeros(n_classes, n_classes, dtype=torch.int64)
    cm.index_put_((targets, pred), torch.ones_like(targets), accumulate=True)
    per_class = {}
    for i, name in enumerate(names):
        n = int(cm[i].sum())
        per_class[name] = {"accuracy": (int(cm[i, i]) / n) if n else None, "n": n}
    return {"n": len(targets), "accuracy": (pred == targets).float().mean().item(),
            "top5": top5, "loss": loss, "per_class": per_class, "confusion": cm.tolist(),
            "names": list(names)}


def top_losses(probs: torch.Tensor, targets: torch.Tensor, n: int = 9) -> torch.Tensor:
    """Indices of the `n` images with the highest cross-entropy loss, worst first."""
    losses = -probs[torch.arange(len(targets)), targets].clamp_min(1e-12).log()
    return losses.topk(min(n, len(losses))).indices


def format_evaluation(ev: dict) -> str:
    lines = [f"images     {ev['n']}", f"accuracy   {ev['accuracy']:.4f}",
             f"top-5      {ev['top5']:.4f}", f"loss       {ev['loss']:.4f}", "", "per class:"]
    width = max(len(n) for n in ev["per_class"])
    for name, v in ev["per_class"].items():
        acc = "   n/a" if v["accuracy"] is None else f"{v['accuracy']:.4f}"
        lines.append(f"  {name:<{width}}  {acc}  ({v['n']} images)")
    return "\n".join(lines)
