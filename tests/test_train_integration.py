"""The chapter's workflow with the real data loaders and models: folder -> Learner -> fit."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import resnette
from resnette.train import load_checkpoint
from safetensors import safe_open

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def make_folder(root: Path) -> Path:
    """Two classes told apart by colour: reds and blues, 40x40 with noise."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("valid", 4)):
        for label, channel in (("blue", 2), ("red", 0)):
            d = root / split / label
            d.mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 90, (40, 40, 3), dtype=np.uint8)
                img[..., channel] = 200
                Image.fromarray(img).save(d / f"{i}.png")
    return root


def test_folder_data_and_a_registry_model_train_and_checkpoint(tmp_path):
    dls = resnette.data.folder(make_folder(tmp_path / "imgs"), size=24, presize=32, bs=8,
                               cache_dir=tmp_path / "cache", workers=0)
    torch.manual_seed(0)
    model = resnette.models.create_model("resblock_cnn", n_out=dls.c)
    learn = resnette.Learner(dls, model, metrics=["accuracy", "error_rate"], run_dir=tmp_path / "run",
                             quiet=True, progressive=[(1, 28)], arch="resblock_cnn")
    learn.fit_one_cycle(2, 3e-3)
    rows = learn.recorder.rows
    assert [r["epoch"] for r in rows] == [0, 1]
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    # the registry's name, as config.toml spells it, not the class name ("XResNet", "Sequential")
    assert state["vocab"] == ["blue", "red"] and state["config"]["arch"] == "resblock_cnn"
    with safe_open(str(tmp_path / "run" / "model.safetensors"), framework="pt") as f:
        assert f.metadata() == {"arch": "resblock_cnn", "vocab": "blue\nred"}
    assert dls.train.size == 28
    probs = learn.predict(next(iter(dls.valid))[0], tta=True)
    assert probs.shape == (8, 2) and torch.allclose(probs.sum(1), torch.ones(8))
    assert learn.precision in ("fp32", "bf16")


@pytest.mark.skipif(not (SHARED / "mnist_tiny").is_dir(), reason="shared mnist_tiny data not present")
def test_the_chapters_plain_net_learns_mnist_tiny(tmp_path):
    dls = resnette.data.folder(SHARED / "mnist_tiny", size=28, presize=28, bs=64,
                               cache_dir=tmp_path / "cache")
    torch.manual_seed(0)
    learn = resnette.Learner(dls, resnette.models.create_model("simple_cnn", n_out=dls.c), quiet=True)
    suggestion = learn.lr_find(num_it=30)
    assert 1e-7 < suggestion.valley < 10
    learn.fit_one_cycle(2, 3e-3)
    assert learn.recorder.rows[-1]["accuracy"] > 0.9
