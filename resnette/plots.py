"""Every picture resnette draws, from plain arrays: training curves, the loss per batch, the
learning rate finder, the schedules, the confusion matrix, image grids (a batch, the top losses,
results). Each `plot_*` returns the matplotlib Figure and also writes it as PNG when given a path.

A leaf (numpy, matplotlib, utils and resnette.notebook only): it draws what it is handed, so
the data, train and run layers all draw through it without importing upwards. We draw on
`matplotlib.figure.Figure` with the Agg canvas instead of `pyplot`: no global figure state, no
display needed, safe in a headless server or a test. matplotlib is imported when the first
figure is made (~0.5 s of a CPU): a command that draws nothing never pays for it.

`present(fig, path)` is what the user-facing picture methods (show_batch, lr_find, plot_loss,
...) end with: shown inline in a Jupyter notebook, written to `path` when one is given.

Text is drawn as the characters it holds (`as_text`, before every drawing): a class or run
name is never mathtext (`$\\notacmd$` is those nine characters, not a crash), its control
characters are shown escaped (resnette.display.term), and a script the default font lacks
(CJK, ...) is drawn with an installed font that has it, else one warning names the font to
install instead of matplotlib's warning per missing glyph.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from resnette.display import term
from resnette.files import atomic_write, open_read, open_temporary
from resnette.plotfonts import as_text
from resnette.notebook import in_notebook, quiet_glyphs, show_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _figure(**kwargs: Any) -> "Figure":
    from matplotlib.figure import Figure
    return Figure(**kwargs)


def _save(fig: "Figure", path: str | Path | None) -> "Figure":
    """Write `fig` as PNG to `path` (atomically) when there is one; return the figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    FigureCanvasAgg(fig)
    as_text(fig)
    if path is not None:
        with quiet_glyphs():
            atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100,
                                                       bbox_inches="tight"))
    return fig


def present(fig: "Figure", path: str | Path | None = None) -> "Figure":
    """A picture method's ending: inline in a notebook, written to `path` if given; never a
    file nobody asked for."""
    _save(fig, path)
    if in_notebook():
        show_figure(fig)
    return fig


def plot_curves(metrics: dict[str, Sequence], path: str | Path | None = None,
                labels: dict[str, str] | None = None, caption: str = "") -> "Figure":
    """Train/valid loss per epoch on the left, every other numeric metric on the right.

    `metrics` is `runs.read_metrics(...)`: columns such as epoch, train_loss, valid_loss,
    accuracy. A column that is not numbers (the time) is skipped. `labels` names a column in
    the legend (e.g. "train_loss: training objective (label-smoothed cross-entropy, eps=0.1)");
    `caption` is a line above both (the image sizes of the run's epochs).
    Both axes span every epoch with whole-number ticks, and each line's last value is written
    beside its point: a run validated once (one epoch, or the `fast` recipe's last epoch only)
    shows labelled points, not dots lost on a stretched axis.
    """
    # numbered from 0, as in the table and metrics.csv (resnette.display)
    epochs = np.asarray(metrics.get("epoch") or range(len(next(iter(metrics.values()), []))),
                        dtype=float)
    labels = labels or {}
    fig = _figure(figsize=(11, 4.5))
    ax_loss, ax_metric = fig.subplots(1, 2)
    losses = [k for k in ("train_loss", "valid_loss") if k in metrics]
    others = [k for k, v in metrics.items() if k not in ("epoch", "train_loss", "valid_loss")
              and all(isinstance(x, (int, float)) for x in v) and "time" not in k]
    for ax, keys, title in ((ax_loss, losses, "loss"), (ax_metric, others, "metrics")):
        for i, key in enumerate(keys):
            _epoch_line(ax, epochs, _floats(metrics[key]), labels.get(key, key), i)
        ax.set(title=title, xlabel="epoch")
        _epoch_axis(ax, epochs)
        if keys:   # below the axes: a long label never hides a point
            ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(0, -0.14), frameon=False)
        ax.grid(alpha=0.3)
    top = max((v for k in losses for v in _floats(metrics[k]) if np.isfinite(v)), default=1.0)
    ax_loss.set_ylim(0, top * 1.15 or 1.0)   # losses from 0: one point is not a whole axis
    if all(0 <= v <= 1 for k in others for v in _floats(metrics[k]) if np.isfinite(v)):
        ax_metric.set_ylim(0, 1.05)          # fractions (accuracies) on their whole range
    if caption:
        fig.suptitle(caption, fontsize=9)
    return _save(fig, path)


def _epoch_line(ax: Any, epochs: np.ndarray, values: np.ndarray, label: str, i: int) -> None:
    """One column against the epochs: a line through the measured epochs, a marker at each,
    and the last value written beside its point (the i-th line's above or below it, so two
    equal values stay readable)."""
    seen = np.isfinite(values)
    if not seen.any():
        return
    line, = ax.plot(epochs[seen], values[seen], marker="o", label=label)
    x, y = epochs[seen][-1], values[seen][-1]
    ax.annotate(f"{y:.4f}", (x, y), xytext=(7, 5 if i % 2 == 0 else -12),
                textcoords="offset points", fontsize=8, color=line.get_color())


def _epoch_axis(ax: Any, epochs: np.ndarray) -> None:
    """Every epoch of the run on the x axis, ticks on whole epochs only."""
    from matplotlib.ticker import MaxNLocator
    first, last = (float(epochs.min()), float(epochs.max())) if len(epochs) else (0.0, 0.0)
    pad = max(0.5, 0.08 * (last - first))
    ax.set_xlim(first - pad, last + pad)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


def _floats(values: Sequence) -> np.ndarray:
    return np.asarray([v if isinstance(v, (int, float)) else math.nan for v in values], dtype=float)


