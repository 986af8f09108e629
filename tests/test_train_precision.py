"""One `resolve(precision, device, channels_last)`: the same answer for the Python API, the
command line and the benchmarks, from one table (resnette/train/precision.py)."""
from __future__ import annotations

import pytest
import torch

from fakes import FakeDataLoaders, tiny_net
from resnette.cli import main
from resnette.commands.bench import train_rate
from resnette.run.config import make_config
from resnette.train import Learner, resolve
from resnette.train.precision import cpu_has_native_bf16
from resnette.utils import ResnetteError


def test_the_cpu_column_of_the_table():
    auto = resolve("auto", "cpu")
    assert auto.device == torch.device("cpu")
    assert auto.precision == ("bf16" if cpu_has_native_bf16() else "fp32")
    assert auto.channels_last is False          # None = where it pays: not on a CPU
    assert resolve("bf16", "cpu").precision == "bf16" and resolve("fp32", "cpu").precision == "fp32"
    assert resolve("fp32", "cpu", channels_last=True).channels_last is True   # asked for: honoured
    with pytest.raises(ResnetteError, match="fp16 needs a CUDA GPU.*bf16 or fp32"):
        resolve("fp16", "cpu")
    with pytest.raises(ResnetteError, match="unknown precision 'fp8'"):
        resolve("fp8", "cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_gpu_column_of_the_table():
    auto = resolve("auto", "cuda")
    assert auto.precision == ("bf16" if torch.cuda.is_bf16_supported() else "fp16")
    assert auto.channels_last is True and resolve("fp16", "cuda").precision == "fp16"


def test_the_learner_the_config_and_the_benchmarks_mean_the_same():
    learn = Learner(FakeDataLoaders(), tiny_net(), quiet=True)
    cpu = resolve("auto", "cpu")
    assert (learn.precision, learn.channels_last) == (cpu.precision, cpu.channels_last)
    assert make_config().channels_last is None   # the command line no longer forces NHWC on a CPU
    assert not learn.scaler.is_enabled()          # loss scaling only for fp16
    with pytest.raises(ResnetteError, match="fp16 needs a CUDA GPU"):
        train_rate(tiny_net(), bs=4, size=16, precision="fp16", steps=1, warmup=0)


def test_fp16_on_a_cpu_is_one_error_line_before_any_run_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--data", "digits", "--precision", "fp16", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: precision fp16 needs a CUDA GPU") and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()
