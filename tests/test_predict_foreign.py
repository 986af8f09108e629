"""A timm or fastai export (`resnette export --format timm|fastai`) predicts beside its run
like the run's own weights: renamed back to ours (models/interop.py) with the run's config and
classes. Before: predicting it, from inside the run folder or not, said "config.toml is
damaged", blaming a file that was fine."""
import numpy as np
import pytest
import torch
from PIL import Image

from resnette.cli import main
from resnette.commands.export import export
from resnette.models import create_model
from resnette.run import folder as runs
from resnette.run.config import make_config, save_config
from resnette.run.setup import prepare
from resnette.run.trained import load_trained
from resnette.train.checkpoints import save_weights
from resnette.utils import ResnetteError


@pytest.fixture
def run(tmp_path):
    run = prepare(tmp_path / "run")
    save_config(make_config({"data": "digits", "arch": "xresnet18", "size": 32, "presize": 32}),
                run.config)
    torch.manual_seed(0)
    model = create_model("xresnet18", n_out=4)
    with torch.no_grad():   # batchnorm statistics that are not the defaults
        model.train()(torch.randn(4, 3, 32, 32) * 2 + 0.5)
    save_weights(run.model, model)
    runs.save_classes(run, list("wxyz"), ["w", "x", "y", "z"], [0.5] * 3, [0.25] * 3, 3)
    Image.fromarray(np.arange(32 * 32 * 3, dtype=np.uint8).reshape(32, 32, 3)).save(
        tmp_path / "a.png")
    return run


@pytest.mark.parametrize("fmt", ["timm", "fastai"])
def test_an_export_in_another_librarys_names_predicts_beside_its_run(run, fmt, monkeypatch,
                                                                     capsys):
    file = export(run.path, fmt)
    own = load_trained(run.path)
    x = torch.randn(3, 3, 32, 32)
    monkeypatch.chdir(run.path)   # from inside the run folder, by its bare name
    theirs = load_trained(file.name)
    assert theirs.vocab == own.vocab
    with torch.no_grad():
        assert torch.equal(theirs.model(x), own.model(x))
    assert main(["predict", file.name, "../a.png"]) == 0
    assert main(["predict", str(run.path), "../a.png"]) == 0
    out = capsys.readouterr().out.splitlines()   # each: the header, then its one image
    assert len(out) == 4 and out[0] == out[2] and out[1] == out[3]   # the run's own predictions


def test_beside_a_config_of_another_model_the_weights_file_is_named_not_the_config(run):
    file = export(run.path, "timm")
    save_config(make_config({"data": "digits", "arch": "xresnet34"}), run.config)
    with pytest.raises(ResnetteError) as e:
        load_trained(file)
    line = str(e.value)
    assert line.startswith(f"{file} holds timm's names for another model than the xresnet34")
    assert "damaged" not in line and "\n" not in line
