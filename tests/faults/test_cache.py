"""The decode cache under concurrency and bad disks, with real processes: two builders of one
entry (the second waits, naming the first's pid, then reuses its work), a killed builder's
leftovers, a read-only cache, RESNETTE_HOME pointing at a file, a full disk (alone and two
builders racing for the last megabytes: before, "Bus error" or a BrokenProcessPool
traceback), and an image edited in place with its size and mtime kept."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import TIMEOUT, env, one_error_line, run, train_args

BUILDER = """
import sys, warnings
from resnette.data.cache import decoded_store
from resnette.data.folders import scan_folder
from resnette.utils import ResnetteError
warnings.simplefilter("always")
s = scan_folder(sys.argv[1])
try:
    store = decoded_store(s.root, s.files, int(sys.argv[2]), cache_dir=sys.argv[3], workers=2)
except ResnetteError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
print(store.decoded, store.path.name, int(store.images.sum()))
"""
N = 600   # over the 512 that switch the build to worker processes


@pytest.fixture(scope="module")
def many(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("many")
    rng = np.random.default_rng(0)
    for split, n in (("train", 290), ("valid", 10)):
        for label in ("a", "b"):
            (root / split / label).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(
                    root / split / label / f"{i:03d}.png")
    return root


def builder(data: Path, presize: int, cache: Path, err: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", BUILDER, str(data), str(presize), str(cache)],
                            env=env(cache.parent), stdout=subprocess.PIPE, stderr=err.open("w"), text=True)


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=TIMEOUT)
    return proc.returncode, out


def temporaries(cache: Path) -> list[str]:
    """A builder's hidden work folders (`.<key>.*`)."""
    return [p.name for p in cache.iterdir() if p.name.startswith(".") and p.is_dir()] if cache.exists() else []


def wait_until(condition, what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.001)


def test_a_second_builder_waits_for_the_first_then_reuses_its_entry(many, tmp_path):
    cache = tmp_path / "home" / "decoded"
    first = builder(many, 32, cache, tmp_path / "first.err")
    wait_until(lambda: temporaries(cache), "the first build to start")
    first.send_signal(signal.SIGSTOP)          # hold it mid-build, its lock taken
    try:
        second = builder(many, 32, cache, tmp_path / "second.err")
        wait_until(lambda: "waiting for process" in (tmp_path / "second.err").read_text(),
                   "the second builder to wait")
    finally:
        first.send_signal(signal.SIGCONT)
    (rc1, out1), (rc2, out2) = finish(first), finish(second)
    assert rc1 == 0 and rc2 == 0, (tmp_path / "first.err").read_text() + (tmp_path / "second.err").read_text()
    decoded1, key1, sum1 = out1.split()
    decoded2, key2, sum2 = out2.split()
    assert (decoded1, decoded2) == (str(N), "0")        # decoded once, reused once
    assert key1 == key2 and sum1 == sum2
    line = next(x for x in (tmp_path / "second.err").read_text().splitlines() if "waiting" in x)
    assert f"waiting for process {first.pid}, which is decoding the same images into {cache}/{key1}" in line
    assert not temporaries(cache) and [p.name for p in cache.iterdir() if p.is_dir()] == [key1]


def test_a_killed_builders_temporary_folder_is_removed_by_the_next_build(many, tmp_path):
    cache = tmp_path / "home" / "decoded"
    killed = builder(many, 32, cache, tmp_path / "killed.err")

    def reserved() -> bool:   # its space claimed: the decoding has begun
        store = [cache / t / "images.npy" for t in temporaries(cache)]
        return bool(store) and store[0].exists() and store[0].stat().st_size >= N * 32 * 32 * 3
    wait_until(reserved, "the build to start")
    killed.kill()
    killed.wait(timeout=TIMEOUT)
    assert len(temporaries(cache)) == 1
    rc, out = finish(builder(many, 24, cache, tmp_path / "next.err"))   # another entry's build
    assert rc == 0 and out.split()[0] == str(N), (tmp_path / "next.err").read_text()
    assert not temporaries(cache)


