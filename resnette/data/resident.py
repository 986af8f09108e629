"""Data resident on the device: a Loader's rows of the decoded store, copied there once.

Streaming a batch means gathering rows from the host's memory map, copying ~10 MB to the
GPU and waiting on threads that prepare it; on a GPU that trains 10,000+ images a second
this, not the model, bounds the epoch. Imagenette at presize 160 is ~1 GB of uint8, a
small part of a modern GPU's memory, so a Loader copies its rows there once and every
batch becomes an index_select plus the usual augmentation, all on the device.

Which rows: only those the Loader visits (its split, its rank's slice of valid), in the
Loader's own order, so a batch's positions index this tensor directly. The train and
valid Loaders hold disjoint rows, so together they copy the store at most once.

When it fits: on CUDA the rows may take at most `SHARE_OF_FREE` of the free device
memory and must leave `RESERVE_BYTES` free; the rest is for the model, its activations
and the optimizer. Otherwise the Loader streams, and one warning line says why.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch

from ..display import size as show_size

SHARE_OF_FREE = 0.5          # the rows may use at most half of the free device memory...
RESERVE_BYTES = 2 * 2**30    # ...and must leave at least 2 GiB free for training
_CHUNK_BYTES = 64 * 2**20    # copy in slices: the host never holds a second full copy


class ResidentRows:
    """Pixels (uint8 N,P,P,C) and labels (int64 N) of one Loader's rows, on `device`."""

    def __init__(self, store: np.ndarray, index: np.ndarray, labels: np.ndarray,
                 device: torch.device) -> None:
        self.device = device
        shape = (len(index),) + tuple(store.shape[1:])
        self.pixels = torch.empty(shape, dtype=torch.uint8, device=device)
        step = max(1, _CHUNK_BYTES // max(1, row_bytes(store)))
        for s in range(0, len(index), step):
            rows = index[s : s + step]   # a Loader's index is sorted: sequential reads of the map
            chunk = torch.from_numpy(np.ascontiguousarray(store[rows]))
            self.pixels[s : s + len(rows)].copy_(chunk)
        self.labels = torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64)).to(device)

    @property
    def nbytes(self) -> int:
        return self.pixels.numel() + self.labels.numel() * 8

    def gather(self, pos: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows at positions `pos` (into the Loader's items): uint8 N,P,P,C and labels, on the
        device.

        The positions (1 KB at bs 128) are the only bytes that cross to the device; the copy
        is asynchronous, so the host never waits for the GPU here. Advanced indexing, not
        index_select: on the CPU index_select of uint8 rows is ~50x slower (measured).
        """
        p = torch.from_numpy(np.ascontiguousarray(pos, dtype=np.int64))
        p = p.to(self.device, non_blocking=True)
        return self.pixels[p], self.labels[p]


def row_bytes(store: np.ndarray) -> int:
    return int(np.prod(store.shape[1:], dtype=np.int64))


def fits(need: int, free: int) -> bool:
    """Whether `need` bytes of data leave enough of `free` device bytes for training."""
    return need <= SHARE_OF_FREE * free and free - need >= RESERVE_BYTES


def place(store: np.ndarray, index: np.ndarray, labels: np.ndarray, device: torch.device,
          resident: bool | None, what: str) -> tuple[ResidentRows | None, str]:
    """Copy the rows to `device` if asked (True) or, with None, if it is a CUDA device with room.

    Returns the resident rows (None: stream) and one line saying what happened. resident=True
    on the CPU keeps the rows in one in-memory tensor and runs the same code as on a GPU.
    A CUDA device without room falls back to streaming, with a warning, even when asked.
    """
    if resident is False or (resident is None and device.type != "cuda"):
        return None, f"{what}: streamed from the decoded store to {device}"
    need = len(index) * row_bytes(store) + len(index) * 8
    size = f"{len(index):,} images, {show_size(need)}"
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if not fits(need, free):
            line = (f"{what} ({size}) streamed from host memory: resident on {device} it would "
                    f"leave too little of the {show_size(free)} free for training (it may use "
                    f"half, keeping {show_size(RESERVE_BYTES)})")
            warnings.warn(line, stacklevel=3)
            return None, line
        try:
            rows = ResidentRows(store, index, labels, device)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            line = (f"{what} ({size}) streamed from host memory: copying it to {device} ran out "
                    "of memory")
            warnings.warn(line, stacklevel=3)
            return None, line
        return rows, f"{what}: resident on {device} ({size})"
    return ResidentRows(store, index, labels, device), f"{what}: resident on {device} ({size})"
