"""The first five minutes (issue 19 #5): digits to try `predict` on, drawn from the run's own
validation split; predict --sample refuses other data in one line."""
import numpy as np
import pytest
from PIL import Image

from resnette.commands.predict import samples
from resnette.data.digits import DIGITS_SIZE, _load_digits, save_samples, valid_mask
from resnette.run.config import make_config
from resnette.run.trained import Trained
from resnette.utils import ResnetteError


def test_samples_are_one_validation_digit_per_class_as_the_model_sees_them(tmp_path):
    written = save_samples(tmp_path / "s", valid_pct=0.2, seed=3)
    pixels, target = _load_digits()
    valid = valid_mask(len(target), 0.2, 3)
    assert [p.name.split("-")[0] for p in written] == [str(d) for d in range(10)]
    for p in written:
        digit, index = (int(x) for x in p.stem.split("-"))
        assert valid[index] and target[index] == digit   # never a training image
        im = Image.open(p)
        assert im.size == (DIGITS_SIZE, DIGITS_SIZE) and im.mode == "L"
        small = np.asarray(im.resize((8, 8), Image.Resampling.BOX), dtype=float)
        expected = pixels[index] * 255 / 16
        assert np.corrcoef(small.ravel(), expected.ravel())[0, 1] > 0.9   # that digit's scan
    other = save_samples(tmp_path / "t", valid_pct=0.2, seed=4)
    assert [p.name for p in other] != [p.name for p in written]   # the run's own split


def test_predict_sample_needs_a_digits_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = make_config({}, {"data": str(tmp_path), "arch": "simple_cnn"})
    trained = Trained(None, cfg, ["a"], ["a"], [0.5] * 3, [0.25] * 3, 3, "x")
    with pytest.raises(ResnetteError, match="for a run trained on --data digits"):
        samples(trained)
    digits_run = Trained(None, make_config({}, {"data": "digits"}), [], [], [], [], 3, "x")
    assert len(samples(digits_run)) == 10
    assert len(list((tmp_path / "digits-samples").iterdir())) == 10
