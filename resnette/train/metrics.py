"""Metrics over the whole validation set: accuracy, error rate, top-k accuracy.

Each metric returns the per-batch SUM of its score (e.g. the number of correct predictions)
as a 0-d tensor on the model's device; the loop adds those up without syncing and divides by
the number of images at the end, so the result is exact for the whole set whatever the
batch sizes (a mean of per-batch means would overweight a small last batch).
"""
from __future__ import annotations

from typing import Callable

import torch

from ..utils import ResnetteError

Metric = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def accuracy(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Number of items whose highest-scoring class is the label."""
    return (pred.argmax(dim=1) == y).sum()


def error_rate(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Number of items whose highest-scoring class is not the label (1 - accuracy, summed)."""
    return (pred.argmax(dim=1) != y).sum()


def top_k_accuracy(pred: torch.Tensor, y: torch.Tensor, k: int = 5) -> torch.Tensor:
    """Number of items whose label is among the k highest-scoring classes (top-5 by default)."""
    k = min(k, pred.shape[1])
    return (pred.topk(k, dim=1).indices == y[:, None]).any(dim=1).sum()


METRICS: dict[str, Metric] = {
    "accuracy": accuracy,
    "error_rate": error_rate,
    "top_k_accuracy": top_k_accuracy,
}


def get_metrics(names: list[str] | tuple[str, ...] | str | None) -> dict[str, Metric]:
    """Metric functions by name, in the order given (the order of the table's columns)."""
    if names is None:
        return {}
    if isinstance(names, str):
        names = [names]
    out = {}
    for n in names:
        if callable(n):
            out[n.__name__] = n
        elif n in METRICS:
            out[n] = METRICS[n]
        else:
            raise ResnetteError(f"unknown metric {n!r}; choose from {', '.join(METRICS)}")
    return out
