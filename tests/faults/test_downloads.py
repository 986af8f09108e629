"""Downloads against a local server on 127.0.0.1: a process killed mid-file resumes from its
partial file; a file that changed on the server fails its hash and is deleted; a server that
never answers times out with a message saying so."""
import hashlib
import io
import signal
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from conftest import finish, start, wait_for
from resnette.data.sources import untar_data
from resnette.utils import ResnetteError

STALL_AFTER = 3 << 19   # the first response sends 1.5 MiB, then stalls until the test ends


def archive(seed: int) -> bytes:
    """An mnist_tiny-shaped .tgz with 3 MiB of incompressible filler (so it streams for a while)."""
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in (("mnist_tiny/train/3/filler.bin", rng.bytes(3 << 20)),
                           ("mnist_tiny/train/3/a.txt", b"ok"), ("mnist_tiny/train/3/0.png", b"p"),
                           ("mnist_tiny/valid/3/0.png", b"p")):   # a dataset's layout
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class Server:
    def __init__(self, body: bytes):
        self.body, self.ranges, self.stall_first, self.hang = body, [], True, False
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                if outer.hang:
                    outer.release.wait(10)
                    return
                rng = self.headers.get("Range")
                outer.ranges.append(rng)
                start = int(rng.split("=")[1].split("-")[0]) if rng else 0
                body = outer.body[start:]
                self.send_response(206 if rng else 200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if outer.stall_first:
                    outer.stall_first = False
                    self.wfile.write(body[:STALL_AFTER])
                    self.wfile.flush()
                    outer.release.wait(20)
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/mnist_tiny.tgz"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server(archive(0))
    yield s
    s.close()


def kill_mid_download(server, tmp_path):
    """`resnette train --data mnist-tiny` from the server, killed -9 once 1 MiB is on disk."""
    home = tmp_path / "home"
    proc = start(["train", "--data", "mnist-tiny", "--quiet"], tmp_path, home)
    part = home / "downloads" / "mnist_tiny.tgz.part"
    wait_for(lambda: part.exists() and part.stat().st_size >= 1 << 20, proc)
    proc.send_signal(signal.SIGKILL)
    finish(proc)
    return home, part, part.stat().st_size


@pytest.fixture
def env_url(server, monkeypatch):
    monkeypatch.setenv("RESNETTE_URL_MNIST_TINY", server.url)


def test_a_download_killed_mid_file_resumes_from_the_partial_file(server, env_url, tmp_path):
    home, part, have = kill_mid_download(server, tmp_path)
    assert 1 << 20 <= have < len(server.body)
    sha256 = hashlib.sha256(server.body).hexdigest()
    folder = untar_data("mnist-tiny", home, sha256=sha256, retries=1, timeout=5, backoff=0.01)
    assert server.ranges == [None, f"bytes={have}-"]   # the second request asked only for the rest
    assert (folder / "train" / "3" / "a.txt").read_bytes() == b"ok"
    assert not part.exists()


def test_a_file_changed_on_the_server_fails_its_hash_and_is_deleted(server, env_url, tmp_path):
    home, part, have = kill_mid_download(server, tmp_path)
    expected = hashlib.sha256(server.body).hexdigest()
    server.body = archive(1)   # the mirror was updated between the two attempts
    with pytest.raises(ResnetteError, match=f"SHA-256 .*, expected {expected}; the file was removed"):
        untar_data("mnist-tiny", home, sha256=expected, retries=1, timeout=5, backoff=0.01)
    assert not any((home / "downloads").iterdir()) and not (home / "mnist_tiny").exists()


def test_a_server_that_never_answers_times_out_with_a_clear_message(server, tmp_path):
    server.hang = True
    t = time.monotonic()
    with pytest.raises(ResnetteError, match=r"failed after 2 tries: no data for 0.5 s \(timed out\)"):
        untar_data("mnist-tiny", tmp_path, url=server.url, retries=1, timeout=0.5, backoff=0.01)
    assert time.monotonic() - t < 5
    assert not any((tmp_path / "downloads").iterdir())
