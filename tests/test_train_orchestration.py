"""`resnette train`'s orchestration: the command sets a run up with one call into run/ and
settles it by leaving that call; the run folder's default `-N` names have one home
(run/folder.py), which an elastic restart asks for the run its earlier attempt started."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from fakes import image_folder
from resnette.cli import main
from resnette.run.config import TrainConfig, save_config
from resnette.run.folder import Run, newest_default, resolve
from resnette.run.setup import elastic_resume

SETUP = str(Path(sys.modules["resnette.run.setup"].__file__))


def entries_from_the_command(argv: list[str]) -> list[str]:
    """The functions of run/setup.py that commands/train.py calls (or resumes, for a generator)
    while `resnette ARGV` runs: each a step of the config's trip into run/setup.py. Frames of
    contextlib (a `with` entering and leaving) are looked through; calls back into setup.py from
    lower layers (a lambda handed to the distributed helpers) are not the command's."""
    import resnette.commands.train as command
    here, seen = str(Path(command.__file__)), []

    def profile(frame, event, arg) -> None:
        if event != "call" or frame.f_code.co_filename != SETUP:
            return
        caller = frame.f_back
        while caller is not None and caller.f_code.co_filename.endswith("contextlib.py"):
            caller = caller.f_back
        if caller is not None and caller.f_code.co_filename == here:
            seen.append(frame.f_code.co_name)

    sys.setprofile(profile)
    try:
        assert main(argv) == 0
    finally:
        sys.setprofile(None)
    return seen


@pytest.mark.slow   # trains (a second of CPU) and starts `resnette report`
def test_the_config_enters_run_setup_to_set_up_and_to_settle_only(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    data = image_folder(tmp_path / "pets", n_train=4, size=32)
    entries = entries_from_the_command(
        ["train", "--data", str(data), "--arch", "simple_cnn", "--size", "32", "--presize", "32",
         "--bs", "4", "--epochs", "1", "--device", "cpu", "--name", "r", "--lr-find"])
    # the config made from the flags, then its trip: in to set up, out to settle
    assert entries == ["config_from_args", "training", "training"]
    run = Run(tmp_path / "runs" / "r")
    assert run.evaluation.is_file() and run.model.is_file()   # settled: evaluated, saved
    out = capsys.readouterr().out   # the lr finder's picks in display's one wording (as lr-find)
    assert re.search(r"^suggested learning rates: valley \d\.\d\de-\d\d, steepest ", out, re.M)


def test_the_newest_default_name_is_the_one_before_the_first_free(tmp_path):
    assert newest_default("pets", "xresnet18", 64, tmp_path) is None
    base = tmp_path / "pets-xresnet18-64px"
    for path in (base, base.with_name(base.name + "-2"), base.with_name(base.name + "-3")):
        path.mkdir()
        (path / "config.toml").write_text("")
        assert newest_default("pets", "xresnet18", 64, tmp_path) == path
        assert resolve(None, None, "pets", "xresnet18", 64, tmp_path)[0] != path   # taken
    (base.with_name(base.name + "-4")).mkdir()   # empty: free, so not a run
    assert newest_default("pets", "xresnet18", 64, tmp_path).name == "pets-xresnet18-64px-3"


def test_an_elastic_restart_continues_the_newest_default_named_run(tmp_path, monkeypatch, capsys):
    cfg = TrainConfig(data="pets", arch="xresnet18", size=64)
    monkeypatch.delenv("TORCHELASTIC_RESTART_COUNT", raising=False)
    assert elastic_resume(cfg, False, tmp_path) == (cfg, False)   # not restarted: as typed
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    assert elastic_resume(cfg, False, tmp_path) == (cfg, False)   # restarted, nothing to resume
    for name in ("pets-xresnet18-64px", "pets-xresnet18-64px-2"):
        (tmp_path / name).mkdir()
        save_config(TrainConfig(data="pets", arch="xresnet18", size=64, name=name),
                    Run(tmp_path / name).config)
    resumed, resume = elastic_resume(cfg, False, tmp_path)
    assert resume and resumed.name == "pets-xresnet18-64px-2"
    assert "elastic restart 1: continuing" in capsys.readouterr().err
    other = TrainConfig(data="pets", arch="xresnet18", size=64, lr=0.5)   # another run's settings
    assert elastic_resume(other, False, tmp_path) == (other, False)
