"""Every picture resnette draws, as PNG files drawn from plain arrays: training curves, the
learning rate finder, the confusion matrix, image grids (a batch, the top losses).

A leaf module (numpy, matplotlib, utils and the run folder's names only), so the data, the
train and the command layers all draw through it. We draw on `matplotlib.figure.Figure` with
the Agg canvas directly instead of `pyplot`: no global figure state, no display needed, safe
in a headless server or a test. matplotlib is imported when the first figure is made (~0.5 s
of a CPU): a command that draws nothing never pays for it.

`draw_run(run)` draws a run folder's plots from its files alone (metrics.csv,
evaluation.json, and the pictures' pixels kept in plots/*.npz), so training only saves
numbers and `resnette report` (or the background process `resnette train` starts) draws.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from resnette.run.folder import Run, read_metrics
from resnette.utils import atomic_write

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _figure(**kwargs: Any) -> "Figure":
    from matplotlib.figure import Figure
    return Figure(**kwargs)


def _save(fig: "Figure", path: str | Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    FigureCanvasAgg(fig)
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100,
                                                      bbox_inches="tight"))


def plot_curves(metrics: dict[str, Sequence], path: str | Path) -> Path:
    """Train/valid loss per epoch on the left, every other numeric metric on the right.

    `metrics` is `runs.read_metrics(...)`: columns such as epoch, train_loss, valid_loss,
    accuracy. A column that is not numbers (the time) is skipped.
    """
    # numbered from 0, as in the table and metrics.csv (resnette.display)
    epochs = np.asarray(metrics.get("epoch") or range(len(next(iter(metrics.values()), []))),
                        dtype=float)
    fig = _figure(figsize=(10, 4))
    ax_loss, ax_metric = fig.subplots(1, 2)
    for key in ("train_loss", "valid_loss"):
        if key in metrics:
            ax_loss.plot(epochs, _floats(metrics[key]), marker="o", label=key)
    ax_loss.set(title="loss", xlabel="epoch")
    ax_loss.legend()
    others = [k for k, v in metrics.items() if k not in ("epoch", "train_loss", "valid_loss")
              and all(isinstance(x, (int, float)) for x in v) and "time" not in k]
    for key in others:
        ax_metric.plot(epochs, _floats(metrics[key]), marker="o", label=key)
    ax_metric.set(title="metrics", xlabel="epoch")
    if others:
        ax_metric.legend()
    for ax in (ax_loss, ax_metric):
        ax.grid(alpha=0.3)
    return _save(fig, path)


def _floats(values: Sequence) -> np.ndarray:
    return np.asarray([v if isinstance(v, (int, float)) else math.nan for v in values], dtype=float)


def plot_lr_find(lrs: Sequence[float], losses: Sequence[float], path: str | Path,
                 suggestions: dict[str, float] | None = None) -> Path:
    """The chapter's LR finder plot: loss against learning rate on a log axis, with the
    suggested learning rates marked."""
    lrs, losses = np.asarray(lrs, dtype=float), np.asarray(losses, dtype=float)
    fig = _figure(figsize=(6, 4))
    ax = fig.subplots()
    ax.plot(lrs, losses)
    ax.set_xscale("log")
    ax.set(xlabel="learning rate", ylabel="loss (smoothed)", title="learning rate finder")
    for (label, lr), marker in zip((suggestions or {}).items(), "ov^sD"):
        if lr and np.isfinite(lr) and len(lrs):
            y = np.interp(np.log(lr), np.log(lrs), losses)
            ax.plot([lr], [y], marker, markersize=8, label=f"{label}: {lr:.2e}")
    if suggestions:
        ax.legend()
    ax.grid(alpha=0.3, which="both")
    return _save(fig, path)


def plot_confusion(cm: np.ndarray, names: Sequence[str], path: str | Path) -> Path:
    """Rows are the actual class, columns the predicted one (as fastai draws it)."""
    cm = np.asarray(cm)
    n = len(names)
    side = max(4.0, 0.55 * n + 2)
    fig = _figure(figsize=(side, side))
    ax = fig.subplots()
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(n), labels=names, rotation=90)
    ax.set_yticks(range(n), labels=names)
    ax.set(xlabel="predicted", ylabel="actual", title="confusion matrix")
    if n <= 30:  # numbers in the cells stay readable up to about this many classes
        top = cm.max() if cm.size else 0
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=8,
                        color="white" if cm[i, j] > top / 2 else "black")
    return _save(fig, path)


def plot_images(images: np.ndarray, titles: Sequence[str], path: str | Path,
                title: str = "", ncols: int | None = None) -> Path:
    """A grid of uint8 images (N,H,W,C with C 1 or 3; an array or a CPU tensor), each titled."""
    images = np.asarray(images)
    n = len(images)
    ncols = ncols or max(1, math.ceil(math.sqrt(n)))
    nrows = max(1, math.ceil(n / ncols))
    fig = _figure(figsize=(2.2 * ncols, 2.4 * nrows))
    axes = np.atleast_1d(fig.subplots(nrows, ncols)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, img, label in zip(axes, images, titles):
        if img.ndim == 3 and img.shape[-1] == 1:
            ax.imshow(img[..., 0], cmap="gray", vmin=0, vmax=255)
        else:
            ax.imshow(img)
        ax.set_title(label, fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_top_losses(images: np.ndarray, actual: Sequence[str], predicted: Sequence[str],
                    losses: Sequence[float], probs: Sequence[float], path: str | Path) -> Path:
    """The validation images the model got most wrong, as fastai's plot_top_losses:
    prediction / actual / loss / probability of the prediction."""
    return plot_images(images, top_loss_titles(actual, predicted, losses, probs), path,
                       title=TOP_LOSSES_TITLE)


TOP_LOSSES_TITLE = "prediction / actual / loss / probability"


def top_loss_titles(actual: Sequence[str], predicted: Sequence[str], losses: Sequence[float],
                    probs: Sequence[float]) -> list[str]:
    return [f"{p} / {a}\nloss {l:.2f}, p {q:.2f}" for p, a, l, q in zip(predicted, actual, losses, probs)]


# --------------------------------------------------------------------------- a run's plots

def save_pixels(path: str | Path, images: np.ndarray, titles: Sequence[str]) -> Path:
    """Keep an image grid's uint8 N,H,W,C pixels and titles (a few KB to a few MB), so it can
    be drawn later, by another process, without the data or the model."""
    images = np.ascontiguousarray(np.asarray(images, dtype=np.uint8))
    titles_array = np.asarray([str(t) for t in titles], dtype=str)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, images=images, titles=titles_array)
    return atomic_write(path, write)


def load_pixels(path: str | Path) -> tuple[np.ndarray, list[str]]:
    with np.load(path, allow_pickle=False) as z:
        return z["images"], [str(t) for t in z["titles"]]


def draw_run(run: Run, only: Sequence[str] = ("curves", "confusion", "batch", "top_losses")
             ) -> list[Path]:
    """Draw every plot (of `only`) the run folder has the numbers for: the curves
    (metrics.csv), the confusion matrix (evaluation.json) and the image grids (plots/*.npz).
    Returns the PNGs drawn. The lr finder's plot is drawn when it runs."""
    import json
    drawn = []
    metrics = read_metrics(run.metrics) if "curves" in only else {}
    if metrics:
        drawn.append(plot_curves(metrics, run.plot("curves")))
    try:
        ev = json.loads(run.evaluation.read_text(encoding="utf-8")) if "confusion" in only else {}
    except (FileNotFoundError, ValueError):
        ev = {}
    if ev.get("confusion") is not None and ev.get("names"):
        drawn.append(plot_confusion(np.asarray(ev["confusion"]), ev["names"], run.plot("confusion")))
    for kind, title in (("batch", ""), ("top_losses", TOP_LOSSES_TITLE)):
        if kind in only and run.pixels(kind).is_file():
            images, titles = load_pixels(run.pixels(kind))
            drawn.append(plot_images(images, titles, run.plot(kind), title=title))
    return drawn
