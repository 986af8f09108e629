"""Archives that try to write outside their folder, or to fill the disk: refused before a byte
is extracted, the bad download removed, nothing written anywhere else."""
import gzip
import io
import tarfile
import zlib

import pytest

import numpy as np

from conftest import one_error_line, run
from resnette.data.sources import MAX_RATIO, RATIO_ALLOWANCE, untar_data
from resnette.utils import ResnetteError


def entry(name, kind=tarfile.REGTYPE, data=b"", link=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, len(data)
    return info, data


def tgz(*entries) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data else None)
    return buf.getvalue()


def bomb(unpacked: int) -> bytes:
    """A .tgz holding one file of `unpacked` zero bytes, streamed so it never sits in memory."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)   # 31: gzip framing
    header = tarfile.TarInfo("mnist_tiny/train/3/zeros.png")
    header.size = unpacked
    block = b"\0" * (1 << 20)
    parts = [z.compress(header.tobuf(format=tarfile.GNU_FORMAT))]
    parts += [z.compress(block) for _ in range(unpacked // len(block))]
    parts.append(z.compress(b"\0" * 1024) + z.flush())   # end-of-archive blocks
    return b"".join(parts)


OK = entry("mnist_tiny/train/3/a.png", data=b"fine")
ATTACKS = {
    "dotdot": [OK, entry("mnist_tiny/../../escape.txt", data=b"pwned")],
    "absolute": [OK, entry("/tmp/resnette-fault-abs.txt", data=b"pwned")],
    "symlink then write through it": [entry("mnist_tiny/out", tarfile.SYMTYPE, link="../../outside"),
                                      entry("mnist_tiny/out/escape.txt", data=b"pwned")],
    "symlink to an absolute folder": [entry("mnist_tiny/etc", tarfile.SYMTYPE, link="/etc")],
    "hard link to a file outside": [entry("mnist_tiny/passwd", tarfile.LNKTYPE, link="/etc/passwd")],
    "hard link climbing out": [entry("mnist_tiny/h", tarfile.LNKTYPE, link="../outside/secret")],
    "character device": [entry("mnist_tiny/dev", tarfile.CHRTYPE)],
    "block device": [entry("mnist_tiny/sda", tarfile.BLKTYPE)],
    "fifo": [entry("mnist_tiny/fifo", tarfile.FIFOTYPE)],
}


def nothing_written(home, outside) -> None:
    assert sorted(p.name for p in home.iterdir()) == ["downloads"]
    assert not any((home / "downloads").iterdir())        # the bad archive was removed
    assert not any(outside.iterdir())
    assert not (home.parent / "escape.txt").exists()
    assert not (home.parent.parent / "escape.txt").exists()


ATTACKS["symlink chain a -> . then a/b -> .. then a file through it"] = [
    entry("a", tarfile.SYMTYPE, link="."), entry("a/b", tarfile.SYMTYPE, link=".."),
    entry("a/b/escape.txt", data=b"pwned")]


@pytest.fixture(params=["data filter", "fallback"])
def mode(request, monkeypatch):
    """Both extraction paths: tarfile's `data` filter, and the one for Pythons without it
    (forced by hiding the filter, as on Python < 3.11.4)."""
    if request.param == "fallback":
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    elif not hasattr(tarfile, "data_filter"):
        pytest.skip("this Python's tarfile has no extraction filters")
    return request.param


@pytest.mark.parametrize("attack", ATTACKS)
def test_an_archive_escaping_its_folder_is_refused_whole(tmp_path, attack, mode):
    home, outside = tmp_path / "home", tmp_path / "outside"
    outside.mkdir()
    archive = tmp_path / "mnist_tiny.tgz"
    archive.write_bytes(tgz(*ATTACKS[attack]))
    with pytest.raises(ResnetteError, match="refusing to extract mnist_tiny.tgz.*nothing was extracted") as excinfo:
        untar_data("mnist-tiny", home, url=archive.as_uri())
    nothing_written(home, outside)
    assert not (tmp_path.parent / "escape.txt").exists()
    assert not list(tmp_path.rglob("escape.txt"))
    if mode == "fallback" and "link" in attack:
        assert "is a link" in str(excinfo.value)       # every link, whatever it points to


def test_the_fallback_refuses_even_a_harmless_link_in_one_line(tmp_path, monkeypatch):
    monkeypatch.delattr(tarfile, "data_filter")
    archive = tmp_path / "mnist_tiny.tgz"
    archive.write_bytes(tgz(OK, entry("mnist_tiny/train/3/b.png", tarfile.SYMTYPE, link="a.png")))
    with pytest.raises(ResnetteError, match=r"entry 'mnist_tiny/train/3/b.png' is a link .*"
                                            r"Python < 3.11.4.*nothing was extracted") as e:
        untar_data("mnist-tiny", tmp_path / "home", url=archive.as_uri())
    assert "\n" not in str(e.value)


def test_a_clean_archive_extracts_in_one_pass_in_both_modes(tmp_path, monkeypatch, mode):
    """A separate check pass then extractall inflates a .tgz twice (seeking back in a gzip
    stream restarts it): count the bytes gzip inflates."""
    filler = np.random.default_rng(0).bytes(3 << 20)
    archive = tmp_path / "mnist_tiny.tgz"
    archive.write_bytes(tgz(OK, entry("mnist_tiny/train/3/filler.bin", data=filler),
                            entry("mnist_tiny/valid/3/b.png", data=b"fine too")))
    inflated = []
    read = gzip._GzipReader.read
    monkeypatch.setattr(gzip._GzipReader, "read", lambda self, n=-1: inflated.append(
        len(out := read(self, n))) or out)
    folder = untar_data("mnist-tiny", tmp_path / "home", url=archive.as_uri())
    assert (folder / "train" / "3" / "filler.bin").read_bytes() == filler
    assert (folder / "valid" / "3" / "b.png").read_bytes() == b"fine too"
    tar_size = len(gzip.decompress(archive.read_bytes()))
    assert 0.9 * tar_size < sum(inflated) < 1.2 * tar_size   # once, not twice


def test_a_decompression_bomb_is_refused_before_it_is_inflated(tmp_path, mode):
    home, outside = tmp_path / "home", tmp_path / "outside"
    outside.mkdir()
    unpacked = RATIO_ALLOWANCE + (200 << 20)            # 264 MiB of zeros ...
    archive = tmp_path / "mnist_tiny.tgz"
    archive.write_bytes(bomb(unpacked))
    assert archive.stat().st_size * MAX_RATIO < 20 << 20  # ... in well under 1 MiB
    with pytest.raises(ResnetteError, match=r"decompression bomb.*nothing was extracted"):
        untar_data("mnist-tiny", home, url=archive.as_uri())
    nothing_written(home, outside)


def test_the_command_line_refuses_a_bomb_in_one_line(tmp_path):
    archive = tmp_path / "mnist_tiny.tgz"
    archive.write_bytes(bomb(RATIO_ALLOWANCE + (200 << 20)))
    home = tmp_path / "home"
    proc = run(["train", "--data", "mnist-tiny", "--arch", "simple_cnn", "--quiet"], tmp_path, home,
               RESNETTE_URL_MNIST_TINY=archive.as_uri())
    assert proc.returncode == 2
    assert "decompression bomb" in one_error_line(proc.stderr)
    assert sorted(p.name for p in home.iterdir()) == ["downloads"]
    assert not list(tmp_path.glob("runs/*"))   # the run that never started left no folder


@pytest.mark.parametrize("damage", ["flipped", "truncated"])
def test_a_damaged_tgz_is_refused_not_extracted_in_part(tmp_path, damage):
    """Before: tarfile stops quietly at the first bad header after the first member, so a .tgz
    damaged in its middle extracted in part, was marked complete and trained on."""
    rng = np.random.default_rng(0)
    body = bytearray(tgz(*(entry(f"mnist_tiny/train/{c}/{i}.bin", data=rng.bytes(20_000))
                           for c in "37" for i in range(10))))
    if damage == "flipped":
        body[len(body) // 2: len(body) // 2 + 64] = bytes(64)
    else:
        del body[len(body) * 3 // 4:]
    (tmp_path / "d.tgz").write_bytes(bytes(body))
    with pytest.raises(ResnetteError, match="is not a readable tar archive .*; it was removed"):
        untar_data("mnist-tiny", tmp_path / "home", url=(tmp_path / "d.tgz").as_uri(), retries=0)
    assert not (tmp_path / "home" / "mnist_tiny").exists()
    assert list((tmp_path / "home" / "downloads").iterdir()) == []
