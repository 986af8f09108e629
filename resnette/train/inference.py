"""The Learner's evaluation: the loop's validation (`score`), and fastai's `validate`,
`get_preds`, `show_results` over it. With EMA on, every one of them uses the averaged weights.
`Learner` inherits `Inference`; the tail of this module has its small helpers.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..plots import plot_images, present
from ..utils import ResnetteError
from . import distributed
from .evaluation import predict_logits
from .losses import per_item_loss, summed_loss
from .precision import autocast

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class Inference:
    """Mixed into `Learner`; see the module's docstring."""

    @torch.no_grad()
    def score(self, loader=None, tta: bool = False, keep: bool = False) -> dict[str, float]:
        """valid_loss and every metric over the whole loader (default: dls.valid), summed per item.
        `keep`: also leave (probabilities, targets) on the CPU in `valid_outputs` (this rank's).

        With EMA on, this evaluates the averaged weights. A loader sharded over DDP ranks is
        reduced as sums and counts, so each image counts once (every rank must call this then).
        """
        loader = loader or self.dls.valid
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(0)
        sharded = getattr(loader, "world_size", 1) > 1
        if sharded:
            distributed.broadcast_buffers(self.model)
        model = self.eval_model()
        loss_sum = torch.zeros((), device=self.device)
        sums = {k: torch.zeros((), device=self.device) for k in self.metrics}
        n, kept = 0, []
        for x, y in loader:
            pred = self._logits(model, x, tta)
            kept += [(pred.softmax(1), y)] if keep else []
            loss_sum += summed_loss(self.loss_func, pred, y)
            for k, f in self.metrics.items():
                sums[k] += f(pred, y)
            n += len(y)
        if sharded:
            loss_sum, *metric_sums, n = distributed.sum_over_ranks([loss_sum, *sums.values(), n])
            sums = dict(zip(sums, metric_sums))
        if n == 0:
            raise ResnetteError("the validation set is empty; give the data a valid split")
        self.valid_outputs = tuple(torch.cat(t).cpu() for t in zip(*kept)) if keep else None
        return {"valid_loss": float(loss_sum) / n, **{k: float(v) / n for k, v in sums.items()}}

    @torch.no_grad()
    def predict(self, x: torch.Tensor, tta: bool = False) -> torch.Tensor:
        """Class probabilities for a normalised batch N,C,H,W (or one image C,H,W). (fastai's
        `predict` takes one raw item and returns (label, index, probabilities).)"""
        single = x.ndim == 3
        x = (x[None] if single else x).to(self.device)
        probs = self._logits(self.eval_model(), x, tta).softmax(dim=1).float().cpu()
        return probs[0] if single else probs

    def eval_model(self) -> nn.Module:
        """In eval mode: the EMA's when on; under DDP the plain module (shards differ in length)."""
        ema = self.ema
        return (ema.module if ema else self.model if self.ddp else self.forward_model).eval()

    def _logits(self, model: nn.Module, x: torch.Tensor, tta: bool) -> torch.Tensor:
        if self.channels_last and x.dim() == 4:   # NHWC is a layout of image batches only
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(self.precision, self.device.type):
            return predict_logits(model, x, tta)

    def validate(self, ds_idx: int = 1, dl=None, tta: bool = False) -> list[float]:
        """fastai's: [valid_loss, *metrics] over `dl`, else dls.valid (ds_idx=1) or dls.train
        (ds_idx=0). `score()` gives the same numbers by name."""
        return list(self.score(dl or self._loader(ds_idx), tta).values())

    def _loader(self, ds_idx: int):
        return self.dls.valid if ds_idx == 1 else self.dls.train

    @torch.no_grad()
    def get_preds(self, ds_idx: int = 1, dl=None, with_decoded: bool = False,
                  with_loss: bool = False, act=None, tta: bool = False) -> tuple:
        """fastai's: (predictions, targets[, decoded][, losses]) over `dl` (default: the valid
        set, ds_idx=1; 0: the training loader, shuffled and augmented, as fastai's dls[0]).

        `act` defaults to the loss's `activation` (softmax for resnette's cross-entropies, as
        fastai's CrossEntropyLossFlat); torch's nn.CrossEntropyLoss also gets softmax (fastai
        would leave its outputs raw). Decoded is the argmax; losses are per item. `tta`: the
        chapter's flip TTA. Everything is returned on the CPU, in the loader's order."""
        loader = dl or self._loader(ds_idx)
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(0)
        model = self.eval_model()
        outs, targets = [], []
        for x, y in loader:
            outs.append(self._logits(model, x, tta).float())
            targets.append(y)
        out, targ = torch.cat(outs), torch.cat(targets)
        act = act or getattr(self.loss_func, "activation", None) or _softmax
        res = [act(out).cpu(), targ.cpu()]
        if with_decoded:
            res.append(getattr(self.loss_func, "decodes", _argmax)(out).cpu())
        if with_loss:
            res.append(per_item_loss(self.loss_func, out, targ).cpu())
        return tuple(res)

    def show_results(self, max_n: int = 9, path: str | Path | None = None) -> "Figure":
        """fastai's: the first `max_n` images of the valid set, titled actual / predicted in
        green when right and red when wrong; inline in a notebook, a PNG at `path` if given.
        (fastai's may show a shuffled sample or another set; this shows the valid set's start.)"""
        loader = self.dls.valid
        probs, targets, decoded = self.get_preds(dl=_first(loader, max_n), with_decoded=True)
        n = min(max_n, len(targets))
        names = self.dls.names
        pixels = loader.images(range(n)).permute(0, 2, 3, 1).numpy()
        titles = [f"{names[int(t)]}\n{names[int(d)]}" for t, d in zip(targets[:n], decoded[:n])]
        colors = ["green" if t == d else "red" for t, d in zip(targets[:n], decoded[:n])]
        return present(plot_images(pixels, titles, title="actual / predicted", colors=colors),
                       path)


def _softmax(out: torch.Tensor) -> torch.Tensor:
    return out.softmax(dim=-1)


def _argmax(out: torch.Tensor) -> torch.Tensor:
    return out.argmax(dim=-1)


def _first(loader, n: int) -> list:
    """The first batches of `loader` holding at least `n` items."""
    if hasattr(loader, "set_epoch"):
        loader.set_epoch(0)
    taken, batches = 0, []
    for x, y in loader:
        batches.append((x, y))
        taken += len(y)
        if taken >= n:
            break
    return batches
