"""Config files, flags over files, validation that names the key, and run folders."""
import os
import tomllib

import pytest

from resnette.run import folder as runs
from resnette.run.setup import prepare
from resnette.run.config import (TrainConfig, load_config, make_config, save_config, to_toml,
                             toml_value)
from resnette.train.checkpoints import save_checkpoint
from resnette.utils import ResnetteError


def test_bare_defaults_are_the_chapters_xresnet18_run():
    cfg = make_config()
    assert (cfg.data, cfg.arch, cfg.size, cfg.presize, cfg.epochs, cfg.lr, cfg.bs) == \
        ("imagenette-160", "xresnet18", 128, 160, 5, 3e-3, 128)


def test_digits_preset_sits_under_the_file_and_the_flags(tmp_path):
    assert make_config({"data": "digits"}).size == 32
    (tmp_path / "run.toml").write_text('data = "digits"\nepochs = 3\nlr = 0.02\n')
    cfg = load_config(tmp_path / "run.toml", epochs=4)
    assert (cfg.size, cfg.epochs, cfg.lr) == (32, 4, 0.02)  # preset, flag, file


def test_complete_config_round_trips_through_toml(tmp_path):
    cfg = make_config({"data": "some dir/with \"quotes\"\\", "progressive": [64, 96, 128],
                       "lr": 1e-5, "clip": 1.0, "mixup": 0.4, "seed": 7})
    save_config(cfg, tmp_path / "config.toml")
    text = (tmp_path / "config.toml").read_text()
    assert "# ema = (unset)" in text
    assert load_config(tmp_path / "config.toml") == cfg


@pytest.mark.parametrize("value", [0.1, 1e-5, 3e-3, 1e20, 123456789.0, -0.0, 2.5e-300])
def test_floats_are_written_as_toml_floats(value):
    parsed = tomllib.loads(f"x = {toml_value(value)}")["x"]
    assert isinstance(parsed, float) and parsed == value


def test_strings_with_control_characters_survive():
    s = 'a"b\\c\nd\te\x01f\x7fé'
    assert tomllib.loads(f"x = {toml_value(s)}")["x"] == s


@pytest.mark.parametrize("values, words", [
    ({"size": 16}, ["'size'", "at least 32"]),
    ({"szie": 64}, ["unknown config key 'szie'", "did you mean 'size'"]),
    ({"lr": "fast"}, ["'lr'", "float"]),
    ({"epochs": 2.5}, ["'epochs'", "int"]),
    ({"bs": 0}, ["'bs'", "at least 1"]),
    ({"precision": "fp8"}, ["'precision'", "bf16"]),
    ({"label_smoothing": 1.0}, ["'label_smoothing'"]),
    ({"size": 192, "presize": 160}, ["presize", "size"]),
])
def test_bad_values_name_the_key(values, words):
    with pytest.raises(ResnetteError) as e:
        make_config(values)
    for w in words:
        assert w in str(e.value)
    assert "\n" not in str(e.value)


def test_invalid_toml_is_a_clear_error(tmp_path):
    (tmp_path / "bad.toml").write_text("epochs = = 3\n")
    with pytest.raises(ResnetteError, match="not valid TOML"):
        load_config(tmp_path / "bad.toml")
    with pytest.raises(ResnetteError, match="does not exist"):
        load_config(tmp_path / "missing.toml")


def test_train_table_is_accepted(tmp_path):
    (tmp_path / "c.toml").write_text("[train]\nepochs = 2\n")
    assert load_config(tmp_path / "c.toml").epochs == 2


def test_an_existing_run_is_refused_unless_resume_or_overwrite(tmp_path):
    run = prepare(tmp_path / "r")
    save_config(TrainConfig(), run.config)
    with pytest.raises(ResnetteError, match="already exists.*--resume.*--overwrite"):
        prepare(tmp_path / "r")
    assert prepare(tmp_path / "r", resume=True) == run   # no weights yet: it starts again
    run.model.write_bytes(b"weights")                     # weights but no checkpoint: refused
    with pytest.raises(ResnetteError, match="cannot resume"):
        prepare(tmp_path / "r", resume=True)
    run.checkpoint.write_bytes(b"x")   # a damaged checkpoint is refused before anything is touched
    with pytest.raises(ResnetteError, match="damaged"):
        prepare(tmp_path / "r", resume=True)
    save_checkpoint(run.checkpoint, {})
    assert prepare(tmp_path / "r", resume=True).checkpoint.exists()
    assert not prepare(tmp_path / "r", overwrite=True).checkpoint.exists()


def test_overwrite_never_deletes_a_folder_that_is_not_a_run(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"precious")
    with pytest.raises(ResnetteError, match="not a resnette run folder"):
        prepare(tmp_path / "photos", overwrite=True)
    assert (tmp_path / "photos" / "cat.jpg").read_bytes() == b"precious"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_run_folder_is_a_clear_error(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(ResnetteError, match="cannot write to run folder"):
            prepare(locked / "run")
    finally:
        locked.chmod(0o700)


def test_run_folder_under_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ResnetteError, match="cannot write to run folder"):
        prepare(tmp_path / "file" / "run")


def test_default_names_are_numbered_but_chosen_names_are_not(tmp_path):
    first, chosen = runs.resolve(None, None, "imagenette-160", "xresnet18", 128, root=tmp_path)
    assert first.name == "imagenette-160-xresnet18-128px" and not chosen
    prepare(first)
    (first / "x").write_text("")
    second, _ = runs.resolve(None, None, "imagenette-160", "xresnet18", 128, root=tmp_path)
    assert second.name == "imagenette-160-xresnet18-128px-2"
    named, chosen = runs.resolve("mine", None, "digits", "xresnet18", 32, root=tmp_path)
    assert named == tmp_path / "mine" and chosen
    folder, _ = runs.resolve(None, None, "/home/me/my photos/", "xresnet18", 64, root=tmp_path)
    assert folder.name == "my-photos-xresnet18-64px"


def test_metrics_csv_reads_as_columns(tmp_path):
    (tmp_path / "metrics.csv").write_text(
        "epoch,train_loss,valid_loss,accuracy,time\n0,2.1,1.9,0.31,0:13\n1,1.5,1.4,0.52,0:12\n")
    m = runs.read_metrics(tmp_path / "metrics.csv")
    assert m["accuracy"] == [0.31, 0.52] and m["time"] == ["0:13", "0:12"]
    assert runs.read_metrics(tmp_path / "none.csv") == {}
