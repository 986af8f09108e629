"""Every argument of every command is checked at the edge: one `error:` line, exit 2, no
traceback, nothing written. The limits come from one table (train/settings.py's LIMITS)."""
import pytest

from conftest import one_error_line, run
from resnette.cli import main

RUN = "runs/none"   # the parser refuses before any run folder is opened


@pytest.mark.parametrize("argv, words", [
    (["train", "--data", "digits", "--seed", "-1"], "'seed' must be an integer in 0..4294967295, got -1"),
    (["train", "--data", "digits", "--seed", str(2**40)], "'seed' must be an integer in 0..4294967295"),
    (["train", "--data", "digits", "--device", "foo"], "'device' must be auto, cpu, cuda or cuda:N, got 'foo'"),
    (["train", "--data", "digits", "--device", "meta"], "'device' must be auto, cpu, cuda or cuda:N, got 'meta'"),
    (["lr-find", "--data", "digits", "--device", "meta"], "'device' must be auto, cpu, cuda or cuda:N"),
    (["train", "--data", "digits", "--mixup", "inf"], "'mixup' must be a Beta alpha, 0 (off) to 100"),
    (["train", "--data", "digits", "--mixup", "nan"], "'mixup' must be a Beta alpha"),
    (["train", "--data", "digits", "--cutmix", "-1"], "'cutmix' must be a Beta alpha, 0 (off) to 100"),
    (["predict", RUN, "x.png", "--top", "-1"], "argument --top/-k: must be at least 1, got -1"),
    (["predict", RUN, "x.png", "--top", "0"], "argument --top/-k: must be at least 1, got 0"),
    (["evaluate", RUN, "--folder", "f", "--bs", "0"], "argument --bs: must be at least 1 and at most 65536, got '0'"),
    (["evaluate", RUN, "--folder", "f", "--bs", "-4"], "argument --bs: must be at least 1 and at most 65536, got '-4'"),
    (["evaluate", RUN, "--bs", "x"], "argument --bs: must be at least 1 and at most 65536, got 'x'"),
    (["bench", "--device", "foo"], "argument --device: must be auto, cpu, cuda or cuda:N, got 'foo'"),
    (["bench", "--device", "meta"], "argument --device: must be auto, cpu, cuda or cuda:N"),
    (["summary", "simple_cnn", "--size", "0"], "argument --size: must be at least 32"),
    (["summary", "simple_cnn", "--classes", "0"], "argument --classes: must be at least 1 and at most 100000, got '0'"),
    (["summary", "simple_cnn", "--c-in", "-3"], "argument --c-in: must be at least 1 and at most 64, got '-3'"),
])
def test_a_bad_argument_is_one_error_line(argv, words, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    try:
        rc = main(argv)
    except SystemExit as e:   # the parser's own refusal
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2
    assert words in one_error_line(err), err
    assert not list(tmp_path.iterdir())   # nothing written, no run folder


@pytest.mark.parametrize("toml, words", [
    ("seed = 1e23\n", "config key 'seed' must be int, got float 1e+23"),
    ("seed = 100000000000000000000000\n", "'seed' must be an integer in 0..4294967295"),
    ("mixup = inf\n", "'mixup' must be a Beta alpha"),
    ("cutmix = nan\n", "'cutmix' must be a Beta alpha, 0 (off) to 100"),
    ('device = "meta"\n', "'device' must be auto, cpu, cuda or cuda:N"),
])
def test_a_bad_config_value_is_one_error_line_in_a_real_process(toml, words, world, tmp_path):
    (tmp_path / "c.toml").write_text(toml)
    proc = run(["train", "--config", "c.toml", "--data", str(world["data"]), "--name", "x"],
               tmp_path, world["home"])
    assert proc.returncode == 2
    line = one_error_line(proc.stderr)
    assert words in line, line
    assert "NaN" not in line and "learning rate" not in line   # not the divergence advice
    assert not (tmp_path / "runs").exists()
