"""torch.compile's caches under RESNETTE_HOME (issue 25 #3): where torch itself then writes,
the user's own TORCHINDUCTOR_CACHE_DIR kept, and `resnette cache` showing their size."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from resnette.cachedir import size_text
from resnette.files import disk_bytes
from resnette.compiled import TORCH_ENV, compiled_dir, use_compiled_dir


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNETTE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv(TORCH_ENV, "")   # unset, and restored after the test however it changes
    return tmp_path / "home"


def test_torch_compile_caches_go_under_resnette_home(home, monkeypatch):
    from torch._inductor.runtime.cache_dir_utils import cache_dir, default_cache_dir
    monkeypatch.setenv(TORCH_ENV, default_cache_dir())   # what importing torch._inductor writes
    assert use_compiled_dir() == home / "compiled"
    assert cache_dir() == str(home / "compiled")   # torch's own reading of the setting
    assert (home / "compiled").is_dir()


def test_a_users_own_inductor_folder_stands(home, tmp_path, monkeypatch):
    monkeypatch.setenv(TORCH_ENV, str(tmp_path / "mine"))
    assert use_compiled_dir() == compiled_dir() == tmp_path / "mine"
    assert os.environ[TORCH_ENV] == str(tmp_path / "mine")



def test_a_file_where_the_folder_goes_is_one_line_before_any_work(home):
    from resnette.utils import ResnetteError
    home.mkdir()
    (home / "compiled").write_text("not a folder")
    with pytest.raises(ResnetteError, match=r"compiled is not a folder; .*move it away"):
        use_compiled_dir()
    assert (home / "compiled").read_text() == "not a folder"


def test_the_size_counts_regular_files_on_disk_only(tmp_path):
    folder = tmp_path / "compiled"
    (folder / "fxgraph" / "ab").mkdir(parents=True)
    (folder / "fxgraph" / "ab" / "graph").write_bytes(b"x" * 1500)
    (folder / "kernel.so").write_bytes(b"y" * 500)
    big = tmp_path / "big"
    big.write_bytes(b"z" * 10_000)
    (folder / "link").symlink_to(big)          # a link is not the cache's: never counted
    os.mkfifo(folder / "fifo")                 # nor anything that is not a regular file
    files = [folder / "fxgraph" / "ab" / "graph", folder / "kernel.so"]
    assert disk_bytes(folder) == sum(os.lstat(f).st_blocks * 512 or 1 for f in files) >= 2000
    assert disk_bytes(tmp_path / "absent") == 0


def test_the_cache_command_shows_the_compiled_caches_only_when_there(home):
    env = {**os.environ, "RESNETTE_HOME": str(home)}
    run = [sys.executable, "-m", "resnette", "cache"]
    first = subprocess.run(run, capture_output=True, text=True, env=env, timeout=60)
    assert first.returncode == 0 and "torch.compile" not in first.stdout
    (home / "compiled").mkdir(parents=True)
    (home / "compiled" / "code.py").write_bytes(b"#" * 2500)
    second = subprocess.run(run, capture_output=True, text=True, env=env, timeout=60)
    assert second.returncode == 0, second.stderr
    line = second.stdout.strip().splitlines()[-1]
    shown = size_text(disk_bytes(home / "compiled"))   # on disk, as the entries' sizes
    assert line.startswith("torch.compile's caches") and f": {shown} in" in line
    assert str(home / "compiled") in line


@pytest.mark.slow
def test_train_compile_writes_torchs_caches_under_resnette_home(home, tmp_path):
    """The real thing: torch.compile (inductor, this CPU's C++ compiler) run by `resnette train
    --compile` leaves its caches in $RESNETTE_HOME/compiled and nothing in torch's /tmp default."""
    from fakes import image_folder
    data = image_folder(tmp_path / "images", n_train=8, n_valid=4, size=40)
    env = {k: v for k, v in os.environ.items() if k != TORCH_ENV}
    env["RESNETTE_HOME"] = str(home)
    cmd = [sys.executable, "-m", "resnette", "train", "--data", str(data), "--arch", "simple_cnn",
           "--size", "32", "--presize", "32", "--bs", "4", "--epochs", "1", "--compile",
           "--precision", "fp32", "--run-dir", str(tmp_path / "run")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "torch.compile: the first training batch took" in proc.stdout + proc.stderr
    written = [p for p in (home / "compiled").rglob("*") if p.is_file()]
    assert len(written) > 3 and disk_bytes(home / "compiled") > 10_000
