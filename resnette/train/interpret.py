"""fastai's ClassificationInterpretation: where a trained classifier goes wrong.

    interp = ClassificationInterpretation.from_learner(learn)
    interp.plot_confusion_matrix(); interp.most_confused(min_val=2); interp.plot_top_losses(9)

The predictions are gathered once (`learn.get_preds` over the valid set, with per-item losses)
and every method reads them. Same names, orders and tuples as fastai's; the pictures return
their matplotlib Figure (shown inline in a notebook, written to `path` when given).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..plots import plot_confusion, plot_top_losses, present
from ..utils import ResnetteError

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class ClassificationInterpretation:
    """Predictions, targets, decoded classes and losses of `learn` over a loader."""

    def __init__(self, learn, dl, probs: torch.Tensor, targs: torch.Tensor,
                 decoded: torch.Tensor, losses: torch.Tensor):
        self.learn, self.dl = learn, dl
        self.probs, self.targs, self.decoded, self.losses = probs, targs, decoded, losses
        self.vocab = list(learn.dls.vocab)   # fastai's dls.vocab: the folder names
        self.names = list(getattr(learn.dls, "names", self.vocab))   # what pictures show

    @classmethod
    def from_learner(cls, learn, ds_idx: int = 1, dl=None) -> "ClassificationInterpretation":
        """fastai's: interpret `learn` on `dl`, by default the valid set (ds_idx=1)."""
        dl = dl or (learn.dls.valid if ds_idx == 1 else learn.dls.train)
        probs, targs, decoded, losses = learn.get_preds(dl=dl, with_decoded=True,
                                                        with_loss=True)
        if len(targs) == 0:
            raise ResnetteError("nothing to interpret: the loader has no images")
        return cls(learn, dl, probs, targs, decoded, losses)

    def top_losses(self, k: int | None = None, largest: bool = True
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """fastai's: the `k` largest (or smallest) losses and their indexes, all by default."""
        return self.losses.topk(len(self.losses) if k is None else min(k, len(self.losses)),
                                largest=largest)

    def confusion_matrix(self) -> np.ndarray:
        """Counts as an array: rows the actual class, columns the predicted one (fastai's)."""
        n = len(self.vocab)
        cm = torch.zeros(n, n, dtype=torch.int64)
        cm.index_put_((self.targs.long(), self.decoded.long()),
                      torch.ones(len(self.targs), dtype=torch.int64), accumulate=True)
        return cm.numpy()

    def most_confused(self, min_val: int = 1) -> list[tuple[str, str, int]]:
        """fastai's: (actual, predicted, count) for each off-diagonal cell with at least
        `min_val` images, most first (ties in row-major order, as fastai's stable sort)."""
        cm = self.confusion_matrix()
        np.fill_diagonal(cm, 0)
        cells = [(self.vocab[i], self.vocab[j], int(cm[i, j]))
                 for i, j in zip(*np.where(cm >= min_val))]
        return sorted(cells, key=lambda c: c[2], reverse=True)

    def plot_confusion_matrix(self, normalize: bool = False,
                              path: str | Path | None = None) -> "Figure":
        """fastai's: the confusion matrix drawn with its counts (`normalize`: each row's
        fractions), classes by their names."""
        return present(plot_confusion(self.confusion_matrix(), self.names, normalize=normalize),
                       path)

    def plot_top_losses(self, k: int = 9, largest: bool = True,
                        path: str | Path | None = None) -> "Figure":
        """fastai's: the `k` images with the largest losses, titled prediction / actual /
        loss / probability of the prediction. Needs a resnette loader (its `images`)."""
        if not hasattr(self.dl, "images"):
            raise ResnetteError("plot_top_losses needs a resnette loader (dls.valid or "
                                "dls.train), which can give back its images")
        losses, idx = self.top_losses(k, largest)
        pixels = self.dl.images(idx).permute(0, 2, 3, 1).numpy()
        pred = self.decoded[idx]
        return present(plot_top_losses(pixels, [self.names[int(t)] for t in self.targs[idx]],
                                       [self.names[int(p)] for p in pred], losses.tolist(),
                                       self.probs[idx, pred].tolist()), path)
