"""Files that should be small, given as endless or blocking streams (adversarial cases):
`--config /dev/zero` read until memory ran out, `--config <a FIFO>` waited for a writer
for ever (both hung with no output). Now every small file (resnette.files.read_small) is
opened without blocking, must be a regular file and at most its size limit; one line each.
The command line runs in this process: each case stops while reading its flags."""
import os

import pytest

from resnette.cli import main


@pytest.mark.parametrize("kind, words", [
    ("device", "is not a regular file (a device)"),
    ("fifo", "is not a regular file (a FIFO)"),
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


def test_weights_given_as_a_fifo_are_one_line(tmp_path, monkeypatch, capsys, world):
    """Before: `predict <FIFO>` and `train --init-from <FIFO>` blocked in safetensors' open."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RESNETTE_HOME", str(world["home"]))
    os.mkfifo(tmp_path / "w.safetensors")
    image = str(world["data"] / "valid" / "a" / "00.png")
    for argv in (["predict", "w.safetensors", image],
                 ["train", "--init-from", "w.safetensors", "--data", str(world["data"]), "--arch",
                  "simple_cnn", "--size", "32", "--presize", "32", "--bs", "8", "--quiet"]):
        assert main(argv) == 2
        err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
        assert err == ["error: weights file w.safetensors is not a regular file (a FIFO); "
                       "give a file"], err
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []   # no run files written


def test_a_config_nested_thousands_deep_is_one_line(tmp_path, monkeypatch, capsys):
    """Before: tomllib's RecursionError traceback."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "deep.toml").write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    assert main(["train", "--config", "deep.toml", "--data", "no-such-folder"]) == 2
    err = capsys.readouterr().err
    assert "config file deep.toml nests arrays or tables too deeply" in err and "Traceback" not in err
