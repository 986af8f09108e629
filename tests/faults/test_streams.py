"""Files that should be small, given as endless or blocking streams (adversarial cases):
`--config /dev/zero` read until memory ran out, `--config <a FIFO>` waited for a writer
for ever (both hung with no output). Now every small file (utils.read_small_file) is
opened without blocking, must be a regular file and at most its size limit; one line each.
The command line runs in this process: each case stops while reading its flags."""
import os

import pytest

from resnette.cli import main


@pytest.mark.parametrize("kind, words", [
    ("device", "is not a regular file (a FIFO, device or socket)"),
    ("fifo", "is not a regular file (a FIFO, device or socket)"),
    ("huge", "is over 1024 KiB, more than any config file needs"),
])
def test_a_config_that_is_a_stream_or_huge_is_one_line(tmp_path, monkeypatch, capsys, kind, words):
    monkeypatch.chdir(tmp_path)
    path = {"device": "/dev/zero", "fifo": str(tmp_path / "c.toml"), "huge": str(tmp_path / "h.toml")}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    if kind == "huge":
        with open(path, "w") as f:
            f.write("# padding\n" * 200_000)
    assert main(["train", "--config", path, "--data", "no-such-folder"]) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ([] if kind == "device" else [os.path.basename(path)])
