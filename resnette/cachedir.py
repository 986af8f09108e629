"""The decoded-image cache as a folder of entries: what is there, what is in use, what goes.

data/cache.py builds one entry per (image files, presize, method, channels) under
`$RESNETTE_HOME/decoded/<key>/` (images.npy, meta.json). This module, a leaf (the standard
library only, so `resnette cache` answers without torch or NumPy), adds:

- **in use**: a process using an entry holds a shared flock on `<key>.use` for as long as its
  images are mapped (`hold`, released when the memory map is garbage-collected); a builder
  holds `<key>.lock` (cachefs.entry_lock). An entry is removed only by a process that takes
  both exclusively, so an entry being read or built is never removed, whoever asks.
- **last used**: `hold` touches `<key>.use`, so its modification time is the entry's last use
  (file access times are unreliable: most disks are mounted noatime or relatime).
- **a size limit**: `RESNETTE_CACHE_LIMIT` (default 20 GB; `500MB`, `1.5GiB`, `none`; `0` keeps
  only what is in use). Before a new entry is built, the least recently used entries not in
  use are removed until the new one fits (`make_room`), with a one-line notice on stderr.

The `<key>.lock` files stay (a few bytes each): a builder may be waiting on one, and removing
it under it would let a second builder start on a new file.
"""
from __future__ import annotations

import errno
import fcntl
import math
import os
import re
import sys
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from resnette.display import term
from resnette.files import disk_bytes, is_entry, open_lock, read_json, remove_temporary
from resnette.utils import ResnetteError

LIMIT_ENV = "RESNETTE_CACHE_LIMIT"
DEFAULT_LIMIT = 20 * 10**9            # 20 GB: ~20 datasets the size of Imagenette at 160 px
_KEY = re.compile(r"^[0-9a-f]{20}$")
_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
          "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


def default_dir() -> Path:
    """`$RESNETTE_HOME/decoded` (default `~/.cache/resnette/decoded`), as data/sources.py's
    resnette_home() places it (a test checks that the two agree)."""
    env = os.environ.get("RESNETTE_HOME")
    return (Path(env).expanduser() if env else Path.home() / ".cache" / "resnette") / "decoded"


def cache_limit() -> int | None:
    """The size limit in bytes from RESNETTE_CACHE_LIMIT, or None for no limit. 0 is a limit:
    the cache keeps nothing but the entries in use (each build evicts every other entry)."""
    text = os.environ.get(LIMIT_ENV, "").strip()
    if not text:
        return DEFAULT_LIMIT
    if text.lower() in ("none", "off", "unlimited"):
        return None
    m = re.fullmatch(r"(\d+(?:\.\d*)?)\s*([kmgt]i?)?b?", text.lower())
    if m is None:
        raise ResnetteError(f"{LIMIT_ENV}={text!r} is not a size: use e.g. 20GB, 500MB, 1.5GiB, "
                            "or none for no limit")
    size = float(m.group(1)) * _UNITS[m.group(2) or ""]
    if not math.isfinite(size) or size > 2**62:
        raise ResnetteError(f"{LIMIT_ENV}={text[:40]!r}... is larger than any disk: use e.g. 20GB, "
                            "or none for no limit")
    return int(size)


def size_text(n: float) -> str:
    """Bytes as people read them, in decimal units as disks are sold (20 GB = 20e9 bytes)."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


@dataclass
class Entry:
    """One decoded store. `source` is the image folder it was decoded from ("" if unknown)."""
    key: str
    path: Path
    source: str
    presize: int | None
    images: int | None
    bytes: int
    last_used: float
    source_exists: bool
    in_use: bool
    damaged: bool = False   # meta.json unreadable: rebuilt by the next run that needs it


def entries(base: str | os.PathLike | None = None) -> list[Entry]:
    """The cache's entries, least recently used first. Reads only (creates nothing)."""
    base = Path(base) if base is not None else default_dir()
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return []
    out = []
    for name in names:
        path = base / name
        # only what a build made: a folder that merely has a key's name is never listed or removed
        if _KEY.match(name) and not path.is_symlink() and path.is_dir() and is_entry(path):
            out.append(_entry(base, name, path))
    return sorted(out, key=lambda e: e.last_used)


def _entry(base: Path, key: str, path: Path) -> Entry:
    meta: dict[str, Any] = {}
    try:
        meta = read_json(path / "meta.json", "cache metadata", 2**20)
        damaged = not isinstance(meta, dict)
    except (OSError, ValueError, ResnetteError):   # also a FIFO or a link to /dev/zero
        damaged = True
    meta = meta if isinstance(meta, dict) else {}
    source = str(meta.get("root") or "")
    used = _mtime(base / f"{key}.use") or _mtime(path / "meta.json") or _mtime(path) or 0.0
    return Entry(key, path, source, _int(meta.get("presize")), _int(meta.get("n")),
                 disk_bytes(path), used,
                 _source_exists(source), in_use(base, key), damaged)


