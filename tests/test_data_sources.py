"""Named datasets against a local HTTP server: download, resume, verify, refuse bad archives."""
import hashlib
import io
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from resnette.data import get_data
from resnette.data.sources import DATASETS, download, untar_data, url_env_var
from resnette.utils import ResnetteError


def tarball(files: dict[str, bytes], extra=()) -> bytes:
    """A .tgz with `files` (name -> bytes) plus raw TarInfo entries in `extra`."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra:
            tar.addfile(info)
    return buf.getvalue()


def mnist_like() -> bytes:
    from PIL import Image

    files = {}
    for split in ("train", "valid"):
        for lab in ("3", "7"):
            for i in range(2):
                b = io.BytesIO()
                Image.new("L", (28, 28), 40 * i + int(lab)).save(b, format="PNG")
                files[f"mnist_tiny/{split}/{lab}/{i}.png"] = b.getvalue()
    return tarball(files)


class Server:
    """A threaded HTTP server on 127.0.0.1 serving `routes`, with Range support and faults."""

    def __init__(self):
        self.routes: dict[str, bytes] = {}
        self.cut_first: set[str] = set()   # paths whose first response stops half way
        self.hang: set[str] = set()
        self.requests: list[tuple[str, str | None]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                outer.requests.append((self.path, rng))
                if self.path in outer.hang:
                    time.sleep(3)
                    return
                data = outer.routes.get(self.path)
                if data is None:
                    self.send_error(404, "Not Found")
                    return
                start = int(rng.split("=")[1].split("-")[0]) if rng else 0
                body = data[start:]
                self.send_response(206 if rng else 200)
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.path in outer.cut_first:
                    outer.cut_first.discard(self.path)
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.connection.close()
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


FAST = dict(retries=2, timeout=2.0, backoff=0.01)


def test_download_extract_then_offline_reuse(server, tmp_path, monkeypatch):
    server.routes["/mnist_tiny.tgz"] = mnist_like()
    out = untar_data("mnist-tiny", tmp_path, url=server.url + "/mnist_tiny.tgz", **FAST)
    assert out == tmp_path / "mnist_tiny" and len(list(out.glob("*/*/*.png"))) == 8
    n = len(server.requests)
    monkeypatch.setenv(url_env_var("mnist-tiny"), "http://127.0.0.1:9/unreachable")
    assert untar_data("mnist-tiny", tmp_path, **FAST) == out  # no network call at all
    assert len(server.requests) == n
    dls = get_data("mnist-tiny", data_dir=tmp_path, size=16, presize=20, bs=2,
                   cache_dir=tmp_path / "cache", prefetch=0)
    assert dls.vocab == ["3", "7"] and dls.valid.n == 4


def test_env_url_override_and_file_url(tmp_path, monkeypatch):
    archive = tmp_path / "local.tgz"
    archive.write_bytes(mnist_like())
    monkeypatch.setenv("RESNETTE_URL_MNIST_TINY", archive.as_uri())
    monkeypatch.setenv("RESNETTE_HOME", str(tmp_path / "home"))
    assert untar_data("mnist-tiny", **FAST) == tmp_path / "home" / "mnist_tiny"


def test_resume_after_cut_connection(server, tmp_path):
    data = bytes(range(256)) * 4000
    server.routes["/f.bin"] = data
    server.cut_first.add("/f.bin")
    dest = download(server.url + "/f.bin", tmp_path / "f.bin",
                    stats=(len(data), hashlib.md5(data[: 2**20]).hexdigest()), **FAST)
    assert dest.read_bytes() == data
    ranges = [r for p, r in server.requests if p == "/f.bin"]
    assert ranges[0] is None and ranges[1] == f"bytes={len(data) // 2}-"
    assert not (tmp_path / "f.bin.part").exists()


def test_hash_mismatch_removes_file(server, tmp_path):
    server.routes["/f.bin"] = b"x" * 1000
    with pytest.raises(ResnetteError, match="first-MiB MD5"):
        download(server.url + "/f.bin", tmp_path / "f.bin", stats=(1000, "0" * 32), **FAST)
    assert not list(tmp_path.iterdir())


def test_size_mismatch(server, tmp_path):
    server.routes["/f.bin"] = b"x" * 1000
    with pytest.raises(ResnetteError, match="expected 999"):
        download(server.url + "/f.bin", tmp_path / "f.bin",
                 stats=(999, hashlib.md5(b"x" * 1000).hexdigest()), **FAST)


def test_404_is_clear_and_not_retried(server, tmp_path):
    with pytest.raises(ResnetteError, match="HTTP 404"):
        download(server.url + "/missing.tgz", tmp_path / "m.tgz", **FAST)
    assert len(server.requests) == 1


def test_hanging_server_times_out(server, tmp_path):
    server.hang.add("/slow")
    t = time.time()
    with pytest.raises(ResnetteError, match="timed out|failed after"):
        download(server.url + "/slow", tmp_path / "s", retries=0, timeout=0.5, backoff=0.01)
    assert time.time() - t < 3


def test_corrupt_archive_is_refused_and_removed(server, tmp_path):
    server.routes["/mnist_tiny.tgz"] = b"\x1f\x8b this is not a gzip stream" * 50
    with pytest.raises(ResnetteError, match="not a readable tar"):
        untar_data("mnist-tiny", tmp_path, url=server.url + "/mnist_tiny.tgz", **FAST)
    assert not (tmp_path / "downloads" / "mnist_tiny.tgz").exists()
    assert not (tmp_path / "mnist_tiny").exists()


def _link(name, target, kind):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.mark.parametrize("bad", [
    {"files": {"mnist_tiny/../../escape.txt": b"pwned"}},
    {"files": {"/tmp/resnette-abs-escape.txt": b"pwned"}},
    {"extra": [_link("mnist_tiny/up", "../../../etc/passwd", tarfile.SYMTYPE)]},
    {"extra": [_link("mnist_tiny/abs", "/etc/passwd", tarfile.SYMTYPE)]},
    {"extra": [_link("mnist_tiny/hard", "../outside.txt", tarfile.LNKTYPE)]},
    {"extra": [_link("mnist_tiny/dev", "", tarfile.CHRTYPE)]},
], ids=["dotdot", "absolute", "symlink-out", "symlink-abs", "hardlink-out", "device"])
def test_malicious_tar_is_refused_and_nothing_written(server, tmp_path, bad):
    files = {"mnist_tiny/train/3/a.txt": b"ok", **bad.get("files", {})}
    server.routes["/mnist_tiny.tgz"] = tarball(files, bad.get("extra", ()))
    home = tmp_path / "home"
    with pytest.raises(ResnetteError, match="refusing to extract"):
        untar_data("mnist-tiny", home, url=server.url + "/mnist_tiny.tgz", **FAST)
    assert not (home / "mnist_tiny").exists()
    assert not (tmp_path / "escape.txt").exists() and not Path("/tmp/resnette-abs-escape.txt").exists()
    assert sorted(p.name for p in home.iterdir()) == ["downloads"]


def test_known_datasets_have_fastai_checks():
    assert set(DATASETS) >= {"imagenette-160", "imagenette-320", "imagenette", "imagewoof-160",
                             "imagewoof-320", "imagewoof", "mnist", "mnist-sample", "mnist-tiny"}
    assert all(d.size and len(d.md5) == 32 and d.url.startswith("https://") for d in DATASETS.values())
    with pytest.raises(ResnetteError, match="choose one of"):
        untar_data("imagenette-999")


# --- fastai's check: size + MD5 of the first MiB (fastdownload's path_stats), on a > 1 MiB archive


def big_archive(seed: int = 0) -> bytes:
    """An mnist_tiny-shaped .tgz of ~1.5 MiB (incompressible filler), so it spans > 1 MiB."""
    import numpy as np

    files = {"big/train/3/filler.bin": np.random.default_rng(seed).bytes(3 << 19),
             "big/train/3/a.txt": b"ok", "big/train/3/0.png": b"png",
             "big/valid/3/0.png": b"png"}   # the layout a dataset must have (data/layout.py)
    return tarball(files)


def fastai_record(body: bytes) -> tuple[int, str]:
    """What fastai's checks.txt holds for a file: its size and the MD5 of its first 2**20 bytes
    (written out here from fastdownload's definition, not with resnette's code)."""
    return len(body), hashlib.md5(body[: 2**20]).hexdigest()


@pytest.fixture
def big(server, monkeypatch):
    """A named dataset 'big' whose publisher's address is the local server; returns a setter
    for the record fastai would hold for it."""
    from resnette.data.sources import Dataset

    def register(record: tuple[int, str]) -> None:
        monkeypatch.setitem(DATASETS, "big", Dataset(server.url + "/big.tgz", *record, "big"))
    return register


def nothing_left(home: Path) -> None:
    assert sorted(p.name for p in home.iterdir()) == ["downloads"]
    assert not list((home / "downloads").iterdir())   # neither the archive nor a .part


def test_a_named_archive_over_1_mib_passes_fastais_check_and_is_reused_offline(server, big, tmp_path):
    body = big_archive()
    assert len(body) > 2**20 and hashlib.md5(body).hexdigest() != fastai_record(body)[1]
    server.routes["/big.tgz"] = body
    big(fastai_record(body))
    home = tmp_path / "home"
    out = untar_data("big", home, **FAST)
    assert (out / "train" / "3" / "a.txt").read_bytes() == b"ok"
    assert (home / "downloads" / "big.tgz").read_bytes() == body
    n = len(server.requests)
    server.routes.clear()                              # the server has nothing any more
    assert untar_data("big", home, **FAST) == out and len(server.requests) == n


def test_a_wrong_first_mib_is_refused_and_nothing_left(server, big, tmp_path):
    body = big_archive()
    served = bytearray(body)
    served[2**20 - 1] ^= 0xFF                          # the last byte of the first MiB
    server.routes["/big.tgz"] = bytes(served)
    big(fastai_record(body))
    home = tmp_path / "home"
    with pytest.raises(ResnetteError, match=f"first-MiB MD5 .*expected {fastai_record(body)[1]}"):
        untar_data("big", home, **FAST)
    nothing_left(home)


def test_a_right_first_mib_with_a_wrong_size_is_refused_and_nothing_left(server, big, tmp_path):
    body = big_archive()
    server.routes["/big.tgz"] = body + b"\0" * 512       # first MiB identical, one block longer
    big(fastai_record(body))
    home = tmp_path / "home"
    with pytest.raises(ResnetteError, match=f"gave {len(body) + 512} bytes, expected {len(body)}"):
        untar_data("big", home, **FAST)
    nothing_left(home)


def test_the_check_covers_size_and_first_mib_only_as_fastdownloads_does(server, tmp_path):
    body = big_archive()
    changed = bytearray(body)
    changed[2**20] ^= 0xFF                             # the first byte after the first MiB
    server.routes["/f.bin"] = bytes(changed)
    dest = download(server.url + "/f.bin", tmp_path / "f.bin", stats=fastai_record(body), **FAST)
    assert dest.read_bytes() == bytes(changed)         # fastdownload's check passes it too


def test_an_archive_left_by_an_older_check_is_fetched_again(server, big, tmp_path):
    body = big_archive()
    server.routes["/big.tgz"] = body
    big(fastai_record(body))
    home = tmp_path / "home"
    (home / "downloads").mkdir(parents=True)
    (home / "downloads" / "big.tgz").write_bytes(big_archive(seed=1))   # a stale version
    assert (untar_data("big", home, **FAST) / "train" / "3" / "a.txt").exists()
    assert (home / "downloads" / "big.tgz").read_bytes() == body


# --- a user-given address with a full-file SHA-256


def test_a_user_url_with_the_right_sha256_fragment_downloads(server, tmp_path, monkeypatch):
    body = mnist_like()
    server.routes["/mirror/mnist_tiny.tgz"] = body
    digest = hashlib.sha256(body).hexdigest()
    monkeypatch.setenv(url_env_var("mnist-tiny"), f"{server.url}/mirror/mnist_tiny.tgz#sha256={digest}")
    out = untar_data("mnist-tiny", tmp_path, **FAST)
    assert len(list(out.glob("*/*/*.png"))) == 8
    assert server.requests[0][0] == "/mirror/mnist_tiny.tgz"   # the fragment is not sent


@pytest.mark.parametrize("how", ["fragment", "argument"])
def test_a_wrong_sha256_is_refused_and_nothing_left(server, tmp_path, how):
    body = mnist_like()
    server.routes["/mnist_tiny.tgz"] = body
    wrong = hashlib.sha256(body + b"!").hexdigest()
    url = server.url + "/mnist_tiny.tgz"
    kw = {"url": f"{url}#sha256={wrong}"} if how == "fragment" else {"url": url, "sha256": wrong}
    with pytest.raises(ResnetteError, match=f"SHA-256 {hashlib.sha256(body).hexdigest()}, expected {wrong}"):
        untar_data("mnist-tiny", tmp_path, **kw, **FAST)
    nothing_left(tmp_path)


@pytest.mark.parametrize("url, sha, msg", [
    ("http://127.0.0.1:9/x.tgz#sha256=abc", None, "64 hexadecimal digits"),
    ("http://127.0.0.1:9/x.tgz#md5=" + "0" * 32, None, "only address fragment understood"),
    ("http://127.0.0.1:9/x.tgz#sha256=" + "0" * 64, "1" * 64, "two different SHA-256s"),
])
def test_a_malformed_sha256_is_one_clear_line(tmp_path, url, sha, msg):
    with pytest.raises(ResnetteError, match=msg):
        untar_data("mnist-tiny", tmp_path, url=url, sha256=sha, **FAST)
    assert not (tmp_path / "downloads").exists()
