"""Named recipes (`--recipe`, resnette/run/recipes/*.toml), the crop-and-flip augmentation
and validation at a test size other than the training size."""
import dataclasses
import math

import numpy as np
import pytest
import torch

from fakes import FakeDataLoaders, image_folder, tiny_net
from resnette import Learner
from resnette.cli import main
from resnette.data.arrays import from_arrays
from resnette.models.layers import BlurPool, SimpleSelfAttention
from resnette.run import recipes
from resnette.run.config import load_config, make_config
from resnette.run.folder import read_metrics
from resnette.run.setup import build_data, model_for
from resnette.train.callbacks import SaveBest
from resnette.utils import ResnetteError


def test_the_recipes_command_lists_every_recipe_in_one_line_each(capsys):
    assert main(["recipes"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["chapter", "fast", "leaderboard"]
    assert all(len(line.split(None, 1)[1]) > 20 for line in lines)   # each has its summary


def test_an_unknown_recipe_is_one_error_line(capsys):
    assert main(["train", "--recipe", "fastest", "--data", "digits"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown recipe 'fastest'" in err and "fast" in err


def test_the_chapter_recipe_is_what_a_bare_train_does():
    named = dataclasses.replace(make_config({"recipe": "chapter"}), recipe=None)
    assert named == make_config()


def test_a_recipe_sits_under_the_config_file_and_the_flags(tmp_path):
    fast = recipes.settings("fast")
    cfg = make_config({"recipe": "fast"})
    assert (cfg.epochs, cfg.bs, cfg.aug, cfg.test_size) == (fast["epochs"], fast["bs"], "crop_flip",
                                                            fast["test_size"])
    (tmp_path / "run.toml").write_text('recipe = "fast"\nbs = 32\n')
    cfg = load_config(tmp_path / "run.toml", epochs=9)
    assert (cfg.bs, cfg.epochs, cfg.lr) == (32, 9, fast["lr"])    # file, flag, recipe


def test_the_leaderboard_recipe_builds_xresnet50_with_mish_self_attention_and_blur_pool():
    cfg = make_config({"recipe": "leaderboard"})
    # fastai's train_imagenette.py flags as the leaderboard ran them
    assert (cfg.opt, cfg.schedule, cfg.pct_start, cfg.bs, cfg.lr, cfg.label_smoothing,
            cfg.min_scale, cfg.aug, cfg.size, cfg.epochs, cfg.test_size) == \
        ("ranger", "flat_cos", 0.75, 64, 8e-3, 0.1, 0.35, "crop_flip", 128, 5, None)
    model = model_for(cfg, n_out=10)
    kinds = {type(m).__name__ for m in model.modules()}
    assert {"Mish", "SimpleSelfAttention", "BlurPool"} <= kinds and "ReLU" not in kinds
    assert sum(isinstance(m, SimpleSelfAttention) for m in model.modules()) == 1
    assert any(isinstance(m, BlurPool) for m in model.stem)        # MaxBlurPool in the stem
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 10)


def _arrays(n=8, p=40):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, p, p, 3), dtype=np.uint8)
    labels = np.arange(n) % 2
    is_valid = np.arange(n) >= n - 2
    return images, labels, is_valid


def test_crop_flip_with_the_whole_image_only_resizes_or_mirrors():
    images, labels, is_valid = _arrays()
    kw = dict(size=40, bs=2, min_scale=1.0, prefetch=0, workers=0)
    dls = from_arrays(images, labels, [str(i) for i in range(8)], is_valid, ~is_valid, ["a", "b"],
                      ["a", "b"], augment="crop_flip", **kw)
    dls.train.set_epoch(0)
    flipped = same = 0
    for x, y in dls.train:
        imgs = dls.train.decode_batch(x).int()          # N,H,W,C uint8 after de-normalising
        for img in imgs:
            # which training image is it? the one it equals, as is or mirrored
            diffs = [(img - torch.from_numpy(images[i]).int()).abs().max().item() for i in range(6)]
            mirr = [(img - torch.from_numpy(images[i][:, ::-1].copy()).int()).abs().max().item()
                    for i in range(6)]
            assert min(min(diffs), min(mirr)) <= 1, "crop_flip changed more than the crop and flip"
            same += min(diffs) <= 1
            flipped += min(mirr) <= 1 and min(diffs) > 1
    assert same > 0 and flipped > 0
    with pytest.raises(ResnetteError, match="crop_flip"):
        from_arrays(images, labels, [str(i) for i in range(8)], is_valid, ~is_valid, ["a", "b"],
                    ["a", "b"], augment="rotate", **kw)




def test_test_size_is_the_validation_size_in_training_evaluate_and_predict(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    data = image_folder(tmp_path / "pets", 6, 3)
    cfg = make_config({"data": str(data), "size": 32, "presize": 48, "test_size": 48, "bs": 4})
    dls = build_data(cfg)
    assert dls.train.size == 32 and next(iter(dls.valid))[0].shape[-1] == 48
    assert main(["train", "--data", str(data), "--arch", "simple_cnn", "--size", "32", "--presize", "48",
                 "--test-size", "48", "--bs", "4", "--epochs", "1", "--device", "cpu", "--name", "t"]) == 0
    assert "test_size = 48" in (tmp_path / "runs" / "t" / "config.toml").read_text()
    assert main(["evaluate", "runs/t", "--test-size", "40", "--bs", "4", "--json"]) == 0
    assert main(["evaluate", "runs/t", "--test-size", "8", "--bs", "4"]) == 2
    assert "'test_size' must be at least 32" in capsys.readouterr().err
    assert main(["evaluate", "runs/t", "--test-size", "100000", "--bs", "4"]) == 2   # no huge allocation
    assert "at most 4096" in capsys.readouterr().err


def test_valid_every_zero_validates_only_after_the_last_epoch(tmp_path):

    learn = Learner(FakeDataLoaders(), tiny_net(), lr=1e-2, valid_every=0, run_dir=tmp_path / "run",
                    callbacks=[SaveBest(tmp_path / "best.safetensors")])
    calls = []
    score = learn.score   # the loop's validation
    learn.score = lambda *a, **k: calls.append(1) or score(*a, **k)
    learn.fit_one_cycle(3)
    assert len(calls) == 1
    rows = learn.recorder.rows
    assert all(math.isnan(r["accuracy"]) and math.isnan(r["valid_loss"]) for r in rows[:2])
    assert rows[2]["accuracy"] > 0.5                  # the last epoch is measured
    assert (tmp_path / "best.safetensors").exists()  # the best of the measured epochs: the last
    csv = read_metrics(tmp_path / "run" / "metrics.csv")
    assert math.isnan(csv["accuracy"][0]) and csv["accuracy"][2] == rows[2]["accuracy"]
