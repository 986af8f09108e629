"""Exported models give the same answers as the PyTorch model they came from."""
import numpy as np
import pytest
import torch

from resnette.run import folder as runs
from resnette.run.setup import prepare
from resnette.run.config import make_config, save_config
from resnette.commands.export import export, load_exported
from resnette.models import create_model
from resnette.train.checkpoints import save_weights
from resnette.run.trained import load_trained


@pytest.fixture
def run(tmp_path):
    """A run folder holding a simple_cnn whose batchnorm statistics are not the defaults."""
    run = prepare(tmp_path / "run")
    save_config(make_config({"data": "digits", "arch": "simple_cnn"}), run.config)
    torch.manual_seed(0)
    model = create_model("simple_cnn", n_out=4)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(16, 3, 32, 32) * 2 + 0.5)  # moves the running mean/var
    save_weights(run.model, model)
    runs.save_classes(run, list("wxyz"), ["w", "x", "y", "z"], [0.5] * 3, [0.25] * 3, 3)
    return run


def test_onnx_matches_pytorch(run):
    ort = pytest.importorskip("onnxruntime")
    path = export(run.path, "onnx")
    trained = load_trained(run.path)
    x = torch.randn(7, 3, 32, 32)  # a batch size the export never saw: the batch is dynamic
    with torch.no_grad():
        expected = trained.model(x).numpy()
    got = ort.InferenceSession(str(path)).run(None, {"input": x.numpy()})[0]
    assert got.shape == (7, 4)
    assert (got.argmax(1) == expected.argmax(1)).all()
    assert np.abs(got - expected).max() < 1e-3
    import onnx
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert meta["resnette_classes"] == '["w", "x", "y", "z"]'


def test_safetensors_export_rebuilds_the_model_from_two_files(run, tmp_path):
    weights = export(run.path, "safetensors", tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["config.toml",
                                                                    "model.safetensors"]
    (tmp_path / "elsewhere").mkdir()
    moved = weights.rename(tmp_path / "elsewhere" / "m.safetensors")  # no run folder around it
    rebuilt = load_exported(moved, tmp_path / "out" / "config.toml")
    original = load_trained(run.path)
    x = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(rebuilt.model(x), original.model(x))
    assert rebuilt.names == ["w", "x", "y", "z"] and rebuilt.mean == [0.5] * 3
    assert load_exported(moved).config == original.config  # the file alone also suffices
