"""show_batch: a grid of the first augmented training images with their labels, drawn by
resnette.plots (the one module that draws)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from resnette.display import term
from resnette.plots import plot_images, present

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def show_batch(dls, path: str | Path | None = None, max_n: int = 9) -> "Figure":
    """Up to `max_n` images of the training set's first batch (epoch 0, augmented as training
    sees them), titled with their class names; inline in a notebook, a PNG at `path` if given."""
    loader = dls.train
    x, y = loader.batch(loader.order(0), 0, 0)
    n = min(max_n, len(y))
    pixels = loader.decode_batch(x[:n])
    titles = [term(dls.names[int(i)]) for i in y[:n]]   # one line each, escaped
    return present(plot_images(pixels.numpy(), titles), path)
