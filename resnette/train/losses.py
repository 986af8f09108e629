"""Losses: cross entropy with label smoothing, and Mixup/CutMix with fastai's semantics.

Mixup and CutMix change the batch before the forward pass and the loss after it, so they are
one object with two steps: `mix(x, y, generator)` returns the mixed images and what the loss
needs (the shuffled targets and the mixing weight); `loss(...)` blends the two targets' losses.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class LabelSmoothingCrossEntropy(nn.Module):
    """Cross entropy against targets that put 1-eps on the label and eps spread over all classes.

    The chapter's trick against over-confident logits: with hard targets the loss keeps
    rewarding ever larger logits; a smoothed target is reached at finite logits. Identical to
    fastai's LabelSmoothingCrossEntropy (eps/c on every class plus (1-eps) on the label).
    """

    def __init__(self, eps: float = 0.1, reduction: str = "mean"):
        super().__init__()
        self.eps, self.reduction = eps, reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                reduction: str | None = None) -> torch.Tensor:
        return F.cross_entropy(pred.float(), target, label_smoothing=self.eps,
                               reduction=reduction or self.reduction)

    def activation(self, out: torch.Tensor) -> torch.Tensor:
        """fastai's: what `get_preds` applies to the outputs (class probabilities)."""
        return F.softmax(out.float(), dim=-1)

    def decodes(self, out: torch.Tensor) -> torch.Tensor:
        """fastai's: the predicted class of each output."""
        return out.argmax(dim=-1)


class CrossEntropy(LabelSmoothingCrossEntropy):
    """Plain cross entropy (the chapter's `nn.CrossEntropyLoss()`), with a per-item mode for
    Mixup."""

    def __init__(self, reduction: str = "mean"):
        super().__init__(0.0, reduction)


def per_item_loss(loss_func: nn.Module, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Loss of each item (no reduction), whatever kind of loss module we were given."""
    if isinstance(loss_func, LabelSmoothingCrossEntropy):
        return loss_func(pred, target, reduction="none")
    if hasattr(loss_func, "reduction"):
        old, loss_func.reduction = loss_func.reduction, "none"
        try:
            return loss_func(pred, target)
        finally:
            loss_func.reduction = old
    raise TypeError("Mixup/CutMix need a loss with a `reduction` attribute")


class Mixup:
    """Blend each image with another one of the batch: x = lam*x + (1-lam)*x[perm].

    fastai's MixUp: one lam per image from Beta(alpha, alpha), folded to max(lam, 1-lam) so
    the original image always dominates (and its label stays the "main" one), and the loss is
    lam*loss(y) + (1-lam)*loss(y[perm]). alpha 0.4 keeps most mixes mild.
    """

    def __init__(self, alpha: float = 0.4):
        self.alpha = alpha

    def mix(self, x: torch.Tensor, y: torch.Tensor, g: torch.Generator):
        n = x.shape[0]
        lam = _beta(self.alpha, n, g)
        lam = torch.maximum(lam, 1 - lam)
        perm = torch.randperm(n, generator=g)
        lam_x = lam.to(x.device, x.dtype).view(n, 1, 1, 1)
        perm = perm.to(x.device)
        return torch.lerp(x[perm], x, lam_x), (y[perm], lam.to(x.device))


class CutMix:
    """Paste a random box from another image of the batch: fastai's CutMix.

    One lam for the batch from Beta(alpha, alpha) sets the box's area fraction (1-lam); the
    box is centred uniformly at random and clipped to the image, and lam is recomputed from the
    clipped box so the loss weights match the pixels actually pasted.
    """

    def __init__(self, alpha: float = 1.0):
        self.alpha = alpha

    def mix(self, x: torch.Tensor, y: torch.Tensor, g: torch.Generator):
        n, _, h, w = x.shape
        lam = float(_beta(self.alpha, 1, g)[0])
        perm = torch.randperm(n, generator=g)
        cut = (1.0 - lam) ** 0.5
        cw, ch = round(w * cut), round(h * cut)
        cx = int(torch.randint(0, w, (1,), generator=g))
        cy = int(torch.randint(0, h, (1,), generator=g))
        x1, x2 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
        y1, y2 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
        perm = perm.to(x.device)
        x = x.clone()
        x[:, :, y1:y2, x1:x2] = x[perm][:, :, y1:y2, x1:x2]
        lam = 1 - (x2 - x1) * (y2 - y1) / float(w * h)
        return x, (y[perm], torch.full((n,), lam, device=x.device))


def mixed_loss(loss_func: nn.Module, pred: torch.Tensor, y: torch.Tensor, mixed) -> torch.Tensor:
    """lam * loss(pred, y) + (1 - lam) * loss(pred, y_other), averaged over the batch."""
    y2, lam = mixed
    a = per_item_loss(loss_func, pred, y)
    b = per_item_loss(loss_func, pred, y2)
    return torch.lerp(b, a, lam.to(a.dtype)).mean()


def _beta(alpha: float, n: int, g: torch.Generator) -> torch.Tensor:
    """n samples of Beta(alpha, alpha) that depend only on generator `g` (so a seed repeats them).

    torch's Beta sampler cannot take a generator (it would use, and advance, the global RNG),
    so we draw a seed from `g` and sample with numpy's seeded generator.
    """
    seed = int(torch.randint(0, 2**62, (1,), generator=g))
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.beta(alpha, alpha, n)).float()


def summed_loss(loss_func: nn.Module, pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Sum of the per-item losses (so the mean over a set weighs every image equally)."""
    try:
        return per_item_loss(loss_func, pred, y).float().sum()
    except TypeError:
        return loss_func(pred, y).float() * len(y)
