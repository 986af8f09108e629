"""One rule for how numbers are shown (resnette.display), and every reader of metrics.csv
(the console table, the HTML report, `resnette evaluate`) following it."""
from __future__ import annotations

import re

import torch

from fakes import FakeDataLoaders, tiny_net
from resnette.commands.evaluate import format_evaluation
from resnette.commands.report import build_report
from resnette.display import (format_time, lr_suggestions, percent, seconds, show,
                              show_setting, size)
from resnette.run.config import TrainConfig, save_config
from resnette.run.folder import read_metrics
from resnette.run.setup import prepare
from resnette.train import Learner


def test_counts_times_rates_and_measurements():
    assert (show("epoch", 0), show("epoch", 3.0), show("n", 9469)) == ("0", "3", "9469")
    assert (show("time", 35.7678), show("time", 3725.0)) == ("00:36", "1:02:05") == \
        (format_time(35.7678), format_time(3725))
    assert (show("lr", 0.003), show("valley", 1.2e-4)) == ("3.00e-03", "1.20e-04")
    assert (show("accuracy", 0.9), show("valid_loss", 1.23456789)) == ("0.900000", "1.234568")
    assert (show("accuracy", None), show("split", "valid"), show("progressive", [64, 96])) == \
        ("", "valid", "64, 96")
    assert (show_setting("cutmix", 0.0), show_setting("mixup", 0.4), show_setting("lr", 3e-3),
            show_setting("augment", True), show_setting("size", 128)) == ("0", "0.4", "3.00e-03", "true", "128")


def test_sentences_show_percent_seconds_bytes_and_lr_picks_one_way():
    assert (percent(0.912), percent(1.0), percent(None)) == ("91.2%", "100.0%", "")
    assert (seconds(4.26), seconds(9.96), seconds(37.4), seconds(None)) == \
        ("4.3 s", "10.0 s", "37 s", "")
    assert (size(512 * 2**20), size(1.5 * 2**30), size(2 * 2**30)) == \
        ("512.0 MiB", "1.50 GiB", "2.00 GiB")   # binary units only: never GB beside GiB
    assert lr_suggestions(1e-3, 2.5e-2, 3e-4) == \
        "suggested learning rates: valley 1.00e-03, steepest 2.50e-02, minimum/10 3.00e-04"


def test_metrics_csv_written_by_the_learner_reads_back_with_integer_epochs(tmp_path):
    torch.manual_seed(0)
    learn = Learner(FakeDataLoaders(), tiny_net(), run_dir=tmp_path, quiet=True)
    learn.fit_one_cycle(2, 1e-2)
    m = read_metrics(tmp_path / "metrics.csv")
    assert m["epoch"] == [0, 1] and all(isinstance(e, int) for e in m["epoch"])
    assert m["accuracy"] == [r["accuracy"] for r in learn.recorder.rows]   # full precision kept


def test_the_report_shows_what_the_console_shows(tmp_path):
    run = prepare(tmp_path / "run")
    save_config(TrainConfig(data="digits", lr=0.003, cutmix=0.0), run.config)
    # as the Learner writes it: integer epochs, times in seconds, full precision
    run.metrics.write_text("epoch,train_loss,valid_loss,accuracy,time\n"
                           "0,2.0123456,1.8,0.4,35.7678\n1,1.2,1.0,0.7,36.2\n")
    page = build_report(run.path).read_text()
    training = page[page.index("<h2>Training</h2>"):page.index("<h2>Configuration</h2>")]
    cells = re.findall(r"<td>([^<]*)</td>", training)
    assert cells[:5] == ["0", "2.012346", "1.800000", "0.400000", "00:36"]   # the console's row
    config = page[page.index("<h2>Configuration</h2>"):]
    assert "<td>lr</td><td>3.00e-03</td>" in config and "<td>cutmix</td><td>0</td>" in config
    assert "<th></th>" not in page   # the summary table has no empty header row


def test_evaluate_prints_by_the_same_rule():
    ev = {"n": 359, "accuracy": 0.9, "top_k_accuracy": 1.0, "cross_entropy": 0.25,
          "per_class": {"0": {"accuracy": 0.5, "n": 2}, "1": {"accuracy": None, "n": 0}}}
    text = format_evaluation(ev)
    assert "images          359" in text and "accuracy        0.900000" in text
    assert "top_k_accuracy  1.000000" in text and "cross_entropy   0.250000" in text
    assert "0.500000  (2 images)" in text and "n/a  (0 images)" in text
