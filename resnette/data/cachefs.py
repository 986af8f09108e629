"""The decode cache's file-system side: one writer per entry, space reserved, failures in words.

- One writer per cache entry: `entry_lock` takes an advisory lock (`fcntl.flock`) on
  `<cache>/<key>.lock` before building. A second process that wants the same entry WAITS
  (after one line naming the holder's pid) and then reuses the finished entry instead of
  decoding the same images again; waiting is safe because the kernel drops a flock when its
  holder dies, however it dies, so there is no stale lock to wait on forever. A finished
  entry is read without any lock (it is renamed into place complete and never changed), so a
  read-only cache folder still serves the entries it holds.
- Space is reserved up front (`reserve`: posix_fallocate, else zeros written), so a full
  disk is one clear error before any decoding, never a SIGBUS in the middle of it.
- A builder's temporary folder is `.<key>.<random>.tmp`; any such folder whose key's lock
  can be taken belongs to a dead builder and is removed (`remove_stale`).
- `cache_error` turns each OSError (ENOSPC, EACCES, EROFS, a file where the folder should
  be, ...) into one line that says where and what to do.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shutil
import warnings
from pathlib import Path
from typing import Iterator

from resnette.display import size as _size
from resnette.files import open_lock, remove_temporary
from resnette.utils import ResnetteError

_TMP = re.compile(r"^\.([0-9a-f]{20})\..+\.tmp$")
_FIX = "set RESNETTE_HOME (or cache_dir=) to a writable folder on a disk with room"


@contextlib.contextmanager
def entry_lock(lock_path: Path, entry: Path) -> Iterator[None]:
    """Hold `lock_path` exclusively; wait (saying for whom) while another process holds it."""
    fd = open_lock(lock_path, "decode cache lock")   # never through a link (issue 23)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            warnings.warn(f"waiting for process {_holder(fd)}, which is decoding the same images "
                          f"into {entry}; this run will reuse them", stacklevel=4)
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as e:
            if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                raise   # a file system without locks: the atomic rename still keeps entries whole
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _holder(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
    except OSError:
        return "?"


def remove_stale(base: Path) -> None:
    """Delete the temporary folders of builders that died (killed, out of memory, power cut)."""
    try:
        names = os.listdir(base)
    except OSError:
        return
    for name in names:
        m = _TMP.match(name)
        if m is None or not (base / name).is_dir():
            continue
        try:
            fd = open_lock(base / f"{m.group(1)}.lock", "decode cache lock")
        except (OSError, ResnetteError):
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)   # taken: nobody is building that key
            remove_temporary(base / name)
        except OSError:
            pass   # a live builder holds it: its folder is in use
        finally:
            os.close(fd)


def reserve(fd: int, size: int) -> None:
    """Claim `size` bytes of disk for the open file now, so writing them later cannot fail
    for space (and a memory map of the file can never SIGBUS for it)."""
    try:
        os.posix_fallocate(fd, 0, size)
        return
    except OSError as e:
        if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise
    except AttributeError:  # no posix_fallocate on this platform
        pass
    block = bytes(16 * 2**20)   # a file system without fallocate: write the zeros ourselves
    pos = os.fstat(fd).st_size
    while pos < size:
        pos += os.pwrite(fd, block[: min(len(block), size - pos)], pos)


def check_room(base: Path, need: int) -> None:
    """Fail before any work when the cache folder's disk cannot hold `need` more bytes."""
    free = shutil.disk_usage(base).free
    if need > free:
        raise ResnetteError(f"the decoded-image cache needs {_size(need)} at {base} but only "
                            f"{_size(free)} is free there; free some space or {_FIX}")


def cache_error(e: OSError, base: Path, need: int) -> ResnetteError:
    """One line for an OSError met while creating or writing a cache entry under `base`."""
    why = e.strerror or str(e)
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        try:
            free = f"{_size(shutil.disk_usage(base).free)} free"
        except OSError:
            free = "free space unknown"
        return ResnetteError(f"disk full while writing the decoded-image cache at {base} (it needs "
                             f"{_size(need)}, {free}); nothing was kept; free some space or {_FIX}")
    if e.errno in (errno.ENOTDIR, errno.EEXIST):
        blocker = next((p for p in (base, *base.parents) if p.exists() and not p.is_dir()), base)
        return ResnetteError(f"cannot create the decoded-image cache folder {base}: {blocker} is a "
                             f"file, not a folder; move it or {_FIX}")
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return ResnetteError(f"cannot write the decoded-image cache at {base} ({why}); make it "
                             f"writable or {_FIX}")
    return ResnetteError(f"cannot write the decoded-image cache at {base} ({why}); nothing was "
                         f"kept; check that disk or {_FIX}")
