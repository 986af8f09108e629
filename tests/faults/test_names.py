"""Names over 255 bytes (issue 18, class 6): `--name`, `--run-dir`, `--data`, image paths.

Before: `OSError: [Errno 36] File name too long` tracebacks, and `train --overwrite` of a
run whose name fits the file system but not `.<name>.replaced-<pid>` (its aside) said
"cannot write to run folder ...; choose another --run-dir", blaming the wrong flag. Now one
line naming the name, its length and the flag to change; nothing is created. The command
line runs in this process (`resnette.cli.main`): every case is refused before training.
"""
import pytest

from conftest import copy_run, digests, train_args
from resnette.cli import main

LONG = "n" * 300


def refused(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


@pytest.fixture
def here(tmp_path, monkeypatch, world):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RESNETTE_HOME", str(world["home"]))
    return tmp_path


def test_a_long_name_or_run_dir_blames_its_flag_and_creates_nothing(here, world, capsys):
    err = refused(capsys, train_args(world["data"], LONG))
    assert "is 300 bytes" in err and "give a shorter --name" in err
    err = refused(capsys, train_args(world["data"], "x", "--run-dir", f"{here}/{LONG}/run"))
    assert "--run-dir has a folder name of 300 bytes" in err
    assert sorted(p.name for p in here.iterdir()) == []


@pytest.mark.slow
def test_overwrite_of_a_name_too_long_to_set_aside_blames_the_name(here, world, baseline, capsys):
    name = "m" * 245   # fits a file name, not `.<name>.replaced-<pid>`
    old = copy_run(baseline["run"], here, name)
    before = digests(old)
    err = refused(capsys, train_args(world["data"], name, "--overwrite"))
    assert "is 245 bytes" in err and "--overwrite keeps the old run" in err and "--name" in err
    assert "--run-dir" not in err and digests(old) == before


def test_a_long_data_path_is_one_line(here, world, capsys):
    err = refused(capsys, train_args(here / LONG / "images", "d"))
    assert f"the name '{LONG[:40]}'... is 300 bytes, over the 255 bytes" in err
    assert not (here / "runs" / "d").exists()


@pytest.mark.slow
def test_a_long_image_path_for_predict_and_evaluate_is_one_line(here, baseline, capsys):
    for argv, n in ((["predict", str(baseline["run"]), f"{LONG}.png"], 304),
                    (["evaluate", str(baseline["run"]), "--folder", f"{here}/{LONG}"], 300)):
        assert f"is {n} bytes, over the 255 bytes" in refused(capsys, argv)