def plot_lr_find(lrs: Sequence[float], losses: Sequence[float], path: str | Path | None = None,
                 suggestions: dict[str, float] | None = None) -> "Figure":
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


def plot_confusion(cm: np.ndarray, names: Sequence[str], path: str | Path | None = None,
                   normalize: bool = False) -> "Figure":
    """Rows are the actual class, columns the predicted one (as fastai draws it); `normalize`:
    each row as fractions of that class (2 decimals in the cells, as fastai's norm_dec)."""
    cm = np.asarray(cm, dtype=float)
    if normalize:
        cm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    n = len(names)
    side = max(4.0, 0.55 * n + 2)
    fig = _figure(figsize=(side, side))
    ax = fig.subplots()
    ax.imshow(cm, cmap="Blues")
    labels = [term(name) for name in names]   # a name stays on its tick, escaped
    ax.set_xticks(range(n), labels=labels, rotation=90)
    ax.set_yticks(range(n), labels=labels)
    ax.set(xlabel="predicted", ylabel="actual", title="confusion matrix")
    if n <= 30:  # numbers in the cells stay readable up to about this many classes
        top = cm.max() if cm.size else 0
        for i in range(n):
            for j in range(n):
                text = f"{cm[i, j]:.2f}" if normalize else str(int(cm[i, j]))
                ax.text(j, i, text, ha="center", va="center", fontsize=8,
                        color="white" if cm[i, j] > top / 2 else "black")
    return _save(fig, path)


def plot_loss(losses: Sequence[float], valid: tuple[Sequence[float], Sequence[float]] | None,
              skip_start: int = 5, path: str | Path | None = None) -> "Figure":
    """fastai's Recorder.plot_loss: the smoothed training loss per batch from `skip_start` on,
    and the validation loss at each epoch's last batch (`valid`: batch numbers, losses)."""
    fig = _figure(figsize=(6, 4))
    ax = fig.subplots()
    ax.plot(np.arange(skip_start, len(losses)), np.asarray(losses[skip_start:], dtype=float),
            label="train")
    if valid is not None:
        its, values = np.asarray(valid[0], dtype=float), _floats(valid[1])
        keep = (its >= skip_start) & np.isfinite(values)
        ax.plot(its[keep], values[keep], marker="o", label="valid")
    ax.set(xlabel="batch", ylabel="loss", title="loss")
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_sched(values: dict[str, Sequence[float]], path: str | Path | None = None) -> "Figure":
    """fastai's Recorder.plot_sched: each hyper-parameter (lr, mom, ...) per batch, side by side."""
    fig = _figure(figsize=(4 * len(values), 3.5))
    axes = np.atleast_1d(fig.subplots(1, len(values)))
    for ax, (key, vals) in zip(axes, values.items()):
        ax.plot(np.asarray(vals, dtype=float))
        ax.set(xlabel="batch", title=key)
        ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_images(images: np.ndarray, titles: Sequence[str], path: str | Path | None = None,
                title: str = "", ncols: int | None = None,
                colors: Sequence[str] | None = None) -> "Figure":
    """A grid of uint8 images (N,H,W,C with C 1 or 3; an array or a CPU tensor), each titled
    (in `colors[i]` when given: show_results' green for right, red for wrong, as fastai)."""
    images = np.asarray(images)
    n = len(images)
    ncols = ncols or max(1, math.ceil(math.sqrt(n)))
    nrows = max(1, math.ceil(n / ncols))
    fig = _figure(figsize=(2.2 * ncols, 2.4 * nrows))
    axes = np.atleast_1d(fig.subplots(nrows, ncols)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, img, label, color in zip(axes, images, titles, colors or ["black"] * n):
        if img.ndim == 3 and img.shape[-1] == 1:
            ax.imshow(img[..., 0], cmap="gray", vmin=0, vmax=255)
        else:
            ax.imshow(img)
        ax.set_title(label, fontsize=8, color=color)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_top_losses(images: np.ndarray, actual: Sequence[str], predicted: Sequence[str],
                    losses: Sequence[float], probs: Sequence[float],
                    path: str | Path | None = None) -> "Figure":
    """The validation images the model got most wrong, as fastai's plot_top_losses:
    prediction / actual / loss / probability of the prediction."""
    return plot_images(images, top_loss_titles(actual, predicted, losses, probs), path,
                       title=TOP_LOSSES_TITLE)


TOP_LOSSES_TITLE = "prediction / actual / loss / probability"


def top_loss_titles(actual: Sequence[str], predicted: Sequence[str], losses: Sequence[float],
                    probs: Sequence[float]) -> list[str]:
    return [f"{term(p)} / {term(a)}\nloss {l:.2f}, p {q:.2f}"
            for p, a, l, q in zip(predicted, actual, losses, probs)]


# --------------------------------------------------------------------------- a run's plots

def save_pixels(path: str | Path, images: np.ndarray, titles: Sequence[str]) -> Path:
    """Keep an image grid's uint8 N,H,W,C pixels and titles (a few KB to a few MB), so it can
    be drawn later, by another process, without the data or the model."""
    images = np.ascontiguousarray(np.asarray(images, dtype=np.uint8))
    titles_array = np.asarray([str(t) for t in titles], dtype=str)

    def write(tmp: str) -> None:
        with open_temporary(tmp) as f:
            np.savez(f, images=images, titles=titles_array)
    return atomic_write(path, write)


def load_pixels(path: str | Path) -> tuple[np.ndarray, list[str]]:
    with open_read(path, "plot data") as f, np.load(f, allow_pickle=False) as z:
        return z["images"], [str(t) for t in z["titles"]]
