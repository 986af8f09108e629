"""One writer per run folder: an advisory lock on `<run>/.lock` (fcntl.flock).

`train` and `lr-find` hold it exclusively while they write a run folder, so two processes can
never both "succeed" and leave a config from one and weights from the other: a second one is
refused at once with the holder's pid (a training run can take hours; nobody waits for it).
`evaluate`, `export` and `report` write a few files atomically and take it shared: they run
beside each other, are refused while a training holds it, and a training started during one
of them (e.g. the report that `train` starts in the background) waits for them a little.
The kernel drops a flock when its holder dies, so a `kill -9` never leaves a run locked; an
exclusive holder removes the lock file when done, so a run folder that a refused command
touched stays byte-identical.
"""
from __future__ import annotations

import errno
import fcntl
import os
import time
from pathlib import Path

from resnette.files import RUN_MARKER, is_run_folder, open_lock, write_marker
from resnette.utils import ResnetteError

LOCK_NAME = ".lock"
_READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)
SHARED_WAIT = 60.0   # seconds an exclusive taker waits for shared holders (short commands)


class RunLock:
    """A held lock; `release()` (or leaving a `with` block) gives it back. Pickled (to other
    torchrun ranks) it arrives not held: the lock belongs to the process that took it."""

    def __init__(self, path: Path, fd: int | None, shared: bool = False) -> None:
        self.path, self.fd, self.shared = path, fd, shared

    def __reduce__(self):
        return (RunLock, (self.path, None, self.shared))

    def moved(self, path: Path) -> None:
        """The folder holding the lock file was renamed (--overwrite's move aside)."""
        self.path = path / LOCK_NAME

    def release(self) -> None:
        if self.fd is None:
            return
        try:   # remove the file if we are its last holder and it is still ours
            if self.shared:   # alone? then the shared lock becomes exclusive at once
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.stat(self.path).st_ino == os.fstat(self.fd).st_ino:
                os.unlink(self.path)
        except OSError:   # BlockingIOError: other holders; they remove it
            pass
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def lock_run(folder: str | Path, verb: str, read_only_advice: str = "", shared: bool = False
             ) -> RunLock:
    """Take `folder`'s lock for `verb` (e.g. "resnette train"), or raise one line naming the
    process that holds it. The folder must exist."""
    folder = Path(folder)
    path = folder / LOCK_NAME
    while True:
        try:
            fd = open_lock(path, "run lock")   # never a link, FIFO or device (issue 23)
        except FileNotFoundError:
            raise ResnetteError(f"run folder {folder} does not exist") from None
        except NotADirectoryError:
            raise ResnetteError(f"{folder} is a file, not a run folder") from None
        except OSError as e:
            if e.errno in _READ_ONLY:
                raise ResnetteError(f"cannot write to run folder {folder} ({e.strerror})"
                                    + (f"; {read_only_advice}" if read_only_advice else "")) from None
            raise ResnetteError(f"cannot lock run folder {folder} ({e.strerror})") from None
        holder = _take(fd, shared)
        if holder:
            os.close(fd)
            raise ResnetteError(f"run folder {folder} is in use by process {holder}; wait for it "
                                "to finish, or choose another --name/--run-dir")
        try:   # the last holder may have removed the file between our open and our flock
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    if not shared:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} ({verb})\n".encode())
        migrate(folder)
    return RunLock(path, fd, shared)


def migrate(folder: Path) -> None:
    """A run made before run markers existed (files/owned.py's rule) gets its marker the first
    time a command locks it to write (train, lr-find); a place where it cannot be written (read-only) stays as it is."""
    try:
        if is_run_folder(folder):
            write_marker(folder, RUN_MARKER)
    except (OSError, ResnetteError):
        pass


def _take(fd: int, shared: bool) -> str:
    """Lock `fd`; "" when taken, else who holds it. An exclusive holder writes `pid (verb)`
    into the file just after locking; shared holders write nothing, so an empty file that stays
    locked is held by short commands: an exclusive taker waits for them up to SHARED_WAIT."""
    deadline = time.monotonic() + SHARED_WAIT
    while True:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
            return ""
        except BlockingIOError:
            pass
        text = os.pread(fd, 200, 0).decode(errors="replace").strip()
        if text:
            return text
        if shared and time.monotonic() > deadline - SHARED_WAIT + 1:   # an exclusive holder
            return "(pid not yet written)"                          # that never wrote: odd
        if time.monotonic() > deadline:
            return "(resnette evaluate, export or report)"
        time.sleep(0.05)
