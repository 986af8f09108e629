"""Small helpers shared by every layer: the user-facing error, atomic writes, seeding.

Imports no torch and no NumPy at import time: the command line reads this module for every
command, and `resnette --version` or `recipes` must not pay ~2 s for torch on a small CPU."""
from __future__ import annotations

import errno
import os
import random
import stat
import tempfile
from pathlib import Path
from typing import Callable


class ResnetteError(Exception):
    """A problem the user can fix. The message is one line: what went wrong, what to do.

    The command line prints it as `error: <message>` and exits with code 2, so nothing the
    user did wrong ever ends in a traceback from deep inside PyTorch or Pillow.
    """


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Write a file so that readers see either the old file or the whole new one, never half.

    `write(tmp_path)` writes the content to a temporary file in the same folder; we flush it
    to disk and rename it over `path` (a rename within one file system is atomic). A full
    disk or a kill mid-write leaves the previous file untouched and no stray temporary.
    """
    path = Path(path)
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
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
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


NAME_MAX = 255   # bytes in one file or folder name on Linux, macOS and Windows file systems


def long_name(path: str | os.PathLike, limit: int = NAME_MAX) -> str | None:
    """The first component of `path` longer than `limit` bytes, or None."""
    return next((part for part in Path(path).parts if len(os.fsencode(part)) > limit), None)


def os_error_line(e: OSError) -> str:
    """One line for an OSError no layer below expected: what, where; for a name too long,
    which name and by how much (ENAMETOOLONG's own text does not say)."""
    where = e.filename if e.filename is not None else ""
    if e.errno == errno.ENAMETOOLONG and where:
        part = long_name(os.fsdecode(where))
        if part is not None:
            n = len(os.fsencode(part))
            return (f"the name {part[:40]!r}... is {n} bytes, over the {NAME_MAX} bytes a file "
                    f"or folder name may have (in {os.fsdecode(where)[:80]!r}...); shorten it")
        return (f"the path {os.fsdecode(where)[:60]!r}... is {len(os.fsencode(where))} bytes, "
                "too long for this system; use a shorter one")
    shown = os.fsdecode(where) if where else ""
    return f"{e.strerror or e}" + (f": {shown}" if shown else "")


_OOM_ADVICE = {   # what to make smaller, per command, when memory runs out outside a train step
    "train": "use a smaller --bs, --size/--presize (and --progressive sizes) or --test-size",
    "lr-find": "use a smaller --bs or --size/--presize",
    "evaluate": "use a smaller --bs or --test-size", "predict": "give fewer images at once",
    "summary": "use a smaller --size or --classes",
}


def out_of_memory_line(command: str, e: BaseException) -> str | None:
    """One line for running out of memory (torch's OutOfMemoryError, the CPU allocator's
    RuntimeError, NumPy's or Python's MemoryError) anywhere outside the guarded training
    step: resizing or augmenting a batch, evaluating at a large size, predicting. None for
    an error that is not about memory."""
    text = str(e)
    if not (isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError"
            or "out of memory" in text or "can't allocate memory" in text):
        return None
    first = text.strip().splitlines()[0][:160] if text.strip() else type(e).__name__
    return (f"out of memory in `resnette {command}` ({first}); "
            f"{_OOM_ADVICE.get(command, 'free some memory (other programs), then run again')}")


def check_regular_file(path: str | os.PathLike, what: str) -> None:
    """Refuse a FIFO, device or socket given as a file to read (a FIFO would block the open
    for ever, /dev/zero never end), checked by an open that cannot block."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
    finally:
        os.close(fd)
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise ResnetteError(f"{what} {os.fsdecode(path)} is not a regular file (a FIFO, device or "
                            "socket); give a file")


def read_small_file(path: str | os.PathLike, limit: int, what: str) -> bytes:
    """The bytes of a file that should be small (a config, a JSON record), at most `limit`.

    Opened without blocking and checked before reading: a FIFO (which would wait for a
    writer for ever), a device such as /dev/zero (endless) or a huge file given by mistake
    is refused in one line. Missing files and folders raise the usual OSError for the caller.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), os.fspath(path))
        if not stat.S_ISREG(st.st_mode):
            raise ResnetteError(f"{what} {os.fsdecode(path)} is not a regular file (a FIFO, device "
                                "or socket); give a file")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ResnetteError(f"{what} {os.fsdecode(path)} is over {limit // 1024} KiB, more than "
                            f"any {what} needs; is it the right file?")
    return data


def umask_mode(mode: int) -> int:
    """`mode` less this process's umask: what open() (0o666) or mkdir() (0o777) would give.

    Temporary files and folders (mkstemp, mkdtemp) are private (0600/0700) while being
    written; a file renamed into place then gets this mode, so runs, exports and datasets can
    be shared or served exactly as files written with open() can. Linux shows the umask in
    /proc without changing it; elsewhere it is set and restored (os.umask has no getter).
    """
    try:
        with open("/proc/self/status") as f:
            mask = next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
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


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch so the same seed on the same machine repeats a run.

    NumPy and torch are imported here, not above: every caller trains, so has them loaded."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
