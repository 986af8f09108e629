"""Evaluating a model: flip TTA, probabilities over a whole loader, and what they sum up to.

One module for what the Learner's `validate`/`predict`, `resnette evaluate`, `resnette
predict` and the run's top-losses plot all need, so each is computed one way:

    predict_logits  a batch's logits; with TTA the log of the mean probability over the image
                    and its mirror (the chapter's flip TTA)
    collect         probabilities and targets for every batch (fastai's `get_preds`)
    summarize       accuracy, top-5 accuracy, cross-entropy, per-class accuracy, confusion
    top_losses      the worst predictions, worst first, with their losses
"""
from __future__ import annotations

from typing import Iterable, Sequence

import torch
from torch import nn

from ..measures import ACCURACY, CROSS_ENTROPY, TOP_K, TOP_K_K


def predict_logits(model: nn.Module, x: torch.Tensor, tta: bool = False) -> torch.Tensor:
    """float32 logits; under TTA log((softmax(x) + softmax(mirror(x))) / 2), so a softmax of
    the result is the averaged probability and cross-entropy on it is the TTA loss."""
    logits = model(x).float()
    if not tta:
        return logits
    mirrored = model(torch.flip(x, dims=[3])).float()
    return ((logits.softmax(1) + mirrored.softmax(1)) / 2).log()


@torch.no_grad()
def probabilities(model: nn.Module, x: torch.Tensor, tta: bool = False) -> torch.Tensor:
    """Softmax probabilities of a batch (in eval mode), flip-averaged under TTA."""
    model.eval()
    return predict_logits(model, x, tta).softmax(1)


@torch.no_grad()
def collect(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
            tta: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Probabilities and targets for every batch, on the CPU."""
    probs, targets = [], []
    for x, y in batches:
        probs.append(probabilities(model, x.float(), tta).cpu())
        targets.append(y.cpu())
    return torch.cat(probs), torch.cat(targets)


def _losses(probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each item from its probabilities."""
    return -probs[torch.arange(len(targets)), targets].clamp_min(1e-12).log()


def summarize(probs: torch.Tensor, targets: torch.Tensor, names: Sequence[str]) -> dict:
    """Accuracy, top-5 accuracy, cross-entropy (resnette.measures names them), per-class
    accuracy and the confusion matrix. Top-5 only for more than 5 classes (with 5 or fewer it
    is 1.0 whatever the model does: left out, as training's metrics.csv leaves it out)."""
    n_classes = probs.shape[1]
    pred = probs.argmax(1)
    in_top = (probs.topk(min(TOP_K_K, n_classes), dim=1).indices == targets[:, None]).any(1)
    top_k = {TOP_K: in_top.float().mean().item()} if n_classes > TOP_K_K else {}
    cm = torch.zeros(n_classes, n_classes, dtype=torch.int64)
    cm.index_put_((targets, pred), torch.ones_like(targets), accumulate=True)
    per_class = {}
    for i, name in enumerate(names):
        n = int(cm[i].sum())
        per_class[name] = {"accuracy": (int(cm[i, i]) / n) if n else None, "n": n}
    return {"n": len(targets), ACCURACY: (pred == targets).float().mean().item(), **top_k,
            CROSS_ENTROPY: _losses(probs, targets).mean().item(),
            "per_class": per_class, "confusion": cm.tolist(), "names": list(names)}


def top_losses(probs: torch.Tensor, targets: torch.Tensor, n: int = 9
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """(indices, losses) of the `n` items with the highest cross-entropy, worst first."""
    losses, idx = _losses(probs, targets).topk(min(n, len(targets)))
    return idx, losses
