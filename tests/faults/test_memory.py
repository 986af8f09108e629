"""Out of memory outside the training step (issue 18, class 5): resizing and augmenting a
batch, evaluating at a large size, predicting, building a model. Before: a torch traceback.
Now one line that names the command and what to make smaller (exit 2); a run being
evaluated is unchanged.

The fault comes from outside the package: launcher.py's `oom_from` wraps torch's
F.interpolate, F.grid_sample and F.conv2d to raise torch.OutOfMemoryError for images of N
px or more, here in this process (`resnette.cli.main`, monkeypatched torch).
"""
import pytest
import torch

from conftest import copy_run, digests, train_args
from launcher import _oom_from
from resnette.cli import main


@pytest.fixture
def oom_from(monkeypatch):
    def install(limit: int) -> None:
        for name in ("interpolate", "grid_sample", "conv2d"):
            _oom_from(torch.nn.functional, name, limit, monkeypatch.setattr)
    return install


@pytest.fixture
def here(tmp_path, monkeypatch, world):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RESNETTE_HOME", str(world["home"]))
    return tmp_path


def one_line(capsys, argv) -> str:
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines()
           if not line.startswith("warning: ")]   # the bad images of the world's data
    assert len(err) == 1 and err[0].startswith("error: out of memory in `resnette "), err
    return err[0]


def test_augmenting_a_training_batch(here, world, oom_from, capsys):
    oom_from(48)   # the 48 px decoded images are cropped and resized to 32: grid_sample at 48
    line = one_line(capsys, train_args(world["data"], "aug", "--presize", "48"))
    assert "resnette train` (CUDA out of memory" in line and "--bs, --size/--presize" in line


@pytest.mark.slow
def test_evaluating_at_a_large_size_and_predicting(here, world, baseline, oom_from, capsys):
    run = copy_run(baseline["run"], here, "ev")
    before = digests(run)
    oom_from(64)
    assert "use a smaller --bs or --test-size" in one_line(capsys, ["evaluate", str(run), "--test-size", "64"])
    oom_from(32)
    line = one_line(capsys, ["predict", str(run), str(world["data"] / "valid" / "a")])
    assert "`resnette predict` (CUDA out of memory" in line and "give fewer images at once" in line
    assert digests(run) == before


def test_summary_too_big_for_memory_is_one_line(capsys, monkeypatch):
    def no_memory(*a, **k):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: "
                           "can't allocate memory: you tried to allocate 2048000000000 bytes.")
    monkeypatch.setattr(torch.nn.Linear, "__init__", no_memory)
    assert "use a smaller --size or --classes" in one_line(capsys, ["summary", "xresnet18"])
