"""Truncated, corrupted or malicious checkpoint and weights files: a clear one-line error from
--resume, predict, evaluate and --init-from, nothing else touched, and no code ever runs."""
import os
import pickle

import numpy as np
import pytest
import torch

from conftest import copy_run, digests, one_error_line, run, train_args
from resnette.cli import main


class RunsCode:
    """Unpickling this runs a shell command (the classic malicious-pickle payload)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def in_process(capsys, *argv) -> str:
    """The same command in this process (cheaper than a new one for errors found at load)."""
    assert main([str(a) for a in argv]) == 2
    return one_error_line(capsys.readouterr().err)


def truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def flip_a_byte(path, where=0.6):
    data = bytearray(path.read_bytes())
    data[int(len(data) * where)] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_truncated_checkpoint_stops_resume_before_anything_is_touched(world, baseline, cwd):
    folder = copy_run(baseline["run"], cwd, "t")
    truncate(folder / "checkpoint.pt")
    before = digests(folder)
    proc = run(["train", "--resume", "--name", "t", "--quiet"], cwd, world["home"])
    assert proc.returncode == 2
    line = one_error_line(proc.stderr)
    assert f"checkpoint {folder.relative_to(cwd)}" in line, line
    assert "damaged" in line or "truncated" in line, line
    assert digests(folder) == before


def test_a_flipped_bit_in_a_checkpoint_fails_its_crc_instead_of_loading(baseline, cwd, capsys, monkeypatch):
    monkeypatch.chdir(cwd)
    folder = copy_run(baseline["run"], cwd, "f")
    flip_a_byte(folder / "checkpoint.pt")
    before = digests(folder)
    line = in_process(capsys, "train", "--resume", "--name", "f", "--quiet")
    assert "is corrupted" in line and "CRC" in line
    assert digests(folder) == before


@pytest.mark.parametrize("damage", [truncate, lambda p: p.write_bytes(b"")], ids=["truncated", "empty"])
def test_damaged_weights_are_refused_by_predict_evaluate_and_init_from(world, baseline, cwd, capsys,
                                                                      monkeypatch, damage):
    monkeypatch.chdir(cwd)
    folder = copy_run(baseline["run"], cwd, "w")
    damage(folder / "best.safetensors")
    damage(folder / "model.safetensors")
    before = digests(folder)
    image = next((world["data"] / "valid" / "a").glob("*.png"))
    for argv in (["predict", folder, image], ["evaluate", folder],
                 ["predict", folder / "model.safetensors", image]):
        assert "cannot read" in in_process(capsys, *argv)
    line = in_process(capsys, *train_args(world["data"], "new", "--init-from", str(folder)))
    assert "cannot read" in line and "best.safetensors" in line
    assert digests(folder) == before
    assert not (cwd / "runs" / "new").exists()   # the refused run left no folder behind


def test_a_checkpoint_that_would_run_a_command_is_refused_by_a_real_process(world, baseline, cwd):
    folder = copy_run(baseline["run"], cwd, "p")
    marker = cwd / "pwned"
    torch.save({"format": "resnette-checkpoint-1", "model": RunsCode(marker)}, folder / "checkpoint.pt")
    proc = run(["train", "--resume", "--name", "p", "--quiet"], cwd, world["home"])
    assert proc.returncode == 2
    line = one_error_line(proc.stderr)
    assert "refusing to load" in line and "could run code" in line and "system" in line
    assert not marker.exists()


def test_pickles_posing_as_weights_or_a_decode_cache_never_run(world, baseline, cwd, capsys, monkeypatch):
    monkeypatch.chdir(cwd)
    marker = cwd / "pwned"
    folder = copy_run(baseline["run"], cwd, "q")
    for name in ("best.safetensors", "model.safetensors"):
        with open(folder / name, "wb") as f:
            pickle.dump(RunsCode(marker), f)
    image = next((world["data"] / "valid" / "a").glob("*.png"))
    assert "cannot read" in in_process(capsys, "predict", folder, image)
    assert "cannot read" in in_process(capsys, *train_args(world["data"], "x", "--init-from",
                                                           str(folder / "model.safetensors")))
    # the decoded-image cache: every store replaced by a pickled object array
    cache = cwd / "decoded"
    import shutil
    shutil.copytree(world["home"] / "decoded", cache)
    stores = list(cache.glob("*/images.npy"))
    assert stores
    for store in stores:
        np.save(store, np.array([RunsCode(marker)], dtype=object), allow_pickle=True)
    from resnette.data import folder as image_folder
    with pytest.warns(UserWarning, match="skipped 4 unreadable"):
        dls = image_folder(world["data"], size=32, presize=32, bs=8, cache_dir=cache)
    def rebuilt(store) -> bool:   # the pickled array is never loaded: it raises, unrun
        try:
            return np.load(store).dtype == np.uint8
        except ValueError:
            return False
    # the home holds a store per presize other tests used; this folder's one is decoded afresh
    assert dls.train.n == 48 and sum(map(rebuilt, stores)) == 1
    assert not marker.exists()