def _source_exists(source: str) -> bool:
    """Whether the entry's image folder is still there. Sources are recorded absolute; one an
    older version recorded relative to wherever it ran cannot be checked from here, so it
    counts as there: `cache clear --missing-source` must never remove a live entry."""
    return bool(source) and (not os.path.isabs(source) or os.path.isdir(source))


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _busy(path: Path) -> bool:
    """Whether another holder has `path` locked (we take it for a moment, never create it)."""
    try:
        fd = open_lock(path, "lock file", create=False)
    except (OSError, ResnetteError):   # missing, or not a lock resnette could have made
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def in_use(base: Path, key: str) -> bool:
    """Whether a process is reading (`<key>.use`) or building (`<key>.lock`) the entry."""
    return _busy(base / f"{key}.use") or _busy(base / f"{key}.lock")


class Hold:
    """A shared lock on `<key>.use`: the entry is in use until `close()` (or garbage)."""

    def __init__(self, fd: int) -> None:
        self.fd: int | None = fd

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __del__(self) -> None:
        self.close()


def hold(base: Path, key: str) -> Hold | None:
    """Mark the entry in use (a shared lock on `<key>.use`) and used now; None where the cache
    folder cannot hold the mark (read-only: then nothing can remove the entry either). Waits
    only while a `resnette cache clear` (or another run's eviction) removes that entry."""
    path = base / f"{key}.use"
    for _ in range(100):
        try:
            fd = open_lock(path, "cache use mark")
        except (OSError, ResnetteError):
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            if os.stat(path).st_ino == os.fstat(fd).st_ino:   # not removed while we waited
                os.utime(fd)
                return Hold(fd)
        except OSError:
            pass
        os.close(fd)
    return None


def tie(images: Any, held: Hold | None) -> None:
    """Keep the hold as long as `images` (the memory map, and any view of it) lives."""
    if held is not None:
        weakref.finalize(images, held.close)


def remove(base: Path, entry: Entry) -> bool:
    """Remove `entry` unless a process is reading or building it; True when removed."""
    fds = []
    try:
        for suffix in (".lock", ".use"):
            try:
                fd = open_lock(base / f"{entry.key}{suffix}", "cache lock")
            except OSError as e:
                raise ResnetteError(f"cannot remove {entry.path} ({e.strerror}); the cache "
                                    f"folder {base} is not writable") from None
            fds.append(fd)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
        # renamed first: a removal cut short leaves a `.<key>.*.tmp` folder, which the next
        # build's remove_stale deletes, never a half entry
        doomed = base / f".{entry.key}.removing.tmp"
        try:
            os.replace(entry.path, doomed)
        except OSError as e:
            if e.errno == errno.ENOENT:
                return True
            raise ResnetteError(f"cannot remove {entry.path} ({e.strerror})") from None
        remove_temporary(doomed)
        try:
            os.unlink(base / f"{entry.key}.use")   # readers check they hold the current file
        except OSError:
            pass
        return True
    finally:
        for fd in fds:
            os.close(fd)


def clear(base: str | os.PathLike | None = None, unused_days: float | None = None,
          missing_source: bool = False, everything: bool = False
          ) -> tuple[list[Entry], list[Entry]]:
    """Remove the chosen entries: those unused for `unused_days`, those whose source folder
    is gone, or all. Returns (removed, kept because in use)."""
    base = Path(base) if base is not None else default_dir()
    now = time.time()
    chosen = [e for e in entries(base)
              if everything
              or (missing_source and not e.source_exists)
              or (unused_days is not None and now - e.last_used >= unused_days * 86400)]
    removed, busy = [], []
    for e in chosen:
        (removed if remove(base, e) else busy).append(e)
    return removed, busy


def make_room(base: Path, need: int, keep: str, limit: int | None = None,
              say: bool = True) -> list[Entry]:
    """Before building an entry of `need` bytes: remove least recently used entries (never
    `keep`, never one in use) until the cache fits its limit with the new one. Returns what
    was removed and says so in one line; a cache over its limit only with entries in use is
    left as it is (the limit is a target, not a reason to refuse a run)."""
    limit = cache_limit() if limit is None else limit
    if limit is None:
        return []
    current = entries(base)
    total = sum(e.bytes for e in current)
    removed = []
    for e in current:   # least recently used first
        if total + need <= limit:
            break
        if e.key != keep and not e.in_use and remove(base, e):
            removed.append(e)
            total -= e.bytes
    if removed and say:
        print(notice(removed, limit, base), file=sys.stderr, flush=True)
    return removed


def notice(removed: Iterable[Entry], limit: int, base: Path) -> str:
    removed = list(removed)
    what = ", ".join(f"{term(Path(e.source).name or '?')} at {e.presize}px" for e in removed)
    return (f"decode cache: removed {len(removed)} least recently used entr"
            f"{'y' if len(removed) == 1 else 'ies'} ({size_text(sum(e.bytes for e in removed))}: "
            f"{what}) to stay under its {size_text(limit)} limit ({LIMIT_ENV}) in {term(base)}")
