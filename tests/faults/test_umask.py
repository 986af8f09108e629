"""Files follow the umask, as open() would make them, and are still written atomically
(issue 18, class 10). Before: every atomically written file was 0600 (mkstemp's mode), and
extracted datasets and decode-cache entries 0700 (mkdtemp's), whatever the umask: a run, a
report or an export could not be shared with a colleague or served without a chmod."""
import io
import os
import stat
import tarfile

import pytest

from resnette.data.sources import untar_data
from resnette.files import atomic_write


@pytest.fixture
def umask():
    old = os.umask(0o022)
    yield lambda m: os.umask(m)
    os.umask(old)


def mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


@pytest.mark.parametrize("mask, want", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600),
                                        (0o027, 0o640)])
def test_atomic_write_gives_the_mode_open_would(tmp_path, umask, mask, want):
    umask(mask)
    with open(tmp_path / "plain", "w") as f:
        f.write("x")
    atomic_write(tmp_path / "atomic", lambda tmp: open(tmp, "w").write("x"))
    assert mode(tmp_path / "atomic") == mode(tmp_path / "plain") == want
    assert sorted(p.name for p in tmp_path.iterdir()) == ["atomic", "plain"]   # no temporary


def test_an_extracted_dataset_follows_the_umask(tmp_path, umask):
    umask(0o022)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in ("train/3/a.png", "valid/3/b.png"):   # no top folder: the temporary one is kept
            info = tarfile.TarInfo(name)
            info.size = 2
            tar.addfile(info, io.BytesIO(b"ok"))
    (tmp_path / "m.tgz").write_bytes(buf.getvalue())
    folder = untar_data("mnist-tiny", tmp_path / "home", url=(tmp_path / "m.tgz").as_uri())
    assert mode(folder) == 0o755 and mode(folder / "train" / "3") == 0o755
    assert mode(tmp_path / "home" / "downloads" / "m.tgz") == 0o644


@pytest.mark.slow
def test_a_run_and_the_decode_cache_follow_the_umask(world, baseline):
    """The suite's shared uninterrupted run (no extra process): every file and folder it and
    its decode-cache entry hold has the mode open()/mkdir() give under this umask."""
    mask = os.umask(0o022)
    os.umask(mask)
    files = [p for top in (baseline["run"], world["home"]) for p in top.rglob("*")]
    assert any(p.name == "model.safetensors" for p in files) and any(p.name == "images.npy" for p in files)
    wrong = {str(p): oct(mode(p)) for p in files if not p.is_symlink() and not p.name.endswith(".lock")
             and mode(p) != (0o777 if p.is_dir() else 0o666) & ~mask}
    assert wrong == {}
