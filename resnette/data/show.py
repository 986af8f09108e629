"""A PNG grid of images with their labels (for show_batch): drawn by resnette.plots, the one
module that draws."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from resnette.plots import plot_images


def image_grid(pixels: torch.Tensor, titles: Sequence[str], path: str | Path) -> Path:
    """uint8 N,H,W,C images in a near-square grid, each titled; written atomically as PNG."""
    return plot_images(pixels.numpy(), titles, path)
