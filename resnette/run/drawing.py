"""A run folder's plots, drawn from its files alone (metrics.csv, evaluation.json, and the
pictures' pixels kept in plots/*.npz): training only saves numbers, and `resnette report` (or
the background process `resnette train` starts) draws them through resnette.plots."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from resnette.plots import (TOP_LOSSES_TITLE, load_pixels, plot_confusion, plot_curves,
                            plot_images)
from resnette.measures import legend, sizes_text
from resnette.run.config import as_dict, eval_size
from resnette.run.reading import read_config
from resnette.run.setup import sizes_per_epoch
from resnette.files import read_json
from resnette.runfiles import Run, read_metrics
from resnette.utils import ResnetteError


def curve_words(run: Run, metrics: dict[str, list]) -> tuple[dict[str, str], str]:
    """The curves' legend (each column with what it is, for this run's loss) and caption (the
    image size of each epoch, and the test size), from its config.toml; names alone when
    the config cannot be read (the plot is still worth drawing)."""
    try:
        cfg = read_config(run.config)
    except (ResnetteError, OSError):
        return {}, ""
    config = as_dict(cfg)
    labels = {k: legend(k, config) for k in metrics}
    return labels, sizes_text(sizes_per_epoch(cfg), eval_size(cfg))


def draw_run(run: Run, only: Sequence[str] = ("curves", "confusion", "batch", "top_losses")
             ) -> list[Path]:
    """Draw every plot (of `only`) the run folder has the numbers for: the curves
    (metrics.csv), the confusion matrix (evaluation.json) and the image grids (plots/*.npz).
    Returns the PNGs drawn. The lr finder's plot is drawn when it runs."""
    drawn = []
    metrics = read_metrics(run.metrics) if "curves" in only else {}
    if metrics:
        plot_curves(metrics, run.plot("curves"), *curve_words(run, metrics))
        drawn.append(run.plot("curves"))
    try:
        ev = read_json(run.evaluation, "evaluation") if "confusion" in only else {}
        ev = ev if isinstance(ev, dict) else {}
    except (OSError, ValueError, ResnetteError):   # missing, damaged, a FIFO: not drawn
        ev = {}
    if ev.get("confusion") is not None and ev.get("names"):
        plot_confusion(np.asarray(ev["confusion"]), ev["names"], run.plot("confusion"))
        drawn.append(run.plot("confusion"))
    for kind, title in (("batch", ""), ("top_losses", TOP_LOSSES_TITLE)):
        if kind in only and run.pixels(kind).is_file():
            images, titles = load_pixels(run.pixels(kind))
            plot_images(images, titles, run.plot(kind), title=title)
            drawn.append(run.plot(kind))
    return drawn
