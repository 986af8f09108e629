"""Metrics over the whole validation set: accuracy, error rate, top-k accuracy, or your own.

Two conventions, kept apart on purpose:

- Public metric functions (`accuracy`, `error_rate`, `top_k_accuracy`, and any callable a
  user passes in `metrics=`) return the batch MEAN, as fastai's do, so
  `def my_acc(pred, targ): return (pred.argmax(1) == targ).float().mean()` works unchanged.
- The validation loop adds up per-batch SUMS (a 0-d tensor on the model's device, no sync per
  batch) and divides by the number of images at the end: exact for the whole set whatever the
  batch sizes, where a mean of per-batch means would overweight a small last batch.

`get_metrics` is the bridge: it returns sum-valued functions. The named metrics (and our own
public functions passed as callables) map to exact counts; any other callable is wrapped to
return `mean * len(targ)`, its batch sum.
"""
from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable

import torch

from ..measures import ACCURACY, ERROR_RATE, TOP_K
from ..utils import ResnetteError

Metric = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def accuracy(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Fraction of the batch whose highest-scoring class is the label (fastai's `accuracy`)."""
    return _correct(pred, y).float().mean()


def error_rate(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Fraction of the batch whose highest-scoring class is not the label (1 - accuracy)."""
    return 1 - accuracy(pred, y)


def top_k_accuracy(pred: torch.Tensor, y: torch.Tensor, k: int = 5) -> torch.Tensor:
    """Fraction of the batch whose label is among the k highest-scoring classes (top-5)."""
    return _in_top_k(pred, y, k).float().mean()


def _correct(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return pred.argmax(dim=1) == y


def _in_top_k(pred: torch.Tensor, y: torch.Tensor, k: int = 5) -> torch.Tensor:
    k = min(k, pred.shape[1])
    return (pred.topk(k, dim=1).indices == y[:, None]).any(dim=1)


# The sums the loop accumulates for our own metrics: integer counts, exact at any set size.
_SUMS: dict[str, Metric] = {
    ACCURACY: lambda pred, y: _correct(pred, y).sum(),
    ERROR_RATE: lambda pred, y: (~_correct(pred, y)).sum(),
    TOP_K: lambda pred, y: _in_top_k(pred, y).sum(),
}
_PUBLIC: dict[Callable, str] = {accuracy: ACCURACY, error_rate: ERROR_RATE, top_k_accuracy: TOP_K}
METRICS: dict[str, Metric] = {ACCURACY: accuracy, ERROR_RATE: error_rate, TOP_K: top_k_accuracy}


def get_metrics(metrics: str | Callable | Iterable[str | Callable] | None) -> dict[str, Metric]:
    """Batch-SUM functions by column name, in the order given (the table's columns).

    `metrics` is a name, a callable returning a batch mean, or a list of either. A callable's
    column is its `__name__` (for a `functools.partial`, the wrapped function's).
    """
    if metrics is None:
        return {}
    if isinstance(metrics, str) or callable(metrics):
        metrics = [metrics]
    out: dict[str, Metric] = {}
    for m in metrics:
        if isinstance(m, str):
            if m not in _SUMS:
                raise ResnetteError(f"unknown metric {m!r}; choose from {', '.join(METRICS)}, "
                                    "or pass a function (pred, targ) -> batch mean")
            name, fn = m, _SUMS[m]
        elif callable(m):
            ours = next((n for f, n in _PUBLIC.items() if f is m), None)
            name = ours or _name(m)
            fn = _SUMS[ours] if ours else _batch_sum(m, name)
        else:
            raise ResnetteError(f"metrics= takes names or functions, got {m!r}")
        if name in out:
            raise ResnetteError(f"metric {name!r} is given twice; each column needs its own name")
        out[name] = fn
    return out


def _name(fn: Callable) -> str:
    inner = getattr(fn, "func", fn)  # functools.partial(top_k_accuracy, k=3) -> top_k_accuracy
    return getattr(fn, "__name__", None) or getattr(inner, "__name__", None) or type(fn).__name__


def _batch_sum(fn: Callable, name: str) -> Metric:
    """fastai's convention (a batch mean) turned into the loop's (a batch sum)."""
    def summed(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = fn(pred, y)
        if not isinstance(out, (numbers.Number, torch.Tensor)) or isinstance(out, complex):
            raise ResnetteError(f"metric {name!r} returned {type(out).__name__} {out!r:.40}; a "
                                "metric returns one number per batch (its mean), e.g. a tensor")
        value = torch.as_tensor(out, dtype=torch.float32, device=pred.device)
        if value.numel() != 1:
            raise ResnetteError(f"metric {name!r} returned shape {tuple(value.shape)}; a metric "
                                "returns one number per batch, its mean over the batch")
        return value.reshape(()) * len(y)
    summed.__name__ = name
    return summed


@torch.no_grad()
def check_first_batch(pred: torch.Tensor, y: torch.Tensor, dls, metrics: dict[str, Metric]
                      ) -> bool:
    """On the first batch: the model gives one score per class of the data, and every metric
    gives a number; otherwise one clear line now, not a traceback deep in the loss or a
    validation at the epoch's end. Returns True (checked)."""
    n_classes = getattr(dls, "c", None)
    if n_classes is not None and (pred.ndim != 2 or pred.shape[1] != n_classes):
        raise ResnetteError(f"the model outputs shape {tuple(pred.shape[1:])} per image but the "
                            f"data has {n_classes} classes (dls.c); build it with "
                            f"n_out={n_classes}")
    for fn in metrics.values():
        fn(pred.detach().float(), y)
    return True
