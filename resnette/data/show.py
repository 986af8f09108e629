"""A PNG grid of images with their labels (for show_batch and run reports)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import torch

from resnette.utils import atomic_write


def image_grid(pixels: torch.Tensor, titles: Sequence[str], path: str | Path) -> Path:
    """uint8 N,H,W,C images in a near-square grid, each titled; written atomically as PNG."""
    # The object API (Figure + Agg canvas) needs no pyplot state and no display.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = len(pixels)
    cols = max(1, math.ceil(math.sqrt(n)))
    rows = max(1, math.ceil(n / cols))
    fig = Figure(figsize=(2.2 * cols, 2.4 * rows))
    FigureCanvasAgg(fig)
    for i in range(rows * cols):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.axis("off")
        if i < n:
            img = pixels[i].numpy()
            if img.shape[-1] == 1:
                ax.imshow(img[..., 0], cmap="gray", vmin=0, vmax=255)
            else:
                ax.imshow(img)
            ax.set_title(titles[i], fontsize=9)
    fig.tight_layout()
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=80))
