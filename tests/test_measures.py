"""One name per measured number (resnette/measures.py, issue 24 #5): the epoch table,
metrics.csv, evaluation.json, `resnette runs` and the report call top-5 accuracy
`top_k_accuracy` and an evaluation's loss `cross_entropy`; a run folder from before (its
evaluation.json saying `top5` and `loss`) still shows everywhere; `predict`'s text output
has a header line and one line per image."""
from __future__ import annotations

import csv
import json
import re

import pytest
from hypothesis import given, strategies as st

from fakes import image_folder
from resnette.cli import main
from resnette.commands.predict import PREDICT_HEADER, Prediction, format_predictions
from resnette.measures import (ACCURACY, CROSS_ENTROPY, EVALUATION, OLD_NAMES, TOP_K,
                               TRAIN_LOSS, VALID_LOSS, current, sizes_text, words)

SIX = tuple("abcdef")   # more than 5 classes: the run's metrics include top_k_accuracy


@pytest.fixture(scope="module")
def six_run(tmp_path_factory):
    """A one-epoch run on six classes, its console output and its folder."""
    top = tmp_path_factory.mktemp("six")
    data = image_folder(top / "six", n_train=2, n_valid=1, size=32, classes=SIX,
                        levels=(20, 60, 100, 140, 180, 220))
    return top, data


def _train(top, data, capsys, monkeypatch, *extra):
    monkeypatch.chdir(top)
    assert main(["train", "--data", str(data), "--arch", "simple_cnn", "--size", "32",
                 "--presize", "32", "--bs", "4", "--epochs", "1", "--device", "cpu",
                 "--precision", "fp32", "--name", "r", *extra]) == 0
    return capsys.readouterr().out, top / "runs" / "r"


