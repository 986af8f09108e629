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


@pytest.mark.slow
def test_onnx_export_scores_the_run_at_its_test_size_and_takes_other_sizes(tmp_path, monkeypatch):
    """A run trained at 32 px and scored at 48 px (--test-size): the ONNX model, run by
    onnxruntime on the validation images at 48 px, scores what the run's evaluation says; its
    height and width are dynamic, so another size runs too and agrees with PyTorch."""
    import json
    import onnx
    from fakes import image_folder
    from resnette.cli import main
    from resnette.commands.predict import labelled_folder
    from resnette.run.config import eval_size
    ort = pytest.importorskip("onnxruntime")
    monkeypatch.chdir(tmp_path)
    data = image_folder(tmp_path / "pets", n_train=6, n_valid=5, size=56, levels=(60, 190))
    assert main(["train", "--data", str(data), "--arch", "simple_cnn", "--size", "32",
                 "--presize", "56", "--test-size", "48", "--bs", "4", "--epochs", "2",
                 "--device", "cpu", "--precision", "fp32", "--quiet", "--name", "r"]) == 0
    run_dir = tmp_path / "runs" / "r"
    assert main(["export", str(run_dir), "--format", "onnx"]) == 0
    path = run_dir / "model.onnx"
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert meta["resnette_size"] == "48"
    session = ort.InferenceSession(str(path))
    assert [d if isinstance(d, int) else "dynamic" for d in session.get_inputs()[0].shape] == \
        ["dynamic", 3, "dynamic", "dynamic"]
    trained = load_trained(run_dir)
    assert eval_size(trained.config) == 48
    right = n = 0
    for x, y in labelled_folder(data / "valid", trained):
        assert x.shape[-1] == 48
        logits = session.run(None, {"input": x.numpy()})[0]
        right += int((logits.argmax(1) == y.numpy()).sum())
        n += len(y)
    ev = json.loads((run_dir / "evaluation.json").read_text())
    assert ev["size"] == 48 and n == ev["n"] == 10
    assert right / n == pytest.approx(ev["accuracy"], abs=1e-9)
    other = torch.randn(3, 3, 40, 40)   # a size the export never traced
    with torch.no_grad():
        expected = trained.model(other).numpy()
    got = session.run(None, {"input": other.numpy()})[0]
    assert np.abs(got - expected).max() < 1e-3
