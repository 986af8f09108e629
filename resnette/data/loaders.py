"""Loader and DataLoaders: batches gathered from the decoded uint8 store, augmented on device.

One batch is: pick `bs` rows of the store (a seeded permutation for train, in order for
valid), copy them out of the memory map (~10 MB at bs 128, presize 160), move them to the
device, then one table lookup + one resampling (augment.py). Every batch depends only on
(seed, epoch, batch index, rank), never on what ran before, so a background thread pool can
prepare the next batches while a GPU trains (not on a CPU: see default_prefetch), and a resumed
run can start mid-epoch.

On a CUDA device the Loader's rows are instead copied to the GPU once when they fit
(resident.py): a batch is then an indexing there, with no host copy and no threads.
`resident=True` does the same on the CPU. Both paths give identical batches for a seed.
"""
from __future__ import annotations

import math
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from resnette.data.augment import AugmentConfig, augment_batch, resize_batch
from resnette.data.resident import place
from resnette.utils import ResnetteError


def batch_seed(seed: int, epoch: int, batch: int, rank: int) -> int:
    """An independent, well-mixed 63-bit seed for one batch's augmentation parameters."""
    return int(np.random.SeedSequence([seed, epoch, batch, rank]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def default_prefetch(device: torch.device) -> int:
    """How many batches threads prepare ahead: 2 on a GPU, where the host's work overlaps the
    device's; none on a CPU, where the step already uses every core and threads beside it only
    take them away: xresnet18, bs 64, 2 cores, a Learner epoch at 64 px 303 ms a step with two
    threads ahead vs 259 ms inline, 508 vs 462 ms at 112 px (bf16), 1063 vs 954 ms at 96 px in
    fp32 on AVX2 (BENCHMARKS.md, "The loop around the step: batches inline, fused AdamW")."""
    return 0 if device.type == "cpu" else 2


class Loader:
    """An iterable of (x, y) batches over part of a decoded store (see docs/DESIGN.md, data/).

    Each `iter()` runs one epoch: the one given by the last `set_epoch`, else the one after
    the previous iteration's. Train shuffles, drops the last partial batch and shards each
    epoch's permutation across ranks (same batch count on every rank); valid keeps order and
    every image, and gives each rank a disjoint contiguous slice. `resident`: copy this
    Loader's rows to the device once (True), stream them (False), or None: resident on a
    CUDA device when they fit; `placement` says which happened.
    """

    def __init__(self, store: np.ndarray, index: np.ndarray, labels: np.ndarray, items: Sequence[str],
                 *, bs: int, train: bool, size: int, mean: Sequence[float], std: Sequence[float],
                 augment: AugmentConfig | None = None, seed: int = 0, device: str | torch.device = "cpu",
                 rank: int = 0, world_size: int = 1, channels_last: bool = False,
                 prefetch: int | None = None, workers: int = 2, resident: bool | None = None) -> None:
        if bs < 1:
            raise ResnetteError(f"batch size must be at least 1, got {bs}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ResnetteError(f"rank {rank} is not in 0..{world_size - 1}; check the launcher's RANK/WORLD_SIZE")
        index, labels = np.asarray(index, dtype=np.int64), np.asarray(labels, dtype=np.int64)
        items = list(items)
        if not train:  # this rank's contiguous slice: ranks together cover every image once
            part = np.array_split(np.arange(len(index)), world_size)[rank]
            index, labels, items = index[part], labels[part], [items[i] for i in part]
        self.store, self.train, self.bs, self.seed = store, train, bs, seed
        self._index, self._labels, self.items = index, labels, items
        self.rank, self.world_size = rank, world_size
        self.device = torch.device(device)
        self.augment = augment if train else None
        self.mean = torch.tensor(mean, dtype=torch.float32)
        self.std = torch.tensor(std, dtype=torch.float32)
        self.channels_last, self.workers = channels_last, workers
        self.prefetch = default_prefetch(self.device) if prefetch is None else prefetch
        self.size = size
        self._epoch, self._skip = 0, 0
        if train and len(self) == 0:
            raise ResnetteError(f"only {len(index)} training images for batch size {bs} x {world_size} "
                                "rank(s); lower the batch size (--bs)")
        self._rows, self.placement = place(store, index, labels, self.device, resident,
                                           "train data" if train else "valid data")

    @property
    def resident(self) -> bool:
        """Whether this Loader's rows live on its device (no host memory map, no threads)."""
        return self._rows is not None

    # --- what the loader covers ------------------------------------------------------------
    @property
    def size(self) -> int:
        return self._size

    @size.setter
    def size(self, value: int) -> None:  # progressive resizing changes it between epochs
        if int(value) < 8:
            raise ResnetteError(f"image size must be at least 8 pixels, got {value}")
        self._size = int(value)

    @property
    def presize(self) -> int:
        return int(self.store.shape[1])

    @property
    def labels(self) -> torch.Tensor:
        return torch.from_numpy(self._labels)

    def __len__(self) -> int:
        if self.train:
            return len(self._index) // (self.bs * self.world_size)
        return math.ceil(len(self._index) / self.bs)

    @property
    def n(self) -> int:
        return len(self) * self.bs if self.train else len(self._index)

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """The next iteration runs epoch `epoch` from batch `skip` (for exact mid-epoch resume)."""
        if not 0 <= skip <= len(self):
            raise ResnetteError(f"cannot skip {skip} batches of an epoch of {len(self)}")
        self._epoch, self._skip = int(epoch), int(skip)

    # --- making batches --------------------------------------------------------------------
    def order(self, epoch: int) -> np.ndarray:
        """Positions (into items) this rank visits in `epoch`, in order."""
        if not self.train:
            return np.arange(len(self._index))
        perm = np.random.default_rng([self.seed, epoch]).permutation(len(self._index))
        perm = perm[: len(self) * self.bs * self.world_size]
        return perm[self.rank :: self.world_size]

    def batch(self, order: np.ndarray, epoch: int, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch `b` of an epoch whose visiting order is `order`."""
        pos = order[b * self.bs : (b + 1) * self.bs]
        if self._rows is not None:
            x, y = self._rows.gather(pos)
        else:
            x, y = self._stream(pos)
        if self.augment is not None:
            gen = torch.Generator().manual_seed(batch_seed(self.seed, epoch, b, self.rank))
            out = augment_batch(x, self.size, self.augment, gen, self.mean, self.std)
        else:
            out = resize_batch(x, self.size, self.mean, self.std)
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        return out.contiguous(memory_format=fmt), y

    def _stream(self, pos: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows at `pos` gathered from the host's memory map and sent to the device."""
        rows = self._index[pos]
        # Reading the rows in increasing order keeps the memory map's reads sequential.
        sort = np.argsort(rows, kind="stable")
        pixels = np.empty((len(rows),) + self.store.shape[1:], dtype=np.uint8)
        pixels[sort] = self.store[rows[sort]]
        x = torch.from_numpy(pixels)
        if self.device.type == "cuda":
            x = x.pin_memory().to(self.device, non_blocking=True)
        elif self.device.type != "cpu":
            x = x.to(self.device)
        return x, torch.from_numpy(self._labels[pos]).to(self.device)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch, skip = self._epoch, self._skip
        self._epoch, self._skip = epoch + 1, 0
        order = self.order(epoch)
        batches = range(skip, len(self))
        # Resident: the device queues the work itself, so threads would only add overhead.
        if self._rows is not None or self.prefetch <= 0 or self.workers <= 0:
            for b in batches:
                yield self.batch(order, epoch, b)
            return
        # Batches are independent, so threads prepare the next ones while the caller trains;
        # the heavy work (NumPy gathers, grid_sample) runs without the GIL.
        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="resnette-data")
        pending: deque = deque()
        try:
            todo = iter(batches)
            for b in todo:
                pending.append(pool.submit(self.batch, order, epoch, b))
                if len(pending) >= self.prefetch:
                    break
            while pending:
                result = pending.popleft().result()
                nxt = next(todo, None)
                if nxt is not None:
                    pending.append(pool.submit(self.batch, order, epoch, nxt))
                yield result
        finally:
            for f in pending:
                f.cancel()
            pool.shutdown(wait=True)

    # --- for plots ---------------------------------------------------------------------------
    def images(self, idxs: Sequence[int] | np.ndarray | torch.Tensor) -> torch.Tensor:
        """The presized images at positions `idxs` of `items`, uint8 N,C,P,P."""
        rows = self._index[np.asarray(idxs, dtype=np.int64)]
        return torch.from_numpy(np.ascontiguousarray(self.store[rows])).permute(0, 3, 1, 2).contiguous()

    def decode_batch(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised float N,C,H,W -> uint8 N,H,W,C pixels (undoes the normalisation)."""
        x = x.detach().float().cpu()
        x = x * self.std.view(1, -1, 1, 1) + self.mean.view(1, -1, 1, 1)
        return (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()


class DataLoaders:
    """The train and valid Loaders plus what a model and a report need to know about them."""

    def __init__(self, train: Loader, valid: Loader, vocab: list[str], names: list[str],
                 channels: int, mean: Sequence[float], std: Sequence[float]) -> None:
        self.train, self.valid = train, valid
        self.vocab, self.names, self.channels = list(vocab), list(names), channels
        self.mean, self.std = tuple(mean), tuple(std)
        self.presize = train.presize

    @property
    def c(self) -> int:
        return len(self.vocab)

    @property
    def size(self) -> int:
        return self.train.size

    @size.setter
    def size(self, value: int) -> None:
        self.train.size = value
        self.valid.size = value

    def __repr__(self) -> str:
        return (f"DataLoaders({self.c} classes, train {self.train.n} / valid {self.valid.n} images, "
                f"size {self.size} from presize {self.presize}, bs {self.train.bs})")

    def show_batch(self, path: str | Path | None = None, max_n: int = 9):
        """fastai's show_batch: a grid of `max_n` augmented training images (epoch 0, batch 0)
        with their labels, shown inline in a notebook and written as PNG to `path` if given;
        returns the matplotlib Figure (resnette.data.show)."""
        from resnette.data.show import show_batch

        return show_batch(self, path, max_n)
