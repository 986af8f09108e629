"""Plots from plain arrays, and the self-contained HTML report rendered in real Chromium."""
import base64
import re

import numpy as np
import pytest
from PIL import Image

from resnette import plots
from resnette.run import folder as runs
from resnette.run.setup import prepare
from resnette.run.config import TrainConfig, save_config
from resnette.commands.report import build_report
from fakes import CHROMIUM, rendered_images



def _png_size(path):
    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


def make_run(tmp_path):
    """A run folder as training leaves it, with every plot drawn from made-up arrays."""
    run = prepare(tmp_path / "run<&>")
    save_config(TrainConfig(data="digits", size=32, presize=32), run.config)
    run.metrics.write_text("epoch,train_loss,valid_loss,accuracy,time\n"
                           "0,2.0,1.8,0.40,0:03\n1,1.2,1.0,0.70,0:03\n2,0.6,0.5,0.90,0:03\n")
    names = ["zero", "one", "two<script>"]
    rng = np.random.default_rng(0)
    plots.plot_curves(runs.read_metrics(run.metrics), run.plot("curves"))
    lrs = np.logspace(-7, 1, 60)
    plots.plot_lr_find(lrs, 2 - np.exp(-((np.log10(lrs) + 2) ** 2)), run.plot("lr_find"),
                       {"valley": 1e-3, "slide": 3e-3})
    plots.plot_confusion(np.array([[5, 1, 0], [0, 6, 1], [2, 0, 4]]), names, run.plot("confusion"))
    imgs = rng.integers(0, 255, (9, 32, 32, 3), dtype=np.uint8)
    plots.plot_images(imgs, [names[i % 3] for i in range(9)], run.plot("batch"))
    plots.plot_top_losses(imgs[:4, ..., :1], names[:2] * 2, names[1:3] * 2, [3.1, 2.0, 1.5, 1.1],
                          [0.9, 0.8, 0.7, 0.6], run.plot("top_losses"))
    runs.save_json(run.evaluation, {"split": "valid", "n": 20, "accuracy": 0.75, "top5": 1.0,
                                    "per_class": {"zero": {"accuracy": 0.83, "n": 6},
                                                  "two<script>": {"accuracy": 0.5, "n": 4}}})
    return run


def test_every_plot_is_a_png(tmp_path):
    run = make_run(tmp_path)
    for kind in runs.PLOT_NAMES:
        w, h = _png_size(run.plot(kind))
        assert w > 100 and h > 100, kind


def test_report_is_one_self_contained_file(tmp_path):
    run = make_run(tmp_path)
    page = build_report(run.path).read_text()
    srcs = re.findall(r'<img src="([^"]+)"', page)
    assert len(srcs) == len(runs.PLOT_NAMES)
    for src in srcs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert not re.search(r'(src|href)="(https?:|//|/)', page)  # nothing fetched
    assert "<script>" not in page and "two&lt;script&gt;" in page  # escaped
    assert "run&lt;&amp;&gt;" in page and "0.9000" in page and "0.8300" in page


def test_report_without_plots_still_renders(tmp_path):
    run = prepare(tmp_path / "bare")
    save_config(TrainConfig(), run.config)
    assert "<img" not in build_report(run.path).read_text()


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt: chromium)")
def test_every_image_renders_in_chromium(tmp_path):
    run = make_run(tmp_path)
    page = build_report(run.path)
    assert rendered_images(page.read_text(), tmp_path) == (5, 5)
    # The check can fail: a corrupt image is reported as not rendered.
    broken = tmp_path / "broken.html"
    broken.write_text(page.read_text().replace("base64,iVBOR", "base64,AAAA", 1))
    assert rendered_images(broken.read_text(), tmp_path) == (4, 5)
