"""`resnette train --tensorboard` (issue 10 #6): the event file read back with TensorBoard's
own reader holds what metrics.csv holds; without the package, one line says what to install."""
import builtins
import csv
import math

import pytest

from fakes import image_folder
from resnette.cli import main
from resnette.train.callbacks import TensorBoard
from resnette.utils import ResnetteError

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")




def read_events(folder):
    acc = event_accumulator.EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_the_event_file_holds_what_metrics_csv_holds(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = image_folder(tmp_path / "images", 12, 4, ("dark", "light"), size=32, levels=(60, 190))
    assert main(["train", "--data", str(data), "--arch", "simple_cnn", "--size", "32",
                 "--presize", "32", "--bs", "6", "--epochs", "3", "--device", "cpu", "--quiet",
                 "--name", "tb", "--tensorboard"]) == 0
    run = tmp_path / "runs" / "tb"
    with open(run / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    events = read_events(run / "tensorboard")
    for column in ("train_loss", "valid_loss", "accuracy", "time"):
        expected = [(int(r["epoch"]), float(r[column])) for r in rows]
        got = events[column]
        assert [s for s, _ in got] == [0, 1, 2], column
        # TensorBoard keeps float32: equal to metrics.csv's full precision to float32's digits
        assert [v for _, v in got] == pytest.approx([v for _, v in expected], rel=1e-6), column
    # the lr at each epoch's last batch: one-cycle warms up over a quarter of the 12 batches
    # (its peak, 3e-3, at batch 3: epoch 0's last) and then anneals
    lrs = [v for _, v in events["lr"]]
    assert len(lrs) == 3 and lrs[0] == pytest.approx(3e-3) and lrs[0] > lrs[1] > lrs[2] > 0
    # one smoothed loss per batch (4 batches of 6 an epoch), its last equal to the last train_loss
    smooth = events["batch/smooth_loss"]
    assert [s for s, _ in smooth] == list(range(12))
    assert smooth[-1][1] == pytest.approx(float(rows[-1]["train_loss"]), rel=1e-6)
    assert all(math.isfinite(v) for _, v in smooth)


def test_without_the_package_one_line_says_what_to_install(monkeypatch):
    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name.startswith("torch.utils.tensorboard") or name.startswith("tensorboard"):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    with pytest.raises(ResnetteError) as e:
        TensorBoard("somewhere")
    assert "pip install resnette[tensorboard]" in str(e.value) and "\n" not in str(e.value)


def test_the_cli_refuses_before_making_a_run_folder(tmp_path, monkeypatch, capsys):
    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name.startswith("torch.utils.tensorboard"):
            raise ImportError("TensorBoard logging requires TensorBoard version 1.15 or above")
        return real_import(name, *args, **kwargs)
    monkeypatch.chdir(tmp_path)
    data = image_folder(tmp_path / "images", 12, 4, ("dark", "light"), size=32, levels=(60, 190))
    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    assert main(["train", "--data", str(data), "--arch", "simple_cnn", "--size", "32", "--bs", "6",
                 "--epochs", "1", "--device", "cpu", "--quiet", "--name", "x", "--tensorboard"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: TensorBoard logging needs the tensorboard package: "
                   "pip install resnette[tensorboard]"]
    assert not (tmp_path / "runs" / "x").exists()
