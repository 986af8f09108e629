"""Predicting and evaluating with a trained model; starting a run from another's weights."""
import numpy as np
import pytest
import torch
from PIL import Image

from resnette.run import folder as runs
from resnette.run.setup import prepare
from resnette.run.config import make_config, save_config
from resnette.models import create_model
from resnette.commands.predict import find_images, predict_files
from resnette.train.evaluation import probabilities, summarize, top_losses
from resnette.train.checkpoints import save_weights
from resnette.run.trained import init_from, load_trained
from resnette.utils import ResnetteError


def make_run(path, n_out=3, arch="simple_cnn"):
    run = prepare(path)
    save_config(make_config({"data": "digits", "arch": arch}), run.config)
    torch.manual_seed(0)
    save_weights(run.model, create_model(arch, n_out=n_out))
    names = [f"class{i}" for i in range(n_out)]
    runs.save_classes(run, names, names, [0.5] * 3, [0.25] * 3, 3)
    return run


def test_summary_numbers_by_hand():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.5, 0.3, 0.2], [0.2, 0.2, 0.6]])
    targets = torch.tensor([0, 1, 1, 0])
    ev = summarize(probs, targets, ["a", "b", "c"])
    assert ev["accuracy"] == 0.5 and "top_k_accuracy" not in ev   # 3 classes: top-5 is 1.0 always
    assert ev["confusion"] == [[1, 0, 1], [1, 1, 0], [0, 0, 0]]
    assert ev["per_class"]["a"] == {"accuracy": 0.5, "n": 2}
    assert ev["per_class"]["c"] == {"accuracy": None, "n": 0}
    expected_loss = -np.mean(np.log([0.7, 0.8, 0.3, 0.2]))
    assert ev["cross_entropy"] == pytest.approx(expected_loss, rel=1e-5)
    worst, losses = top_losses(probs, targets, n=2)
    assert worst.tolist() == [3, 2] and losses.tolist() == pytest.approx([-np.log(0.2), -np.log(0.3)])


def test_predictions_are_sorted_top_k_with_names(tmp_path):
    run = make_run(tmp_path / "r")
    for i in range(3):
        Image.fromarray(np.full((48, 48, 3), 60 * i, np.uint8)).save(tmp_path / f"{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    files = find_images([tmp_path])
    assert [f.name for f in files] == ["0.png", "1.png", "2.png"]
    preds = predict_files(load_trained(run.path), files, k=2)
    for p in preds:
        assert len(p.top) == 2 and p.top[0][1] >= p.top[1][1]
        assert {name for name, _ in p.top} <= {"class0", "class1", "class2"}
    with pytest.raises(ResnetteError, match="no images"):
        find_images([tmp_path / "r" / "plots"])


def test_flip_tta_averages_the_image_and_its_mirror():
    torch.manual_seed(0)
    model = create_model("simple_cnn", n_out=3).eval()
    x = torch.randn(2, 3, 32, 32)
    both = (probabilities(model, x) + probabilities(model, x.flip(3))) / 2
    assert torch.allclose(probabilities(model, x, tta=True), both)


def test_init_from_keeps_the_body_and_gives_a_fresh_head(tmp_path):
    source = make_run(tmp_path / "src", n_out=3)
    theirs = load_trained(source.path).model.state_dict()
    torch.manual_seed(1)
    model = create_model("simple_cnn", n_out=5)
    fresh_head = {k: v.clone() for k, v in model.state_dict().items()}
    message = init_from(model, source.path, "simple_cnn")
    assert "fresh head" in message and "3 -> 5" in message
    mine = model.state_dict()
    head = [k for k in mine if mine[k].shape != theirs[k].shape]
    assert head and all(torch.equal(mine[k], fresh_head[k]) for k in head)
    assert all(torch.equal(mine[k], theirs[k]) for k in mine if k not in head)
    same = create_model("simple_cnn", n_out=3)
    assert "every weight" in init_from(same, source.path, "simple_cnn")
    assert all(torch.equal(v, theirs[k]) for k, v in same.state_dict().items())
