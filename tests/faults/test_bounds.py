"""Downloads are bounded and their failures sorted (issue 18, class 1; data/fetch.py).

A local server on 127.0.0.1 streams without end and without a length, answers 404, or
announces more than the cap; `file://` addresses name /dev/zero, a FIFO fed for ever, a
missing file, a folder; a 1 MiB tmpfs fills up mid-download. Each ends in one message that
says what happened, after one request where another cannot help, with no partial file left
unless a resume can use it. Before: the endless streams wrote until the disk was full, then
the full disk was retried 5 times and blamed on the network.
"""
import hashlib
import io
import os
import subprocess
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import one_error_line, run
from resnette.data.sources import DATASETS, Dataset, download, untar_data
from resnette.utils import ResnetteError

FAST = dict(retries=2, timeout=2.0, backoff=2.0)   # a retry would cost >= 2 s: timing shows it
BODY = os.urandom(3 << 20)


def tiny_tgz() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in (("mnist_tiny/train/3/filler.bin", os.urandom(1 << 20)),
                           ("mnist_tiny/train/3/a.txt", b"ok"), ("mnist_tiny/train/3/0.png", b"p"),
                           ("mnist_tiny/valid/3/0.png", b"p")):   # a dataset's layout
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


TGZ = tiny_tgz()


