"""A full disk (a small tmpfs) or a file-size limit (RLIMIT_FSIZE) while saving: the previous
checkpoint stays byte-for-byte intact and loadable, and the error says where and how much."""
import resource
import shutil
import signal
import subprocess

import pytest

from conftest import digests, one_error_line, position, run
from test_stops import nan_run  # noqa: F401  (a run stopped at epoch 1 with a good checkpoint)


@pytest.fixture
def tmpfs(tmp_path, nan_run):  # noqa: F811
    """A run folder (checkpoint at epoch 1) on a tmpfs with room for it plus half a checkpoint."""
    _, source, _ = nan_run
    need = sum(p.stat().st_size for p in source.rglob("*") if p.is_file())
    room = need + (source / "checkpoint.pt").stat().st_size // 2
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={room // 1024 + 64}k", "tmpfs", str(mnt)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("mounting a tmpfs needs root (the RLIMIT_FSIZE test covers the same path)")
    try:
        shutil.copytree(source, mnt / "run")
        yield mnt / "run"
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_full_disk_keeps_the_previous_checkpoint_and_says_where_and_how_much(world, tmpfs, tmp_path):
    before = digests(tmpfs)["checkpoint.pt"]
    proc = run(["train", "--resume", "--run-dir", str(tmpfs), "--quiet"], tmp_path, world["home"])
    assert proc.returncode == 2
    line = one_error_line(proc.stderr)
    assert f"disk full while writing {tmpfs}/" in line and "MiB free there" in line, line
    assert "previous file is intact" in line
    after = digests(tmpfs)
    assert after["checkpoint.pt"] == before and position(tmpfs / "checkpoint.pt") == {"epoch": 1, "batch": 0}
    assert not [name for name in after if name.endswith(".tmp")]   # no partial file left behind


def _limit_file_size(limit: int):
    def apply() -> None:   # in the child, before exec: a write past `limit` fails with EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_file_size_limit_keeps_the_previous_checkpoint_and_names_the_limit(world, nan_run, tmp_path):  # noqa: F811
    _, source, _ = nan_run
    folder = shutil.copytree(source, tmp_path / "run")
    before = digests(folder)["checkpoint.pt"]
    limit = (folder / "checkpoint.pt").stat().st_size - 1   # the next checkpoint cannot fit
    proc = run(["train", "--resume", "--run-dir", str(folder), "--quiet"], tmp_path, world["home"],
               preexec_fn=_limit_file_size(limit))
    assert proc.returncode == 2
    line = one_error_line(proc.stderr)
    assert f"file size limit reached while writing {folder}/checkpoint.pt" in line, line
    assert f"{limit / 2**20:.1f} MiB per file" in line
    after = digests(folder)
    assert after["checkpoint.pt"] == before and position(folder / "checkpoint.pt") == {"epoch": 1, "batch": 0}
    assert not [name for name in after if name.endswith(".tmp")]
