"""Writing through the gate: locks never through a link, files replaced atomically (readers
see the old file or the whole new one), made with the mode open() would give."""
from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import IO, Callable

from resnette.files.owned import check_inside_run
from resnette.files.reading import _CLOEXEC, _NOFOLLOW, PathLike, open_fd, read_small
from resnette.utils import ResnetteError


def open_lock(path: PathLike, what: str, *, create: bool = True) -> int:
    """A read-write descriptor on a lock file, created if missing (`create`). Never through a
    link (O_NOFOLLOW: a `.lock` link to ~/.bashrc is refused, not truncated), never a FIFO."""
    flags = os.O_RDWR | (os.O_CREAT if create else 0)
    return open_fd(path, what, follow=False, flags=flags)


def open_write(path: PathLike, what: str, *, append: bool = False, create: bool = True) -> IO[bytes]:
    """A binary file object to write `path` in place (a download's partial file, a cache's
    store being built): a regular file only, never through a link."""
    flags = os.O_WRONLY | (os.O_CREAT if create else 0) | (os.O_APPEND if append else 0)
    fd = open_fd(path, what, follow=False, flags=flags)
    if not append:
        os.ftruncate(fd, 0)
    return os.fdopen(fd, "ab" if append else "wb")


def open_dir(path: PathLike) -> int:
    """A descriptor on a folder (to flock it or fsync it); never a link."""
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC | _NOFOLLOW)


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Write a file so that readers see either the old file or the whole new one, never half.

    `write(tmp_path)` writes the content to a temporary file in the same folder; we flush it
    to disk and rename it over `path` (a rename within one file system is atomic). A full
    disk or a kill mid-write leaves the previous file untouched and no stray temporary.
    """
    path = Path(path)
    check_inside_run(path)
    if path.is_dir():
        raise ResnetteError(f"{path} is a folder; give the name of a file to write")
    if path.exists() and not path.is_file():   # the rename would replace the node itself
        raise ResnetteError(f"{path} is not a regular file (a device, FIFO or socket); give the "
                            "name of a file to write")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:   # a read-only place, a file where a folder should be, no permission
        raise ResnetteError(f"cannot write {path} ({e.strerror}); choose a writable place") from None
    try:   # mkstemp makes 0600; the file gets the mode open() would give it (0666 & ~umask)
        os.fchmod(fd, umask_mode(0o666))
    finally:
        os.close(fd)
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY | _CLOEXEC | _NOFOLLOW)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as e:
        written = os.path.getsize(tmp) if os.path.exists(tmp) else 0
        _remove_quietly(tmp)
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            free = _free_bytes(path.parent)
            raise ResnetteError(
                f"disk full while writing {path} (stopped after {written / 2**20:.1f} MiB; "
                f"{free / 2**20:.1f} MiB free there once the partial file was removed); "
                "free some space or choose another --run-dir; the previous file is intact"
            ) from None
        if e.errno == errno.EFBIG:  # the process's file size limit (ulimit -f), not the disk
            import resource  # Unix only, like the limit itself

            limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
            raise ResnetteError(
                f"file size limit reached while writing {path} (ulimit -f allows "
                f"{limit / 2**20:.1f} MiB per file); raise the limit; the previous file is intact"
            ) from None
        raise
    except BaseException:
        _remove_quietly(tmp)
        raise
    return path


def write_text(path: PathLike, text: str) -> Path:
    """`text` as UTF-8 at `path`, atomically (see atomic_write)."""
    return atomic_write(path, lambda tmp: _put(tmp, text.encode("utf-8")))


def write_bytes(path: PathLike, data: bytes) -> Path:
    """`data` at `path`, atomically (see atomic_write)."""
    return atomic_write(path, lambda tmp: _put(tmp, data))


def _put(tmp: str, data: bytes) -> None:
    with open_write(tmp, "temporary file") as f:
        f.write(data)


def open_temporary(tmp: str) -> IO[bytes]:
    """The temporary file atomic_write hands its `write` callback, opened to write (streams)."""
    return open_write(tmp, "temporary file")


def null_stream() -> IO[str]:
    """A text stream to nowhere (stdout once its reader has gone: `resnette runs | head`)."""
    return os.fdopen(os.open(os.devnull, os.O_WRONLY | _CLOEXEC), "w")


def umask_mode(mode: int) -> int:
    """`mode` less this process's umask: what open() (0o666) or mkdir() (0o777) would give.

    Temporary files and folders (mkstemp, mkdtemp) are private (0600/0700) while being
    written; a file renamed into place then gets this mode, so runs, exports and datasets can
    be shared or served exactly as files written with open() can. Linux shows the umask in
    /proc without changing it; elsewhere it is set and restored (os.umask has no getter).
    """
    try:
        text = read_small("/proc/self/status", "status").decode("ascii", "replace")
        mask = next(int(line.split()[1], 8) for line in text.splitlines()
                    if line.startswith("Umask:"))
    except (OSError, ResnetteError, StopIteration, ValueError, IndexError):
        mask = os.umask(0o022)
        os.umask(mask)
    return mode & ~mask


def _remove_quietly(p: str) -> None:
    try:
        os.remove(p)
    except OSError:
        pass


def _free_bytes(folder: Path) -> int:
    try:
        st = os.statvfs(folder)
        return st.f_bavail * st.f_frsize
    except OSError:
        return 0
