"""Bad images in the data and bad settings on the command line or in a config file."""
import subprocess
import sys

import pytest

from conftest import BAD_IMAGES, EPOCHS, n_rows, one_error_line
from resnette.cli import main


def test_unreadable_images_are_skipped_counted_and_named_and_training_goes_on(baseline):
    warning = next(line for line in baseline["stderr"].splitlines() if "unreadable" in line)
    assert f"skipped {len(BAD_IMAGES)} unreadable image(s) of 68" in warning
    for name in BAD_IMAGES:
        assert f"train/a/{name}" in warning, name
    assert "decompression bomb" in warning
    assert "Traceback" not in baseline["stderr"]
    assert n_rows(baseline["run"]) == EPOCHS and (baseline["run"] / "model.safetensors").exists()


BAD_SETTINGS = [   # (config file text or None, flags, words the one error line must contain)
    ('epochs = "three"\n', [], ["'epochs'", "int", "'three'"]),
    ("lr = -0.1\n", [], ["'lr'", "positive"]),
    ("size = 8\n", [], ["'size'", "at least 32"]),
    ("ema = 1.5\n", [], ["'ema'", "(0, 1)"]),
    ("progressive = [64, 16]\n", [], ["'progressive'", "at least 32"]),
    ("learning_rate = 0.1\n", [], ["unknown config key 'learning_rate'"]),
    ("[model]\narch = 'simple_cnn'\n", [], ["unknown config key 'model'"]),
    ("epochs = 3\nepochs = 4\n", [], ["not valid TOML"]),
    (None, ["--epochs", "two"], ["--epochs", "invalid int value: 'two'"]),
    (None, ["--bs", "0"], ["'bs'", "at least 1"]),
    (None, ["--valid-pct", "1.5"], ["'valid_pct'", "(0, 1)"]),
    (None, ["--label-smoothing", "nan"], ["'label_smoothing'"]),
    (None, ["--precision", "fp8"], ["'precision'", "fp32"]),
    (None, ["--learning-rate", "0.1"], ["unrecognized arguments: --learning-rate"]),
]


@pytest.mark.parametrize("text, flags, words", BAD_SETTINGS,
                         ids=[" ".join(f) or t.strip() for t, f, _ in BAD_SETTINGS])
def test_a_bad_setting_is_one_line_naming_the_key_exit_2(tmp_path, monkeypatch, capsys, text, flags, words):
    monkeypatch.chdir(tmp_path)
    argv = ["train", "--data", "digits", *flags]
    if text is not None:
        (tmp_path / "run.toml").write_text(text)
        argv += ["--config", "run.toml"]
    try:
        code = main(argv)
    except SystemExit as e:   # argparse's own usage errors exit through SystemExit
        code = e.code
    assert code == 2
    line = one_error_line(capsys.readouterr().err)
    for w in words:
        assert w in line, line
    assert not (tmp_path / "runs").exists()   # nothing was started


def test_a_real_process_with_a_bad_config_exits_2_without_traceback(tmp_path):
    (tmp_path / "run.toml").write_text('data = "digits"\nbs = 12.5\n')
    proc = subprocess.run([sys.executable, "-m", "resnette", "train", "--config", "run.toml"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "config key 'bs' must be int" in one_error_line(proc.stderr)