@pytest.mark.slow
def test_every_place_names_top5_and_the_evaluations_loss_the_same_way(six_run, capsys,
                                                                      monkeypatch):
    top, data = six_run
    out, run = _train(top, data, capsys, monkeypatch, "--overwrite")
    header = next(line for line in out.splitlines() if line.lstrip().startswith("epoch"))
    assert header.split() == ["epoch", TRAIN_LOSS, VALID_LOSS, ACCURACY, TOP_K, "time"]
    with open(run / "metrics.csv", newline="") as f:
        assert next(csv.reader(f)) == ["epoch", TRAIN_LOSS, VALID_LOSS, ACCURACY, TOP_K, "time"]
    ev = json.loads((run / "evaluation.json").read_text())
    assert set(EVALUATION) <= set(ev) and not set(OLD_NAMES) & set(ev)
    assert main(["runs", str(run.parent), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)[0]
    assert TOP_K in listed and "top5" not in listed and 0 <= listed[TOP_K] <= 1
    assert main(["runs", str(run.parent), "--sort", "top5"]) == 0   # the short name still sorts
    table_header = capsys.readouterr().out.splitlines()[0].split()
    assert TOP_K in table_header and "top5" not in table_header
    assert main(["evaluate", str(run)]) == 0
    printed = capsys.readouterr().out
    assert re.search(rf"^{TOP_K}\s+\d\.\d{{6}}$", printed, re.M)
    assert re.search(rf"^{CROSS_ENTROPY}\s+\d\.\d{{6}}$", printed, re.M)
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    for name in (TRAIN_LOSS, VALID_LOSS, ACCURACY, TOP_K, CROSS_ENTROPY):
        assert f"<td>{name}</td>" in page or f"<th>{name}</th>" in page, name
    assert "top5" not in page and "<td>loss</td>" not in page


def _old_run(root):
    """A run folder as an older resnette left it: evaluation.json with `top5` and `loss`."""
    run = root / "runs" / "old"
    run.mkdir(parents=True)
    (run / "config.toml").write_text('data = "digits"\nname = "old"\narch = "simple_cnn"\n'
                                     "size = 32\npresize = 32\nepochs = 2\n")
    (run / "metrics.csv").write_text("epoch,train_loss,valid_loss,accuracy,top_k_accuracy,time\n"
                                     "0,2.0,1.5,0.5,0.8,3.0\n1,1.0,0.9,0.75,0.95,3.0\n")
    (run / "model.safetensors").write_bytes(b"weights")
    (run / "evaluation.json").write_text(json.dumps({"split": "valid", "n": 20, "accuracy": 0.75,
                                                     "top5": 0.95, "loss": 0.625}))
    return run


def test_a_run_from_before_the_names_still_shows_in_runs_and_the_report(tmp_path, capsys):
    run = _old_run(tmp_path)
    assert main(["runs", str(run.parent), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(r["name"], r["state"], r[TOP_K]) for r in listed] == [("old", "finished", 0.95)]
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    assert f"<td>{TOP_K}</td><td>0.950000</td>" in page
    assert f"<td>{CROSS_ENTROPY}</td><td>0.625000</td>" in page


@given(st.dictionaries(st.sampled_from(["top5", "loss", TOP_K, CROSS_ENTROPY, ACCURACY, "n"]),
                       st.floats(0, 1)))
def test_old_names_are_read_as_todays_and_todays_win(values):
    got = current(values)
    assert not set(OLD_NAMES) & set(got)
    for old, new in OLD_NAMES.items():
        if new in values:
            assert got[new] == values[new]
        elif old in values:
            assert got[new] == values[old]
        else:
            assert new not in got
    assert {k: v for k, v in got.items() if k not in OLD_NAMES.values()} == \
        {k: v for k, v in values.items() if k not in OLD_NAMES and k not in OLD_NAMES.values()}


def test_the_losses_are_worded_by_what_the_run_trained_on():
    smoothed = {"label_smoothing": 0.1}
    assert words(TRAIN_LOSS, smoothed).startswith(
        "training objective (label-smoothed cross-entropy, eps=0.1)")
    assert words(VALID_LOSS, smoothed) == "validation objective (label-smoothed cross-entropy, eps=0.1)"
    assert words(TRAIN_LOSS, {"label_smoothing": 0.0}).startswith("training objective (cross-entropy)")
    assert "on mixed images (mixup alpha=0.4)" in words(TRAIN_LOSS, {"mixup": 0.4})
    assert words(CROSS_ENTROPY).startswith("plain cross-entropy")
    assert words("error_rate").endswith("is not their label")
    assert words("my_acc") == "a metric given to the Learner (its function's name)"


@given(st.lists(st.integers(32, 512), min_size=1, max_size=30), st.integers(32, 512))
def test_sizes_text_names_every_epochs_size_once(sizes, test):
    text = sizes_text(sizes, test)
    assert text.endswith(f"; test {test} px")
    spans = re.findall(r"(\d+) px(?: \(epochs? (\d+)(?:-(\d+))?\))?", text.rsplit(";", 1)[0])
    if len(set(sizes)) == 1 and len(spans) == 1 and not spans[0][1]:
        assert int(spans[0][0]) == sizes[0]
        return
    rebuilt = []
    for size, first, last in spans:
        rebuilt += [int(size)] * (int(last or first) - int(first) + 1)
        assert len(rebuilt) == int(last or first) + 1   # epochs from 0, in order, no gap
    assert rebuilt == sizes


def test_predict_text_has_a_header_then_one_line_per_image():
    preds = [Prediction("a b.png", [("cat", 0.75), ("dog", 0.25)]),
             Prediction("c.png", [("dog", 0.5), ("cat", 0.5)])]
    header, *rows = format_predictions(preds).splitlines()
    assert header == PREDICT_HEADER and header.split("\t")[0] == "path"
    assert [r.split("\t")[0] for r in rows] == ["a b.png", "c.png"]
    assert rows[0].split("\t")[1] == "cat  75.0%   dog  25.0%"


@pytest.mark.slow
def test_predict_prints_the_header_and_a_line_per_image(six_run, capsys, monkeypatch):
    top, data = six_run
    _, run = _train(top, data, capsys, monkeypatch, "--quiet", "--overwrite")
    assert main(["predict", str(run), str(data / "valid")]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header == PREDICT_HEADER and len(rows) == len(SIX)
    assert sorted(r.split("\t")[0].split("/")[-2] for r in rows) == sorted(SIX)
