"""What an adversarial user tries, in real processes: names that are not UTF-8, odd run
names and places, a BOM in a config file, unreadable files and FIFOs given to predict,
Ctrl-C while the cache is built. Each case: it works, or one `error:` line, exit 2."""
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from conftest import digests, env, n_rows, one_error_line, run, train_args


@pytest.fixture(scope="module")
def latin1(world, tmp_path_factory):
    """The image folder under a Latin-1 name, b"caf\\xe9", with a class b"b\\xe9"."""
    top = tmp_path_factory.mktemp("latin1")
    data = top / os.fsdecode(b"caf\xe9")
    shutil.copytree(world["data"], data, ignore=shutil.ignore_patterns("bomb.png"))
    for split in ("train", "valid"):
        (data / split / "b").rename(data / split / os.fsdecode(b"b\xe9"))
    return data


def test_a_data_folder_named_in_latin1_trains_predicts_resumes_and_exports(world, latin1, cwd):
    proc = run(train_args(latin1, "lat", "--epochs", "1"), cwd, world["home"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = (cwd / "runs" / "lat" / "config.toml").read_text(encoding="utf-8")
    assert 'data = "\\u0000' in config and "caf\\\\xe9" in config   # the documented escape
    from resnette.run.config import read_toml
    assert os.fsencode(read_toml(cwd / "runs" / "lat" / "config.toml")["data"]) == os.fsencode(latin1)
    target = os.fsdecode(b"b\xe9")
    pred = subprocess.run([sys.executable, "-m", "resnette", "predict", "runs/lat",
                           str(latin1 / "valid" / target)], cwd=cwd, env=env(world["home"]),
                          capture_output=True, timeout=120)   # bytes: stdout carries raw names
    assert pred.returncode == 0, pred.stderr[-2000:]
    header, *lines = pred.stdout.splitlines()
    assert header.startswith(b"path\t") and len(lines) == 8 and all(b"caf\xe9/valid/b\xe9/" in line and b"b\\xe9" in line for line in lines)
    resumed = run(["train", "--resume", "--name", "lat", "--quiet"], cwd, world["home"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    out = cwd / os.fsdecode(b"exp\xe9")
    exported = subprocess.run([sys.executable, "-m", "resnette", "export", "runs/lat", "--format",
                               "safetensors", "--out", str(out)], cwd=cwd, env=env(world["home"]),
                              capture_output=True, timeout=120)
    assert exported.returncode == 0 and exported.stdout.strip().endswith(b"exp\xe9/model.safetensors")
    again = run(["predict", str(out / "model.safetensors"), str(latin1 / "valid" / "a" / "00.png"), "--json"],
                cwd, world["home"])
    assert again.returncode == 0 and '"class": "a"' in again.stdout, again.stderr[-2000:]
    report = subprocess.run([sys.executable, "-m", "resnette", "report", "runs/lat"], cwd=cwd,
                            env=env(world["home"]), capture_output=True, timeout=120)
    assert report.returncode == 0 and "caf\\xe9" in (cwd / "runs/lat/report.html").read_text()


def test_a_config_file_with_a_byte_order_mark_is_read(world, cwd):
    (cwd / "bom.toml").write_bytes(b"\xef\xbb\xbfepochs = 1\n")
    proc = run(train_args(world["data"], "bom", "--config", "bom.toml") , cwd, world["home"])
    # train_args gives --epochs 3 as a flag, which wins over the file: the file was read
    assert proc.returncode == 0, proc.stderr[-2000:]
    (cwd / "latin1.toml").write_bytes(b'data = "caf\xe9"\n')
    bad = run(["train", "--config", "latin1.toml"], cwd, world["home"])
    assert "is not UTF-8 text (byte 11); save it as UTF-8" in one_error_line(bad.stderr)
    (cwd / "adir").mkdir()
    folder = run(["train", "--config", "adir"], cwd, world["home"])
    assert "config file adir is a folder" in one_error_line(folder.stderr)


def test_predict_skips_an_unreadable_file_and_names_a_fifo(world, baseline, cwd):
    photos = cwd / "photos"
    photos.mkdir()
    for name in ("00.png", "01.png"):
        shutil.copy(world["data"] / "valid" / "b" / name, photos / name)
    (photos / "broken.jpg").write_text("not an image")
    proc = run(["predict", str(baseline["run"]), str(photos)], cwd, world["home"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "skipped 1 unreadable image(s) of 3" in proc.stderr and "broken.jpg" in proc.stderr
    header, *rows = proc.stdout.strip().splitlines()
    assert header.startswith("path\t") and [r.split("\t")[0] for r in rows] == [str(photos / "00.png"), str(photos / "01.png")]
    assert all(r.split("\t")[1].startswith("b ") for r in rows)   # outputs line up with the paths
    os.mkfifo(cwd / "pipe.jpg")
    fifo = run(["predict", str(baseline["run"]), "pipe.jpg"], cwd, world["home"], timeout=60)
    assert fifo.returncode == 2
    assert "pipe.jpg (not a regular file (a FIFO))" in one_error_line(fifo.stderr)


@pytest.mark.parametrize("args, words", [
    (["--name", "../escape"], "--name '../escape' is not a run name"),
    (["--name", ""], "--name '' is not a run name"),
    (["--bs", "1"], "'bs' is 1: batchnorm needs at least two images a batch to train"),
    (["--lr", "1e300"], "'lr' must be a positive number up to 100"),
    (["--size", "100000", "--presize", "100000"], "'size' must be at least 32 (five stride-2 layers need room) and at most 4096"),
])
def test_odd_training_arguments_are_one_line(world, cwd, args, words):
    base = train_args(world["data"], "x")
    base[base.index("--name"):base.index("--name") + 2] = []
    proc = run(base + args, cwd, world["home"])
    assert proc.returncode == 2
    assert words in one_error_line(proc.stderr)
    assert not (cwd / "escape").exists() and not (cwd / "runs").exists()


def test_a_run_folder_inside_the_data_folder_is_refused(world, tmp_path):
    data = shutil.copytree(world["data"], tmp_path / "data")
    before = digests(data)
    proc = run(train_args(data, "x", "--run-dir", str(data / "train" / "zz")), tmp_path, world["home"])
    assert "is inside the data folder" in one_error_line(proc.stderr)
    assert digests(data) == before and not (data / "train" / "zz").exists()


def test_a_home_that_does_not_exist_is_a_missing_folder_not_a_traceback(world, cwd):
    proc = run(train_args("~nosuchuser/photos", "x"), cwd, world["home"])
    assert "no folder at ~nosuchuser/photos" in one_error_line(proc.stderr)


def test_outputs_never_replace_a_folder_or_another_run(world, baseline, cwd):
    victim = shutil.copytree(baseline["run"], cwd / "victim", ignore=shutil.ignore_patterns(".lock", ".*.tmp"))
    before = digests(victim)
    (cwd / "out").mkdir()
    for args, words in ((["report", str(baseline["run"]), "--out", "out"], "out is a folder; give the name of a file"),
                        (["export", str(baseline["run"]), "--out", "out"], "out is a folder; give the name of a file"),
                        (["export", str(baseline["run"]), "--format", "safetensors", "--out", str(victim)],
                         "is a training run's folder: exporting there would replace its weights")):
        proc = run(args, cwd, world["home"])
        assert proc.returncode == 2
        assert words in one_error_line(proc.stderr)
    assert digests(victim) == before and not list((cwd / "out").iterdir())


def test_ctrl_c_while_the_cache_is_built_leaves_no_run_and_no_partial_cache(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 150), ("valid", 20)):
        for label in "ab":
            (tmp_path / "big" / split / label).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(
                    tmp_path / "big" / split / label / f"{i}.jpg", quality=90)
    home = tmp_path / "home"
    # A shell runs background jobs (`pytest ... &`, a CI step) with SIGINT ignored, and an
    # ignored signal stays ignored in children: give the child a terminal's default Ctrl-C.
    proc = subprocess.Popen([sys.executable, "-m", "resnette", *train_args(tmp_path / "big", "cc")],
                            cwd=tmp_path, env=env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    decoded = home / "decoded"
    deadline = time.monotonic() + 120
    while not (decoded.is_dir() and list(decoded.glob(".*.tmp"))):
        assert proc.poll() is None and time.monotonic() < deadline, "the cache build never started"
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err[-2000:]
    assert not list(decoded.glob(".*.tmp")) and not (tmp_path / "runs" / "cc").exists()
    assert n_rows(tmp_path / "runs" / "cc") == 0
