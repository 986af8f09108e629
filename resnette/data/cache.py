"""Decode once: every image at the presize in one uint8 file on disk, memory-mapped.

Decoding a JPEG costs milliseconds; reading 77 KB from a memory map costs microseconds. So
the first run decodes every image once (in parallel, with a progress bar) into
`<cache_dir>/<key>/images.npy` (N, P, P, C uint8), and every later epoch and run gathers its
batches from that map. The key hashes the relative paths, sizes and modification times of
the files plus presize, method and channels: touching, adding or removing a file, or
changing the presize, gives a new key and a rebuild.

A build is written into a temporary folder and renamed into place when complete, so a killed
build leaves no half store that a later run could mistake for a finished one.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from resnette.data.decode import METHODS, decode_into
from resnette.utils import ResnetteError

_FORMAT = 1          # bump when the store layout changes, so old stores are not misread
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
    """A hash of everything the decoded pixels depend on."""
    h = hashlib.sha256(f"v{_FORMAT}|{presize}|{method}|{channels}".encode())
    for f in files:
        st = f.stat()
        h.update(f"\n{f.relative_to(root).as_posix()}|{st.st_size}|{st.st_mtime_ns}".encode())
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
    final = base / cache_key(root, files, presize, method, channels)
    decoded = 0
    opened = _open(final) if (final / "meta.json").exists() else None
    if opened is None:
        shutil.rmtree(final, ignore_errors=True)  # missing, damaged or tampered: decode again
        _build(final, root, files, presize, method, channels, workers)
        decoded = len(files)
        opened = _open(final)
    meta, images = opened
    ok = np.ones(len(files), dtype=bool)
    ok[[i for i, _ in meta["bad"]]] = False
    bad = [(files[i].relative_to(root).as_posix(), why) for i, why in meta["bad"]]
    return DecodedStore(final, images, ok, bad, decoded)


def _open(final: Path) -> tuple[dict, np.ndarray] | None:
    """The store's meta and memory map, or None if either cannot be read. np.load keeps
    allow_pickle=False, so a store holding pickled objects is refused, never unpickled."""
    try:
        return json.loads((final / "meta.json").read_text()), np.load(final / "images.npy", mmap_mode="r")
    except (OSError, ValueError):
        return None


def _default_dir() -> Path:
    from resnette.data.sources import resnette_home

    return resnette_home() / "decoded"


def _build(final: Path, root: Path, files: list[Path], presize: int, method: str,
           channels: int, workers: int) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    need = len(files) * presize * presize * channels
    free = shutil.disk_usage(final.parent).free
    if need > free:
        raise ResnetteError(f"the decoded cache needs {need / 2**30:.2f} GiB but {final.parent} has "
                            f"{free / 2**30:.2f} GiB free; free space or pass cache_dir=")
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        store_path = str(tmp / "images.npy")
        np.lib.format.open_memmap(store_path, mode="w+", dtype=np.uint8,
                                  shape=(len(files), presize, presize, channels)).flush()
        paths = [str(f) for f in files]
        jobs = [(s, paths[s:s + _CHUNK]) for s in range(0, len(paths), _CHUNK)]
        bad: list[tuple[int, str]] = []
        bar = tqdm(total=len(paths), unit="img", desc=f"decoding at {presize}px", disable=None)
        with bar:
            if workers <= 1 or len(paths) < _PARALLEL_FROM:
                for s, chunk in jobs:
                    bad += decode_into(store_path, s, chunk, presize, method, channels)
                    bar.update(len(chunk))
            else:
                with ProcessPoolExecutor(workers, mp_context=_context()) as pool:
                    futures = {pool.submit(decode_into, store_path, s, chunk, presize, method,
                                           channels): len(chunk) for s, chunk in jobs}
                    for fut in as_completed(futures):
                        bad += fut.result()
                        bar.update(futures[fut])
        meta = {"format": _FORMAT, "root": str(root), "n": len(files), "presize": presize,
                "method": method, "channels": channels, "bad": sorted(bad)}
        (tmp / "meta.json").write_text(json.dumps(meta))
        with open(store_path, "rb+") as f:
            os.fsync(f.fileno())
        if final.exists() and not (final / "meta.json").exists():
            shutil.rmtree(final, ignore_errors=True)  # a damaged store: replace it
        try:
            os.replace(tmp, final)
        except OSError:
            if not (final / "meta.json").exists():  # not another process winning the race
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _context() -> multiprocessing.context.BaseContext:
    # fork starts a worker in milliseconds; the workers only run Pillow and NumPy, so the
    # parent's torch threads cannot deadlock them. Elsewhere fall back to spawn.
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")
