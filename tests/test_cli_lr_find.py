"""`resnette lr-find` writes its plot and nothing else (issue 19 #5): where --out says, else
beside the user; into a run only when the run exists (the run it is for), with that run's
config. It never claims a run folder or a run number."""
import pytest

from resnette.cli import main
from resnette.run.config import make_config, save_config
from resnette.run.setup import prepare
from tests.fakes import image_folder

FLAGS = ["--arch", "simple_cnn", "--size", "32", "--presize", "32", "--bs", "4", "--device", "cpu",
         "--precision", "fp32", "--quiet"]


@pytest.fixture
def data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return image_folder(tmp_path / "images", n_train=8, n_valid=2, size=32)


def files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.relative_to(root).parts[0] != "images")


@pytest.mark.slow   # two sweeps of 100 batches
def test_a_new_name_gets_a_plot_file_and_no_run_folder(data, tmp_path, capsys):
    assert main(["lr-find", "--data", str(data), *FLAGS]) == 0
    assert files(tmp_path) == ["lr_find-images-simple_cnn-32px.png"]
    assert "plot: lr_find-images-simple_cnn-32px.png" in capsys.readouterr().out
    assert main(["lr-find", "--data", str(data), "--name", "try", "--out", "plots/lr.png",
                 *FLAGS]) == 0
    assert not (tmp_path / "runs").exists()
    assert (tmp_path / "plots" / "lr.png").stat().st_size > 1000


@pytest.mark.slow
def test_an_existing_run_gets_the_plot_in_its_plots_folder_with_its_config(data, tmp_path, capsys):
    run = prepare(tmp_path / "runs" / "mine")
    cfg = make_config({}, dict(data=str(data), arch="simple_cnn", size=32, presize=32, bs=4,
                               device="cpu", precision="fp32", name="mine"))
    save_config(cfg, run.config)
    before = run.config.read_bytes()
    assert main(["lr-find", "--name", "mine", "--quiet"]) == 0   # data, arch... from its config
    assert run.plot("lr_find").stat().st_size > 1000
    assert run.config.read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["mine"]   # no mine-2
    assert main(["lr-find", "--name", "mine", "--out", "x.png", "--quiet"]) == 2
    assert "is a run: its plot goes to" in capsys.readouterr().err
