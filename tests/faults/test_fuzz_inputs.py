"""Property-based tests (Hypothesis) of what comes from outside: hostile archives and
addresses, through the public `untar_data` (download + extraction) and in a real process.

Invariants: the dataset is extracted inside RESNETTE_HOME with nothing pointing out of it,
or one `ResnetteError` line (`error:` and exit 2 in a process); nothing is written outside
RESNETTE_HOME; no hang (an alarm in-process, a timeout for the process). Profiles: see
test_fuzz.py.
"""
from __future__ import annotations

import io
import os
import signal
import tarfile
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

import test_fuzz  # noqa: F401  (registers and loads the Hypothesis profiles)
from resnette.data.sources import untar_data
from resnette.utils import ResnetteError
from test_fuzz_runs import FEW, Sandbox, check_exit, files, tiny  # noqa: F401 (fixture)

NAMES = st.one_of(
    st.sampled_from(["mnist_tiny/train/3/a.png", "mnist_tiny/labels.csv", "mnist_tiny",
                     "../escape", "/abs/file", "mnist_tiny/../../up", "./mnist_tiny/x",
                     "mnist_tiny/" + "n" * 300, "mnist_tiny/sub/", "", ".", "mnist_tiny/\u00e9"]),
    st.text(st.characters(blacklist_characters="\0", blacklist_categories=["Cs"]), max_size=20))
KINDS = st.sampled_from([tarfile.REGTYPE, tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE,
                         tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.FIFOTYPE])
LINKS = st.sampled_from(["../../etc", "/etc/passwd", "a.png", "mnist_tiny/labels.csv", "..", ""])
MEMBERS = st.lists(st.tuples(NAMES, KINDS, LINKS, st.binary(max_size=200)), max_size=5)


def hostile_tar(members, mode: str, cut: float) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode, format=tarfile.GNU_FORMAT) as tar:
        for name, kind, link, data in members:
            info = tarfile.TarInfo(name)
            info.type, info.mode = kind, 0o644
            if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                info.linkname = link
            if kind == tarfile.REGTYPE:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    raw = buf.getvalue()
    return raw[:max(1, int(len(raw) * cut))] if cut < 1 else raw


def inside(home: Path) -> None:
    """Everything under `home` stays under it: no link resolves outside."""
    top = home.resolve()
    for p in home.rglob("*"):
        if p.is_symlink():
            assert top in p.resolve().parents or p.resolve() == top, f"{p} -> {os.readlink(p)}"


class Alarm:
    """No hang: SIGALRM after `seconds` turns into a test failure."""

    def __init__(self, seconds: int) -> None:
        self.seconds = seconds

    def __enter__(self):
        def ring(*_):
            raise TimeoutError(f"no answer in {self.seconds} s")
        self.old = signal.signal(signal.SIGALRM, ring)
        signal.alarm(self.seconds)

    def __exit__(self, *exc) -> None:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, self.old)


def fetch(url: str, home: Path) -> None:
    with Alarm(30):
        try:
            got = untar_data("mnist-tiny", data_dir=home, url=url, retries=1, timeout=1.0,
                             backoff=0.0, max_bytes=2**20)
        except ResnetteError as e:
            assert str(e) and "\n" not in str(e), str(e)
            return
    assert home.resolve() in got.resolve().parents


@settings(max_examples=settings.default.max_examples * 5)
@given(members=MEMBERS, mode=st.sampled_from(["w", "w:gz"]), cut=st.sampled_from([1, 1, 0.5, 0.1]))
def test_any_archive_extracts_inside_home_or_is_one_line(tmp_path_factory, members, mode, cut):
    top = tmp_path_factory.mktemp("arch")
    home, archive = top / "home", top / "given.tgz"
    archive.write_bytes(hostile_tar(members, mode, cut))
    before = files(top, (home,))
    fetch(archive.as_uri(), home)
    assert files(top, (home,)) == before, "written outside RESNETTE_HOME"
    inside(home)


PARTS = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12)
URLS = st.one_of(
    st.builds(lambda a, b: f"file:///{a}/{b}", PARTS, PARTS),
    st.sampled_from(["file:///dev/zero", "file:///dev/null", "file:///", "file:///etc",
                     "http://127.0.0.1:9/x.tgz", "https://127.0.0.1:9/x.tgz", "ftp://127.0.0.1:9/x",
                     "http://[::1/x", "http://:80/", "javascript:alert(1)", "", " ", "x.tgz",
                     "file:///dev/zero#sha256=" + "0" * 64, "file:///etc/passwd#sha256=zz",
                     "http://127.0.0.1:9/" + "a" * 5000, "data:,hello", "file://host/etc/x"]),
    st.builds(lambda s, a: f"{s}{a}", st.sampled_from(["http://127.0.0.1:9/", "file:///tmp/",
                                                       "unix:", "HTTP://127.0.0.1:9/"]), PARTS))


@settings(max_examples=settings.default.max_examples * 3)
@given(url=URLS)
def test_any_address_is_a_dataset_or_one_line_and_writes_only_home(tmp_path_factory, url):
    top = tmp_path_factory.mktemp("url")
    home = top / "home"
    before = files(top, (home,))
    fetch(url, home)
    assert files(top, (home,)) == before


@pytest.mark.slow
@settings(max_examples=FEW)
@given(members=MEMBERS, mode=st.sampled_from(["w", "w:gz"]))
def test_a_hostile_archive_through_train_in_a_process(tiny, members, mode):  # noqa: F811
    box = Sandbox(tiny)
    try:
        archive = box.top / "given.tgz"
        archive.write_bytes(hostile_tar(members, mode, 1))
        home = box.top / "rhome"
        before = box.outside(home, box.top / "runs")
        proc = box(["train", "--data", "mnist-tiny", "--arch", "simple_cnn", "--size", "32",
                    "--presize", "32", "--epochs", "1", "--bs", "4", "--quiet", "--device", "cpu"],
                   RESNETTE_HOME=str(home), RESNETTE_URL_MNIST_TINY=archive.as_uri())
        check_exit(proc)
        assert box.outside(home, box.top / "runs") == before
        inside(home)
    finally:
        box.close()
