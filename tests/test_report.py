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


# ---- a report that explains itself (issue 24 #3) ----------------------------------------------
def _ticks_and_notes(fig):
    """Per axes: its x tick positions, its x limits, its annotations' texts, its legend's."""
    out = []
    for ax in fig.axes:
        legend = ax.get_legend()
        out.append((list(ax.get_xticks()), ax.get_xlim(), [t.get_text() for t in ax.texts],
                    [t.get_text() for t in legend.get_texts()] if legend else []))
    return out


def _in_view(ticks, lim):
    return [t for t in ticks if lim[0] <= t <= lim[1]]


NAN = float("nan")


@pytest.mark.parametrize("n_epochs", [1, 3, 20])
def test_curves_have_whole_epoch_ticks_and_label_each_lines_last_point(n_epochs):
    """One epoch, the `fast` recipe's shape (validated after the last epoch only) and a long
    run: every epoch is in view, the ticks are whole epochs, and each line's last value is
    written beside its point (a lone validation point is labelled, not lost)."""
    epochs = list(range(n_epochs))
    last_only = [NAN] * (n_epochs - 1)
    metrics = {"epoch": epochs, "train_loss": [1.0 / (e + 1) for e in epochs],
               "valid_loss": last_only + [0.4321], "accuracy": last_only + [0.8765],
               "time": [3.0] * n_epochs}
    fig = plots.plot_curves(metrics, labels={"train_loss": "train_loss: training objective"})
    (loss_ticks, loss_lim, loss_notes, loss_legend), (m_ticks, m_lim, m_notes, m_legend) = \
        _ticks_and_notes(fig)
    for ticks, lim in ((loss_ticks, loss_lim), (m_ticks, m_lim)):
        shown = _in_view(ticks, lim)
        assert shown and all(float(t).is_integer() for t in shown)
        assert lim[0] < 0 and lim[1] > n_epochs - 1   # every epoch in view, not one squeezed
        assert lim[1] - lim[0] >= 1
    assert loss_notes == [f"{1.0 / n_epochs:.4f}", "0.4321"] and m_notes == ["0.8765"]
    assert loss_legend == ["train_loss: training objective", "valid_loss"]
    assert m_legend == ["accuracy"]
    assert fig.axes[1].get_ylim() == (0, 1.05)   # a fraction on its whole range


def test_report_names_each_number_and_shows_the_sizes_per_epoch(tmp_path):
    """A run like the `fast` recipe: label smoothing, progressive sizes, a larger test size,
    validated after its last epoch. The report says which loss is which, shows each epoch's
    training size and the test size, and the curves' legend says the objective."""
    run = prepare(tmp_path / "run")
    save_config(TrainConfig(data="digits", size=48, presize=56, progressive=[32, 40, 48],
                            test_size=56, epochs=3, label_smoothing=0.1, valid_every=0),
                run.config)
    run.metrics.write_text("epoch,train_loss,valid_loss,accuracy,time\n0,0.9,,,3\n"
                           "1,0.7,,,3\n2,0.6,1.0835,0.7679,3\n")
    runs.save_json(run.evaluation, {"split": "valid", "size": 56, "n": 20, "accuracy": 0.7679,
                                    "top_k_accuracy": 1.0, "cross_entropy": 0.7615})
    page = build_report(run.path).read_text()
    text = re.sub(r"<[^>]+>", " ", page)
    assert "train 32 px (epoch 0), 40 px (epoch 1), 48 px (epoch 2); test 56 px" in text
    assert ("train_loss : training objective (label-smoothed cross-entropy, eps=0.1)"
            in re.sub(r"\s+", " ", text))
    assert "valid_loss : validation objective (label-smoothed cross-entropy, eps=0.1)" in \
        re.sub(r"\s+", " ", text)
    assert re.search(r"<td>cross_entropy</td><td>0\.761500</td><td>plain cross-entropy \(no "
                     r"label smoothing\)", page)
    assert re.search(r"final valid_loss: validation objective \(label-smoothed cross-entropy, "
                     r"eps=0\.1\)</td><td>1\.083500</td>", page)
    training = page[page.index("<h2>Training</h2>"):page.index("<h2>Evaluation</h2>")]
    rows = re.findall(r"<tr>(.*?)</tr>", training)
    assert re.findall(r"<th>([^<]*)</th>", rows[0]) == ["epoch", "train_loss", "valid_loss",
                                                       "accuracy", "time", "size"]
    assert [re.findall(r"<td>([^<]*)</td>", r)[-1] for r in rows[1:]] == ["32", "40", "48"]
    from resnette.run.drawing import curve_words
    labels, caption = curve_words(run, runs.read_metrics(run.metrics))
    assert labels["train_loss"] == "train_loss: training objective (label-smoothed " \
        "cross-entropy, eps=0.1)"
    assert caption == "train 32 px (epoch 0), 40 px (epoch 1), 48 px (epoch 2); test 56 px"
