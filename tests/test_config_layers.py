"""One layering rule for settings (issue 18, class 2): a key set in a layer (preset < recipe <
config file < flags) also decides the keys it implies unless that layer sets them too, the
keys that share a meaning are checked together, and config.toml records what was used."""
import re

import numpy as np
import pytest

from fakes import image_folder
from resnette.cli import main
from resnette.run.config import IMPLIES, make_config
from resnette.run.tomlfile import read_toml
from resnette.train import precision as precision_module
from resnette.utils import ResnetteError


def test_a_size_flag_clears_the_recipes_progressive_and_test_size():
    cfg = make_config({}, {"recipe": "fast", "size": 32, "presize": 32})
    assert (cfg.size, cfg.progressive, cfg.test_size, cfg.presize) == (32, [], None, 32)
    fast = make_config({}, {"recipe": "fast"})     # without --size the recipe is whole
    assert (fast.size, fast.progressive, fast.test_size) == (112, [64, 96, 96, 112], 128)


def test_a_size_in_the_config_file_clears_the_recipes_too_and_a_flag_can_set_them_again():
    cfg = make_config({"recipe": "fast", "size": 96}, {"test_size": 112})
    assert (cfg.size, cfg.progressive, cfg.test_size) == (96, [], 112)
    cfg = make_config({"recipe": "fast", "size": 96, "progressive": [64, 96]})
    assert (cfg.size, cfg.progressive, cfg.test_size) == (96, [64, 96], None)


def test_a_schedule_flag_clears_the_recipes_pct_start():
    assert make_config({}, {"recipe": "leaderboard"}).pct_start == 0.75
    assert make_config({}, {"recipe": "leaderboard", "schedule": "one_cycle"}).pct_start is None
    assert IMPLIES["schedule"] == ("pct_start",)


def test_progressive_alone_sets_the_size_it_ends_at():
    cfg = make_config({}, {"progressive": [64, 96]})
    assert (cfg.size, cfg.progressive) == (96, [64, 96])


@pytest.mark.parametrize("values, words", [
    ({"progressive": [64, 192], "presize": 160, "size": 192},
     "progressive sizes (64 192) must be at most presize (160)"),
    ({"progressive": [64, 5000]}, "'progressive' must be a list of up to 100 sizes, each at "
                                  "least 32 and at most 4096 (as size)"),   # capped as size is
    ({"recipe": "fast", "epochs": 2}, "progressive has 4 sizes (64 96 96 112) for 2 epoch(s)"),
    ({"progressive": [64, 96], "size": 128}, "the last progressive size (96) is the size the run "
                                             "ends at, but size is 128"),
])
def test_combinations_that_cannot_be_trained_are_one_line(values, words):
    with pytest.raises(ResnetteError, match=re.escape(words)):
        make_config({}, values)


@pytest.mark.parametrize("kind,precision,channels_last",
                         [("avx2", "fp32", False), ("amx", "bf16", True)])
def test_recipe_fast_with_size_32_trains_and_validates_at_32_and_records_what_was_used(
        tmp_path, monkeypatch, kind, precision, channels_last):
    """The issue's case: before, it trained at 96 px and validated at 128 px, while config.toml
    said size = 32. Both rows of the CPU table that differ, whatever this CPU is."""
    monkeypatch.setattr(precision_module, "cpu_kind", lambda: kind)
    monkeypatch.chdir(tmp_path)
    data = image_folder(tmp_path / "pets", 6, 3)
    assert main(["train", "--recipe", "fast", "--data", str(data), "--arch", "simple_cnn",
                 "--size", "32", "--presize", "32", "--epochs", "1", "--bs", "4",
                 "--name", "t", "--quiet"]) == 0
    run = tmp_path / "runs" / "t"
    with np.load(run / "plots" / "augmented_batch.npz") as z:     # what training saw
        assert z["images"].shape[1:3] == (32, 32)
    with np.load(run / "plots" / "top_losses.npz") as z:          # what validation saw
        assert z["images"].shape[1:3] == (32, 32)
    saved = read_toml(run / "config.toml")
    assert (saved["size"], saved["progressive"], "test_size" in saved) == (32, [], False)
    assert (saved["precision"], saved["device"], saved["channels_last"]) == \
        (precision, "cpu", channels_last)
    assert make_config(saved).size == 32          # the record rebuilds the same settings