@pytest.fixture
def tmpfs(tmp_path):
    mounts = []

    def mount(size_kib: int) -> Path:
        mnt = tmp_path / f"disk{len(mounts)}"
        mnt.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(mnt)],
                              capture_output=True)
        if done.returncode != 0:
            pytest.skip("mounting a tmpfs needs root")
        mounts.append(mnt)
        return mnt

    yield mount
    for mnt in mounts:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_a_read_only_cache_serves_its_entries_and_refuses_new_ones_in_one_line(world, tmp_path, tmpfs):
    home = tmpfs(4096)
    assert run(train_args(world["data"], "rw", "--epochs", "1"), tmp_path, home).returncode == 0
    subprocess.run(["mount", "-o", "remount,ro", str(home)], check=True)
    reuse = run(train_args(world["data"], "ro", "--epochs", "1"), tmp_path, home)
    assert reuse.returncode == 0 and "Traceback" not in reuse.stderr, reuse.stderr[-3000:]
    new = run(train_args(world["data"], "ro2", "--epochs", "1", "--presize", "36"), tmp_path, home)
    assert new.returncode == 2
    line = one_error_line(new.stderr)
    assert f"cannot write the decoded-image cache at {home}/decoded (Read-only file system)" in line, line
    assert "set RESNETTE_HOME (or cache_dir=) to a writable folder" in line


def test_resnette_home_pointing_at_a_file_is_one_line(world, tmp_path):
    home = tmp_path / "home-file"
    home.write_text("not a folder")
    proc = run(train_args(world["data"], "f", "--epochs", "1"), tmp_path, home)
    assert proc.returncode == 2
    line = one_error_line(proc.stderr)
    assert f"cannot create the decoded-image cache folder {home}/decoded: {home} is a file" in line, line
    assert home.read_text() == "not a folder"


def test_a_full_disk_is_one_line_before_any_decoding(world, tmp_path, tmpfs):
    home = tmpfs(128)      # the 68 images at 32 px need 204 KB, plus room for the meta
    proc = run(train_args(world["data"], "full", "--epochs", "1"), tmp_path, home)
    assert proc.returncode == 2
    line = one_error_line(proc.stderr)
    assert f"the decoded-image cache needs 0.3 MiB at {home}/decoded but only 0.1 MiB is free" in line, line
    assert not temporaries(home / "decoded")


def test_two_builders_racing_for_the_last_megabytes_end_cleanly(many, tmp_path, tmpfs):
    """Each entry fits alone (1.8 and 2.9 MB), both do not (4 MB disk): space is reserved up
    front, so the loser stops with one line instead of a SIGBUS from its memory map."""
    cache = tmpfs(4096) / "decoded"
    procs = [builder(many, p, cache, tmp_path / f"{p}.err") for p in (32, 40)]
    results = [finish(p) for p in procs]
    errs = [(tmp_path / f"{p}.err").read_text() for p in (32, 40)]
    assert sorted(rc for rc, _ in results) == [0, 2], errs
    loser = errs[[rc for rc, _ in results].index(2)]
    line = one_error_line(loser)
    assert "RESNETTE_HOME" in line and ("free" in line), line
    assert not temporaries(cache)
    assert len([p for p in cache.iterdir() if p.is_dir()]) == 1


def test_an_image_edited_in_place_with_the_same_size_and_mtime_is_decoded_again(tmp_path):
    from resnette.data.cache import decoded_store
    from resnette.data.folders import scan_folder

    root = tmp_path / "ds"
    for split in ("train", "valid"):
        for label, grey in (("a", 10), ("b", 200)):
            (root / split / label).mkdir(parents=True)
            Image.new("RGB", (16, 16), (grey,) * 3).save(root / split / label / "x.bmp")
    s = scan_folder(root)
    first = decoded_store(s.root, s.files, 16, cache_dir=tmp_path / "c", workers=1)
    target = root / "train" / "a" / "x.bmp"
    st = target.stat()
    time.sleep(0.01)
    Image.new("RGB", (16, 16), (99, 99, 99)).save(target)          # BMP: same size in bytes
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))          # and the old mtime
    assert target.stat().st_size == st.st_size and target.stat().st_mtime_ns == st.st_mtime_ns
    again = decoded_store(s.root, s.files, 16, cache_dir=tmp_path / "c", workers=1)
    assert again.decoded == len(s.files) and again.path != first.path
    assert (again.images[s.files.index(target)] == 99).all()