class Server:
    """Routes: /endless (zeros, no length, never ends), /body (BODY, no length), /sized (BODY
    with its length), /cut (announces BODY, sends 1 MiB, closes), /huge (announces 64 GiB),
    anything else 404. `hits` counts the requests per path."""

    def __init__(self):
        self.hits: dict[str, int] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"   # no length: the body ends when the server closes

            def log_message(self, *a):
                pass

            def do_GET(self):
                path = self.path.split("/")[1]
                outer.hits[path] = outer.hits.get(path, 0) + 1
                if path == "slow":   # a real archive, its second half after a pause
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(TGZ)))
                    self.end_headers()
                    self.wfile.write(TGZ[: len(TGZ) // 2])
                    self.wfile.flush()
                    time.sleep(1.0)
                    self.wfile.write(TGZ[len(TGZ) // 2:])
                    return
                if path not in ("endless", "body", "sized", "cut", "huge"):
                    self.send_error(404)
                    return
                self.send_response(200)
                if path in ("sized", "cut"):
                    self.send_header("Content-Length", str(len(BODY)))
                if path == "huge":
                    self.send_header("Content-Length", str(64 << 30))
                self.end_headers()
                try:
                    if path == "endless" or path == "huge":
                        while True:
                            self.wfile.write(b"\0" * (1 << 16))
                    self.wfile.write(BODY[: 1 << 20] if path == "cut" else BODY)
                except OSError:
                    pass   # the client stopped reading: that is the point

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def leftovers(folder):
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def timed_error(fn, match: str) -> tuple[str, float]:
    t = time.monotonic()
    with pytest.raises(ResnetteError, match=match) as e:
        fn()
    return str(e.value), time.monotonic() - t


def test_an_endless_stream_without_a_length_stops_at_the_cap(server, tmp_path, monkeypatch):
    server.hits.clear()
    monkeypatch.setenv("RESNETTE_MAX_DOWNLOAD", "2M")
    msg, took = timed_error(lambda: untar_data("mnist-tiny", tmp_path, url=server.url + "/endless/a.tgz",
                                               **FAST), r"sent more than 2.0 MiB \(2097152 bytes\)")
    assert "RESNETTE_MAX_DOWNLOAD=" in msg and "endless" in msg and took < 2   # not retried
    assert server.hits["endless"] == 1 and leftovers(tmp_path) == []


def test_a_named_archive_stops_at_its_recorded_size(server, tmp_path, monkeypatch):
    monkeypatch.setitem(DATASETS, "rec", Dataset(server.url + "/endless/rec.tgz", 3000, "0" * 32, "rec"))
    msg, took = timed_error(lambda: untar_data("rec", tmp_path, **FAST), "sent more than .*3000 bytes")
    assert "the size fastai records" in msg and took < 2 and leftovers(tmp_path) == []


def test_an_announced_length_over_the_cap_is_refused_before_reading(server, tmp_path):
    msg, took = timed_error(lambda: download(server.url + "/huge/h.tgz", tmp_path / "h.tgz",
                                             max_bytes="1G", **FAST), "is 64.00 GiB, over the 1.00 GiB cap")
    assert "RESNETTE_MAX_DOWNLOAD=64G" in msg and took < 2 and leftovers(tmp_path) == []
    # a body of 3 MiB passes a cap of 4 MiB with and without a length
    for route in ("body", "sized"):
        got = download(f"{server.url}/{route}/b.tgz", tmp_path / f"{route}.tgz", max_bytes="4M", **FAST)
        assert got.read_bytes() == BODY


def test_file_urls_to_devices_fifos_folders_and_missing_files_fail_at_once(tmp_path):
    fifo = tmp_path / "feed.tgz"
    os.mkfifo(fifo)
    fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)   # a writer that would feed it for ever
    stop = threading.Event()

    def feed():
        while not stop.is_set():
            try:
                os.write(fd, b"\0" * 4096)
            except BlockingIOError:
                time.sleep(0.001)
    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    home = tmp_path / "home"
    try:
        for target, why in (("/dev/zero", r"is not a regular file \(a device or socket\)"),
                            (str(fifo), r"is not a regular file \(a FIFO\)"),
                            (str(tmp_path / "gone.tgz"), r"cannot read .*gone.tgz \(No such file"),
                            (str(tmp_path), "is a folder, not an archive")):
            msg, took = timed_error(lambda: untar_data("mnist-tiny", home, url="file://" + target,
                                                       **FAST), why)
            assert took < 1.5 and "network" not in msg, msg
            assert leftovers(home) == []
    finally:
        stop.set()
        feeder.join(timeout=10)   # closed only once the writer stopped: never EBADF in it
        os.close(fd)


def test_http_404_and_an_unknown_host_are_not_retried_and_name_the_variable(server, tmp_path):
    server.hits.clear()
    msg, took = timed_error(lambda: untar_data("mnist-tiny", tmp_path, url=server.url + "/nope.tgz",
                                               **FAST), "HTTP 404")
    assert server.hits["nope.tgz"] == 1 and took < 1.5 and leftovers(tmp_path) == []
    msg, took = timed_error(lambda: untar_data("mnist-tiny", tmp_path, url="http://no-such-host.invalid/m.tgz",
                                               **FAST), "failed")
    assert "RESNETTE_URL_MNIST_TINY=" in msg and "--data <folder>" in msg and "url=" not in msg
    if "no host named no-such-host.invalid" in msg:   # EAI_NONAME; a DNS-less CI retries EAI_AGAIN
        assert took < 1.5


def test_offline_the_message_names_the_variable_and_a_local_folder(tmp_path):
    msg, _ = timed_error(lambda: untar_data("imagenette-160", tmp_path, url="http://127.0.0.1:9/i.tgz",
                                            retries=1, timeout=1, backoff=0.01), "failed after 2 tries")
    assert "RESNETTE_URL_IMAGENETTE_160=" in msg and "--data <folder>" in msg and "url=" not in msg


def test_a_cut_connection_keeps_the_partial_file_for_a_resume(server, tmp_path):
    timed_error(lambda: download(server.url + "/cut/c.tgz", tmp_path / "c.tgz",
                                 retries=1, timeout=2, backoff=0.01), "failed after 2 tries")
    assert (tmp_path / "c.tgz.part").stat().st_size == 1 << 20


@pytest.fixture
def tmpfs(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("mount is not permitted here")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=True)


def test_a_full_disk_is_said_as_such_once_and_frees_its_space(server, tmpfs):
    server.hits.clear()
    msg, took = timed_error(lambda: untar_data("mnist-tiny", tmpfs, url=server.url + "/body/m.tgz",
                                               **FAST), "disk full while downloading")
    assert "network" not in msg and took < 1.5 and server.hits["body"] == 1
    assert leftovers(tmpfs) == []          # the partial file was removed: the space is back
    msg, _ = timed_error(lambda: untar_data("mnist-tiny", tmpfs, url=server.url + "/sized/m.tgz",
                                            **FAST), r"needs 3.0 MiB at .* only 1.0 MiB is free")
    assert server.hits.get("sized", 0) <= 2 and leftovers(tmpfs) == []


def test_a_read_only_dataset_folder_is_one_line_before_any_request(server, tmpfs):
    (tmpfs / "downloads").mkdir()
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    before = dict(server.hits)
    timed_error(lambda: untar_data("mnist-tiny", tmpfs, url=server.url + "/body/m.tgz", **FAST),
                r"cannot keep datasets in .*: .* is not writable \(Read-only file system\); give "
                r"--data-dir \(data_dir=\) a writable folder")
    assert server.hits == before


@pytest.mark.parametrize("home, why", [
    ("file", "is a file, not a folder"),
    ("file/sub", "file is a file, not a folder"),
    ("missing/parent/home", "missing/parent does not exist"),
    (".", "downloads is a file, not a folder"),   # before: `(File exists)`
])
def test_an_unusable_resnette_home_is_one_line(tmp_path, monkeypatch, home, why):
    (tmp_path / "file").write_text("keep me")
    (tmp_path / "downloads").write_text("not a folder")
    monkeypatch.setenv("RESNETTE_HOME", str(tmp_path / home))
    with pytest.raises(ResnetteError, match=why + ".*; move it or set RESNETTE_HOME to a writable"
                       if "file" in why else why + "; create it, or set RESNETTE_HOME to"):
        untar_data("mnist-tiny", url="http://127.0.0.1:9/m.tgz", **FAST)
    assert (tmp_path / "file").read_text() == "keep me" and not (tmp_path / "missing").exists()


@pytest.mark.slow
def test_an_unusable_resnette_home_is_one_line_from_the_command_line(tmp_path):
    (tmp_path / "file").write_text("keep me")
    proc = run(["train", "--data", "mnist-tiny", "--quiet"], tmp_path, tmp_path / "file")
    assert proc.returncode == 2
    line = one_error_line(proc.stderr)
    assert "file is a file, not a folder; move it or set RESNETTE_HOME" in line, line
    assert (tmp_path / "file").read_text() == "keep me"


def test_two_processes_fetching_one_dataset_take_turns(server, tmp_path):
    """Before: both appended to the same .part file (a corrupt archive, or a hash failure)."""
    server.hits.clear()
    sha = hashlib.sha256(TGZ).hexdigest()
    got, errors = [], []

    def fetch():
        try:
            got.append(untar_data("mnist-tiny", tmp_path, url=f"{server.url}/slow/m.tgz#sha256={sha}",
                                  **FAST))
        except Exception as e:   # noqa: BLE001 - reported below
            errors.append(e)
    threads = [threading.Thread(target=fetch) for _ in range(2)]
    for t in threads:
        t.start()
        time.sleep(0.3)   # the first is mid-file when the second starts
    for t in threads:
        t.join(30)
    assert errors == [] and len(got) == 2 and server.hits["slow"] == 1
    assert (got[0] / "train" / "3" / "a.txt").read_bytes() == b"ok"


def test_a_users_own_folder_where_the_dataset_goes_is_never_replaced(tmp_path):
    """Before: `home/mnist_tiny` without resnette's mark was taken for an interrupted
    extraction and deleted (shutil.rmtree) to make room for the download's."""
    mine = tmp_path / "home" / "mnist_tiny"
    mine.mkdir(parents=True)
    (mine / "my-notes.txt").write_text("years of work")
    (tmp_path / "m.tgz").write_bytes(TGZ)
    with pytest.raises(ResnetteError, match="exists but is not a dataset resnette extracted"):
        untar_data("mnist-tiny", tmp_path / "home", url=(tmp_path / "m.tgz").as_uri(), **FAST)
    assert (mine / "my-notes.txt").read_text() == "years of work"
    folder = untar_data("mnist-tiny", tmp_path / "other", url=(tmp_path / "m.tgz").as_uri(), **FAST)
    assert (folder / ".resnette-complete").exists() and (folder / "train" / "3" / "a.txt").exists()
