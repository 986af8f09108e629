"""Decode once: every image at the presize in one uint8 file on disk, memory-mapped.

Decoding a JPEG costs milliseconds; reading 77 KB from a memory map costs microseconds. So
the first run decodes every image once (in parallel, with a progress bar) into
`<cache_dir>/<key>/images.npy` (N, P, P, C uint8), and every later epoch and run gathers its
batches from that map.

The key hashes, for every file, its relative path (as bytes: any file name works), size,
modification time and status-change time (ctime), plus presize, method and channels. The
ctime is there for the edit that keeps size and mtime (a tool that restores the mtime, or a
same-second rewrite on a coarse clock): the kernel sets ctime on every write and on every
`utime`, and no call can set it back, so an edited file always gets a new key. It costs
nothing (the same stat) where hashing contents would read every file on every run; the price
is a re-decode after a chmod/chown of the images, which is rare and harmless.

A build is written into a temporary folder and renamed into place when complete, so a killed
build leaves no half store that a later run could mistake for a finished one. Concurrent
builders, disk space and I/O failures: see `cachefs`.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm   # not tqdm.auto: it warns in a Jupyter kernel without ipywidgets

from resnette import cachedir
from resnette.data.cachefs import cache_error, check_room, entry_lock, remove_stale, reserve
from resnette.data.decode import METHODS, UnreadableImage, decode_image
from resnette.files import (ENTRY_MARKER, check_regular_file, open_fd, open_write, read_json,
                            remove_temporary, umask_mode, write_marker, write_text)
from resnette.utils import ResnetteError

_FORMAT = 2          # bump when the store layout or the decoded pixels change (2: EXIF, 16-bit)
_CHUNK = 256         # images per worker job: big enough to amortise the job overhead
_PARALLEL_FROM = 512  # below this, starting worker processes costs more than it saves


@dataclass
class DecodedStore:
    """The decoded images of a file list and which of them could be read."""

    path: Path
    images: np.ndarray          # uint8 N,P,P,C (a read-only memory map)
    ok: np.ndarray              # bool N: False for files that could not be decoded
    bad: list[tuple[str, str]]  # (relative path, reason) of the unreadable files
    decoded: int                # images decoded by this call: 0 when the store was reused


def cache_key(root: Path, files: list[Path], presize: int, method: str, channels: int) -> str:
    """A hash of everything the decoded pixels depend on (see the module docstring)."""
    h = hashlib.sha256(f"v{_FORMAT}|{presize}|{method}|{channels}".encode())
    for f in files:
        try:
            st = f.stat()
        except OSError as e:
            raise ResnetteError(f"cannot read {f} ({e.strerror}); it changed while the folder was "
                                "being scanned: run again") from None
        h.update(b"\n" + os.fsencode(f.relative_to(root).as_posix()))
        h.update(f"|{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}".encode())
    return h.hexdigest()[:20]


def decoded_store(root: Path, files: list[Path], presize: int, method: str = "crop",
                  channels: int = 3, cache_dir: str | os.PathLike | None = None,
                  workers: int = 2) -> DecodedStore:
    """Open the decoded store for `files`, building it first if it does not exist yet."""
    if method not in METHODS:
        raise ResnetteError(f"unknown resize method {method!r}; choose one of: {', '.join(METHODS)}")
    if presize < 8:
        raise ResnetteError(f"presize {presize} is too small; use at least 8 pixels")
    base = Path(cache_dir).expanduser() if cache_dir is not None else _default_dir()
    key = cache_key(root, files, presize, method, channels)
    final = base / key
    shape = (len(files), presize, presize, channels)
    decoded = 0
    use = cachedir.hold(base, key)   # in use while mapped: never evicted (cachedir.py)
    opened = _open(final, shape)   # a finished entry needs no lock: it never changes
    if opened is None:
        need = _header_size(shape) + int(np.prod(shape)) + 2**16 * (1 + len(files) // 1000)
        try:
            base.mkdir(parents=True, exist_ok=True)
            with entry_lock(base / f"{key}.lock", final):
                opened = _open(final, shape)   # built by the process we waited for?
                if opened is None:
                    remove_stale(base)
                    remove_temporary(final)  # missing, damaged or tampered (a link: unlinked)
                    cachedir.make_room(base, need, key)   # RESNETTE_CACHE_LIMIT, LRU first
                    check_room(base, need)
                    _build(final, root, files, shape, method, workers)
                    decoded = len(files)
                    opened = _open(final, shape)
        except OSError as e:
            raise cache_error(e, base, need) from None
        if opened is None:
            raise ResnetteError(f"the decoded-image cache {final} cannot be read back after "
                                "building it; check that disk, or set RESNETTE_HOME elsewhere")
    meta, images = opened
    cachedir.tie(images, use or cachedir.hold(base, key))
    ok = np.ones(len(files), dtype=bool)
    ok[[i for i, _ in meta["bad"]]] = False
    bad = [(files[i].relative_to(root).as_posix(), why) for i, why in meta["bad"]]
    return DecodedStore(final, images, ok, bad, decoded)


def _open(final: Path, shape: tuple[int, ...]) -> tuple[dict, np.ndarray] | None:
    """The store's meta and memory map, or None if either cannot be read or does not match.
    np.load keeps allow_pickle=False, so a store holding pickled objects is refused, never
    unpickled; a short file fails here (a map past its end would SIGBUS when read)."""
    try:
        meta = read_json(final / "meta.json", "cache metadata", 2**24)
        check_regular_file(final / "images.npy", "cache store")   # np.load would block on a FIFO
        images = np.load(final / "images.npy", mmap_mode="r")
    except (OSError, ValueError, ResnetteError):   # damaged, a FIFO, a device: rebuilt
        return None
    if not isinstance(meta, dict) or images.shape != shape or images.dtype != np.uint8 or not isinstance(meta.get("bad"), list):
        return None
    return meta, images


def _default_dir() -> Path:
    from resnette.data.sources import resnette_home

    return resnette_home() / "decoded"


def _header_size(shape: tuple[int, ...]) -> int:
    """Bytes of the .npy header numpy writes for a uint8 array of `shape`."""
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "|u1", "fortran_order": False, "shape": shape})
    return buf.tell()


def _build(final: Path, root: Path, files: list[Path], shape: tuple[int, ...], method: str,
           workers: int) -> None:
    n, presize, _, channels = shape
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
        store_path = str(tmp / "images.npy")
        offset = _header_size(shape)
        with open_write(store_path, "cache store") as f:
            np.lib.format.write_array_header_1_0(
                f, {"descr": "|u1", "fortran_order": False, "shape": shape})
            f.flush()
            reserve(f.fileno(), offset + int(np.prod(shape)))
        paths = [str(f) for f in files]
        jobs = [(s, paths[s:s + _CHUNK]) for s in range(0, len(paths), _CHUNK)]
        bad: list[tuple[int, str]] = []
        args = (store_path, offset, presize, method, channels)
        bar = tqdm(total=len(paths), unit="img", desc=f"decoding at {presize}px", disable=None)
        with bar:
            if workers <= 1 or len(paths) < _PARALLEL_FROM:
                for s, chunk in jobs:
                    bad += decode_into(*args, s, chunk)
                    bar.update(len(chunk))
            else:
                try:
                    with ProcessPoolExecutor(workers, mp_context=_context()) as pool:
                        futures = {pool.submit(decode_into, *args, s, chunk): len(chunk)
                                   for s, chunk in jobs}
                        for fut in as_completed(futures):
                            bad += fut.result()
                            bar.update(futures[fut])
                except BrokenProcessPool:
                    raise ResnetteError(
                        f"a decoding process died (the system killed it, most often for lack of "
                        f"memory) while building the decoded-image cache in {final.parent}; nothing "
                        "was kept; run again, and free some memory if it happens again") from None
        meta = {"format": _FORMAT, "root": os.path.abspath(root), "n": n, "presize": presize,
                "method": method, "channels": channels, "bad": sorted(bad)}
        write_text(tmp / "meta.json", json.dumps(meta))
        write_marker(tmp, ENTRY_MARKER)
        with open_write(store_path, "cache store", append=True, create=False) as f:
            os.fsync(f.fileno())
        os.chmod(tmp, umask_mode(0o777))   # mkdtemp's 0700: shared caches stay shareable
        os.replace(tmp, final)   # we hold the entry's lock and removed any old `final`
    finally:
        # every temporary folder of this entry, also one a Ctrl-C left as mkdtemp returned:
        # the caller holds the entry's lock, so no other process is building it
        for left in final.parent.glob(f".{final.name}.*.tmp"):
            remove_temporary(left)


def decode_into(store_path: str, offset: int, presize: int, method: str, channels: int,
                start: int, paths: list[str]) -> list[tuple[int, str]]:
    """Worker job: decode `paths` into rows `start...` of the .npy store; return failures.

    Runs in a separate process and sends back only the (index, reason) of unreadable files,
    never pixels. It writes with pwrite, not through a memory map: a write error is then an
    OSError the parent turns into one line, where a map would kill the worker with SIGBUS.
    """
    row = presize * presize * channels
    bad = []
    fd = open_fd(store_path, "cache store", follow=False, flags=os.O_WRONLY)
    try:
        for i, p in enumerate(paths, start):
            try:
                pixels = decode_image(p, presize, method, channels)
            except UnreadableImage as e:
                bad.append((i, str(e)))
                continue
            os.pwrite(fd, pixels.tobytes(), offset + i * row)
    finally:
        os.close(fd)
    return bad


def _context() -> multiprocessing.context.BaseContext:
    # fork starts a worker in milliseconds; the workers only run Pillow and NumPy, so the
    # parent's torch threads cannot deadlock them. Elsewhere fall back to spawn.
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")
