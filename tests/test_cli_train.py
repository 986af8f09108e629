"""`resnette train` in this process on a tiny folder: what the header says, what the weights
record, and `resnette --version`."""
import re
from importlib.metadata import version

import pytest
from safetensors import safe_open

from fakes import image_folder
from resnette.cli import main




def test_the_header_counts_the_whole_training_set_and_the_weights_name_the_arch(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = image_folder(tmp_path / "pets", n_train=5, size=40)   # 10 images: 2 full batches of 4 and 2 left
    assert main(["train", "--data", str(data), "--arch", "simple_cnn", "--size", "32", "--presize", "32",
                 "--bs", "4", "--epochs", "1", "--device", "cpu", "--name", "r"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"\(10 train / 4 valid images, 2 classes\)", out), out   # not "8 train"
    for weights in ("model.safetensors", "best.safetensors"):
        with safe_open(str(tmp_path / "runs" / "r" / weights), framework="pt") as f:
            # the registry's name, as config.toml says it (not the class name)
            assert f.metadata()["arch"] == "simple_cnn", weights


def test_version_prints_the_installed_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out == f"resnette {version('resnette')}\n"
