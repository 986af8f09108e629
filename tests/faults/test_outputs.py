"""Outputs onto things that are not files (adversarial cases). Before: `report --out
/dev/full` (as root) replaced the device node with the report (atomic_write's rename replaces
whatever is at the path), and likewise a FIFO; `--name $'a\\nb'` made a run folder whose name
split every message over two lines. Now one line each, and the node is left as it was."""
import os
import stat

import pytest

from resnette.cli import main
from resnette.files import atomic_write
from resnette.utils import ResnetteError


def test_atomic_write_never_replaces_a_fifo(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(ResnetteError, match=r"pipe is not a regular file \(a device, FIFO or socket\)"):
        atomic_write(tmp_path / "pipe", lambda tmp: open(tmp, "w").write("x"))
    assert stat.S_ISFIFO(os.lstat(tmp_path / "pipe").st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]


def test_a_control_character_in_a_run_name_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--data", "no-such-folder", "--name", "a\nb"]) == 2
    err = capsys.readouterr().err
    assert "is not a run name" in err and "control characters" in err
    assert list(tmp_path.iterdir()) == []
