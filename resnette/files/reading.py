"""Reading through the gate: regular files only, opened without blocking, small ones capped,
and weights of any bytes read in one line (resnette/files/__init__.py tells the rules)."""
from __future__ import annotations

import errno
import json
import os
import stat
from typing import IO, Any

from resnette.utils import ResnetteError

SMALL = 16 * 2**20        # the cap for a config, a JSON record, a CSV of metrics
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
PathLike = str | os.PathLike


def _show(path: PathLike) -> str:
    return os.fsdecode(path)


def _not_regular(path: PathLike, what: str, mode: int) -> ResnetteError:
    kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or
            stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else "a symbolic link"
            if stat.S_ISLNK(mode) else "a special file")
    return ResnetteError(f"{what} {_show(path)} is not a regular file ({kind}); give a file")


def open_fd(path: PathLike, what: str, *, follow: bool = True, flags: int = os.O_RDONLY,
            mode: int = 0o644) -> int:
    """A descriptor on the regular file `path`, opened without blocking (a FIFO never waits
    for a writer) and checked with fstat. A folder raises IsADirectoryError and a missing file
    FileNotFoundError, as open() does, for callers that treat them apart; anything else that
    is not a regular file (FIFO, device, socket, a link where `follow` is False) is one line."""
    try:
        fd = os.open(path, flags | _NONBLOCK | _CLOEXEC | (0 if follow else _NOFOLLOW), mode)
    except OSError as e:
        if e.errno == errno.ELOOP and not follow:
            raise ResnetteError(f"{what} {_show(path)} is a symbolic link; resnette does not "
                                "follow links there: remove it") from None
        if e.errno == errno.ENXIO:   # a FIFO opened for writing with no reader, a socket
            raise _not_regular(path, what, os.stat(path).st_mode) from None
        raise
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), os.fspath(path))
        if not stat.S_ISREG(st.st_mode):
            raise _not_regular(path, what, st.st_mode)
        os.set_blocking(fd, True)   # a regular file: ordinary I/O from here
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_read(path: PathLike, what: str, *, follow: bool = True) -> IO[bytes]:
    """A binary file object on the regular file `path` (see open_fd), for a reader that streams:
    an image, an archive, a CSV, weights."""
    return os.fdopen(open_fd(path, what, follow=follow), "rb")


def check_regular_file(path: PathLike, what: str) -> None:
    """Refuse a FIFO, device or socket given as a file to read; a folder passes (the caller
    reads it as a folder)."""
    try:
        os.close(open_fd(path, what))
    except IsADirectoryError:
        pass


def read_small(path: PathLike, what: str, limit: int = SMALL, *, follow: bool = True) -> bytes:
    """The bytes of a file that should be small (a config, a JSON record, a lock), at most
    `limit`: a huge file given by mistake (or /dev/zero behind a link) is one line."""
    with open_read(path, what, follow=follow) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ResnetteError(f"{what} {_show(path)} is over {max(1, limit // 1024)} KiB, more than "
                            f"any {what} needs; is it the right file?")
    return data


def read_bytes(path: PathLike, what: str) -> bytes:
    """The whole of a regular file (weights, an image to embed): no size cap, no FIFO."""
    with open_read(path, what) as f:
        return f.read()


def read_text(path: PathLike, what: str, limit: int = SMALL, *, follow: bool = True) -> str:
    """A small UTF-8 text file (a byte-order mark is dropped); bad UTF-8 raises
    UnicodeDecodeError, a ValueError, for the caller to say in its words."""
    return read_small(path, what, limit, follow=follow).removeprefix(b"\xef\xbb\xbf").decode("utf-8")


def read_json(path: PathLike, what: str, limit: int = SMALL) -> Any:
    """A small JSON file; invalid JSON raises ValueError (json.JSONDecodeError) for the caller."""
    return json.loads(read_text(path, what, limit))


def peek(path: PathLike, limit: int = 200) -> tuple[bytes, os.stat_result] | None:
    """The first bytes and the stat of a lock or marker file that may be held or hostile; None
    when it is missing or not a regular file (a FIFO, a link): callers treat it as absent."""
    try:
        fd = open_fd(path, "file", follow=False)
    except (OSError, ResnetteError):
        return None
    try:
        return os.pread(fd, limit, 0), os.fstat(fd)
    finally:
        os.close(fd)


def load_torch(path: PathLike, what: str) -> Any:
    """torch.load(weights_only=True) of `path`, whose bytes may be anything: every failure of
    the loader is one line naming the file (a random, truncated or mutated zip raises
    KeyError, RuntimeError, EOFError, ValueError, UnpicklingError, struct.error, ... depending
    on where it breaks: tests/test_files_gate.py feeds it thousands). A recorded CRC-32 that
    does not match (torch.load does not check them) is refused too."""
    import pickle
    import warnings
    import zipfile

    import torch

    with open_read(path, what) as f:
        if zipfile.is_zipfile(f):
            try:
                f.seek(0)
                with zipfile.ZipFile(f) as z:
                    bad = z.testzip()
            except Exception as e:   # BadZipFile, EOFError, ValueError, NotImplementedError, ...
                raise ResnetteError(f"cannot read {what} {_show(path)} ({type(e).__name__}); "
                                    "it is truncated or damaged") from None
            if bad is not None:
                raise ResnetteError(f"{what} {_show(path)} is corrupted ({bad[:60]!r} fails its "
                                    "CRC check); restore it from a backup")
        f.seek(0)
        try:
            with warnings.catch_warnings():   # torch warns about pickle protocols first
                warnings.simplefilter("ignore")
                return torch.load(f, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            code = next((ln.strip() for ln in str(e).splitlines() if "GLOBAL" in ln), "")
            if code:   # the weights-only unpickler met a reference to code
                raise ResnetteError(f"refusing to load {_show(path)}: it holds Python objects "
                                    f"that could run code ({code[:100]}); load only files "
                                    "you trust to hold weights") from None
            raise ResnetteError(f"refusing to load {_show(path)}: it is damaged or not a "
                                f"{what} (weights-only loading failed)") from None
        except Exception as e:   # any class the loader raises on bytes it does not expect
            raise ResnetteError(f"cannot read {what} {_show(path)} ({type(e).__name__}); it is "
                                f"damaged or not a {what}") from None


def disk_bytes(folder: str | os.PathLike) -> int:
    """Bytes its regular files take on disk (allocated blocks, as `du`; links not followed)."""
    total = 0
    for root, _, files in os.walk(folder):
        for f in files:
            try:
                st = os.lstat(os.path.join(root, f))
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                total += getattr(st, "st_blocks", 0) * 512 or st.st_size
    return total
