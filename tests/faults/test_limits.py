"""Every number has a sane bound, from the one LIMITS table (train/settings.py), and a
divergence names the setting likely at fault (issue 18, class 9).

Before: `--wd 1e30` trained into NaN and advised lowering the learning rate; `--epochs 1e9`,
`--bs 1e8`, `--progressive 32 100000`, `--mixup 1e9` were accepted; `summary --classes 1e12`
was an allocator traceback. Now each is one line before anything is read or written. The
command line runs in this process (`resnette.cli.main`): every case stops at its flags.
"""
import pytest

from resnette.cli import main

TRAIN = ["train", "--data", "no-such-folder", "--arch", "simple_cnn", "--quiet"]


@pytest.mark.parametrize("argv, words", [
    (TRAIN + ["--wd", "1e30"], "'wd' must be 0 or more and at most 10"),
    (TRAIN + ["--epochs", "1000000000"], "'epochs' must be at least 1 and at most 10000"),
    (TRAIN + ["--bs", "100000000"], "'bs' must be at least 1 and at most 65536"),
    (TRAIN + ["--valid-every", "99999999"], "'valid_every' must be 0 (the last epoch only) to 10000"),
    (TRAIN + ["--progressive", "32", "100000"], "'progressive' must be a list of up to 100 sizes, each at least 32 and at most 4096"),
    (TRAIN + ["--mixup", "1e9"], "'mixup' must be a Beta alpha, 0 (off) to 100"),
    (["evaluate", "runs/x", "--bs", "100000000"], "argument --bs: must be at least 1 and at most 65536"),
    (["summary", "xresnet18", "--classes", "1000000000000"], "argument --classes: must be at least 1 and at most 100000"),
    (["summary", "xresnet18", "--c-in", "100000"], "argument --c-in: must be at least 1 and at most 64"),
])
def test_absurd_numbers_are_one_line_before_any_work(argv, words, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    try:
        rc = main(argv)
    except SystemExit as e:   # argparse's refusals exit from inside the parser
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2 and words in err and len(err.strip().splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("lr, wd, precision, blamed", [
    (3e-3, 0.01, "fp32", "lower the learning rate, e.g. lr=3.0e-04"),
    (1.0, 5.0, "fp32", "the weight decay is likely at fault: lr x wd = 5 "),
    (0.1, 1.0, "bf16", "lower --wd (wd=), e.g. 0.01"),
    (3e-3, 0.01, "fp16", "fp16 may have overflowed (its largest number is 65504): use --precision bf16"),
])
def test_a_divergence_names_the_setting_likely_at_fault(lr, wd, precision, blamed):
    from resnette.train.stops import suspect
    assert blamed in suspect(lr, wd, precision)
