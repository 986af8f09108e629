"""Names and numbers a run folder holds, shown without a traceback (issue 23, item 2 and 3):
the bugs of round four, each in the process the user would run.

Before: a class named `$\\notacmd$` crashed matplotlib's mathtext in every plot, so the
report `resnette train` draws in the background died silently (no report.html, no plots);
`time = inf` in metrics.csv was an OverflowError under `report` (now the metrics check calls
the run damaged, in one line; resnette.display shows `inf` wherever one is still met); a warning was Python's
`.../resnette/commands/predict.py:63: UserWarning: ...` plus the code line.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from conftest import run
from resnette.cli import main
from test_fuzz_names import images

CLASS = "$\\notacmd$"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    here = tmp_path_factory.mktemp("shown")
    data = images(here / "photos", CLASS)
    argv = ["train", "--data", str(data), "--arch", "simple_cnn", "--size", "32", "--presize",
            "32", "--bs", "4", "--epochs", "1", "--seed", "1", "--device", "cpu", "--precision",
            "fp32", "--quiet", "--run-dir", str(here / "runs" / "dollar")]
    proc = run(argv, here, here / "home")
    assert proc.returncode == 0, proc.stderr
    return {"here": here, "data": data, "run": here / "runs" / "dollar"}


def test_the_background_report_draws_a_class_named_like_tex(trained):
    report = trained["run"] / "report.html"
    deadline = time.monotonic() + 120
    while not report.exists() and time.monotonic() < deadline:   # drawn after train returned
        time.sleep(0.5)
    assert report.exists(), "the background report did not finish"
    assert CLASS in report.read_text(encoding="utf-8")
    plots = {p.name for p in (trained["run"] / "plots").glob("*.png")}
    assert {"confusion_matrix.png", "top_losses.png", "loss_accuracy.png"} <= plots


def test_report_of_an_infinite_time_is_one_line(trained, tmp_path, monkeypatch, capsys):
    copy = tmp_path / "inf"
    shutil.copytree(trained["run"], copy, ignore=shutil.ignore_patterns(".lock"))
    lines = (copy / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[1].split(",")
    cells[header.index("time")] = "inf"
    (copy / "metrics.csv").write_text("\n".join([lines[0], ",".join(cells), *lines[2:]]) + "\n")
    before = {p.name: p.read_bytes() for p in copy.iterdir() if p.is_file()}
    code = main(["report", str(copy)])   # a time no epoch can take: the run is damaged
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1 and "'time' column holds inf" in err, err
    assert {p.name: p.read_bytes() for p in copy.iterdir() if p.is_file()} == before


def test_a_warning_is_one_line_without_the_packages_path(trained):
    folder = trained["here"] / "mixed"
    folder.mkdir()
    shutil.copy(next((trained["data"] / "valid" / "b").glob("*.png")), folder / "good.png")
    (folder / "bad.png").write_bytes(b"not a png at all")
    proc = run(["predict", str(trained["run"]), str(folder)], trained["here"],
               trained["here"] / "home")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith("warning: ") and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert "UserWarning" not in proc.stderr and ".py:" not in proc.stderr
    assert "unreadable" in proc.stderr and len(proc.stdout.splitlines()) == 2   # header, row
