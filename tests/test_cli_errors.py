"""Bad input at the command line: one `error:` line on stderr, exit code 2, no traceback."""
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from fakes import image_folder
from resnette.cli import main




def fails(capsys, *argv, words=()):
    assert main(list(map(str, argv))) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, err
    return err


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def test_unknown_architecture_lists_the_valid_ones(capsys):
    fails(capsys, "train", "--arch", "resnet9000", words=["resnet9000", "xresnet18", "xresnet50"])


def test_unknown_dataset_lists_the_valid_ones(capsys):
    fails(capsys, "train", "--data", "imagenet-42", words=["imagenet-42", "imagenette-160", "digits"])


def test_folder_without_images(capsys, tmp_path):
    for split in ("train/a", "train/b", "valid/a", "valid/b"):
        (tmp_path / "empty" / split).mkdir(parents=True)
    fails(capsys, "train", "--data", tmp_path / "empty", "--size", "32", "--presize", "32")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_size_below_32(capsys):
    fails(capsys, "train", "--data", "digits", "--size", "16", words=["'size'", "32"])


def test_batch_larger_than_the_dataset(capsys, tmp_path):
    data = image_folder(tmp_path / "pets")
    fails(capsys, "train", "--data", data, "--size", "32", "--presize", "40", "--bs", "64",
          words=["batch size 64", "8"])


def test_unwritable_run_folder(capsys, tmp_path):
    (tmp_path / "a-file").write_text("")
    fails(capsys, "train", "--data", "digits", "--run-dir", tmp_path / "a-file" / "run",
          words=["cannot write to run folder"])


def test_bad_config_file_key(capsys, tmp_path):
    (tmp_path / "c.toml").write_text("epocs = 3\n")
    fails(capsys, "train", "--config", tmp_path / "c.toml", words=["epocs", "epochs"])


def test_resume_without_a_run(capsys):
    fails(capsys, "train", "--resume", "--name", "never-trained", words=["cannot resume"])


def test_usage_mistakes_are_one_line_too(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--size", "big"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: argument --size: invalid int value") and err.count("\n") == 1


def test_predict_and_evaluate_need_a_run(capsys, tmp_path):
    fails(capsys, "evaluate", tmp_path / "nothing", words=["does not exist"])
    (tmp_path / "img.png").write_bytes(b"")
    fails(capsys, "predict", tmp_path / "w.safetensors", tmp_path / "img.png")


def test_weights_of_another_architecture_or_class_count(capsys, tmp_path):
    """A run's weights with a config naming another arch, or another number of classes."""
    from resnette.run import folder as runs
    from resnette.run.setup import prepare
    from resnette.run.config import make_config, save_config
    from resnette.models import create_model
    from resnette.train.checkpoints import save_weights
    run = prepare(tmp_path / "r")
    save_config(make_config({"data": "digits", "arch": "simple_cnn"}), run.config)
    runs.save_classes(run, list("abc"), list("abc"), [0.5] * 3, [0.2] * 3, 3)
    save_weights(run.model, create_model("simple_cnn", n_out=3))
    Image.fromarray(np.zeros((48, 48, 3), np.uint8)).save(tmp_path / "x.png")
    assert main(["predict", str(run.path), str(tmp_path / "x.png")]) == 0
    capsys.readouterr()
    save_config(make_config({"data": "digits", "arch": "resblock_cnn"}), tmp_path / "other.toml")
    fails(capsys, "predict", run.model, tmp_path / "x.png", "--config", tmp_path / "other.toml",
          words=["another architecture"])
    fails(capsys, "train", "--data", "digits", "--arch", "resblock_cnn", "--init-from", run.path,
          words=["simple_cnn", "--arch"])
    runs.save_classes(run, list("abcd"), list("abcd"), [0.5] * 3, [0.2] * 3, 3)
    fails(capsys, "predict", run.path, tmp_path / "x.png", words=["3 classes", "4"])


def test_a_real_process_exits_2_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "resnette", "train", "--arch", "nope"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("error: unknown architecture 'nope'")
    assert "Traceback" not in proc.stderr
