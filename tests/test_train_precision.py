"""One `resolve(precision, device, channels_last)`: the same answer for the Python API, the
command line and the benchmarks, from one table (resnette/train/precision.py)."""
from __future__ import annotations

import os

import pytest
import torch

from fakes import FakeDataLoaders, tiny_net
from resnette.cli import main
from resnette.commands.bench import train_rate
from resnette.run.config import make_config
from resnette.train import Learner, resolve
from resnette.train import precision as precision_module
from resnette.train.precision import cpu_has_native_bf16
from resnette.utils import ResnetteError


# The CPU table's rows, each checked on any CPU: the kind is what the flags would say, and
# bf16 runs everywhere (only slower where it is emulated).
CPU_ROWS = [("amx", "bf16", True), ("avx512_bf16", "bf16", True), ("avx2", "fp32", False),
            ("other", "fp32", False)]


@pytest.mark.parametrize("kind,precision,channels_last", CPU_ROWS)
def test_the_cpu_column_of_the_table(monkeypatch, kind, precision, channels_last):
    monkeypatch.setattr(precision_module, "cpu_kind", lambda: kind)
    auto = resolve("auto", "cpu")
    assert auto.device == torch.device("cpu")
    assert (auto.precision, auto.channels_last) == (precision, channels_last)
    assert cpu_has_native_bf16() == (precision == "bf16")
    # channels-last where it pays depends on the precision actually used, not on "auto"
    assert resolve("bf16", "cpu").channels_last is (kind in ("amx", "avx512_bf16"))
    assert resolve("fp32", "cpu").channels_last is (kind in ("amx", "avx512_bf16"))
    assert resolve("bf16", "cpu").precision == "bf16" and resolve("fp32", "cpu").precision == "fp32"
    assert resolve("fp32", "cpu", channels_last=True).channels_last is True   # asked for: honoured
    assert resolve("bf16", "cpu", channels_last=False).channels_last is False
    with pytest.raises(ResnetteError, match="fp16 needs a CUDA GPU.*bf16 or fp32"):
        resolve("fp16", "cpu")
    with pytest.raises(ResnetteError, match="unknown precision 'fp8'"):
        resolve("fp8", "cpu")


def test_the_cpu_kind_is_read_from_this_machines_flags():
    flags = set(open("/proc/cpuinfo").read().split()) if os.path.exists("/proc/cpuinfo") else set()
    if not flags:
        pytest.skip("no /proc/cpuinfo here")
    expected = ("amx" if {"avx512_bf16", "amx_tile"} <= flags else "avx512_bf16"
                if "avx512_bf16" in flags else "avx2" if "avx2" in flags else "other")
    assert precision_module.cpu_kind() == expected


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
