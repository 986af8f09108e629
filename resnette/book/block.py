"""`DataBlock(...).dataloaders(source, bs=)`: fastai's getters and splitter, resnette's loaders.

The getters run exactly as in fastai (they are the user's functions); what fastai would then
do per item and per epoch (open, resize, collate, augment on the device) is resnette's decode
once into the uint8 cache, then per-batch augmentation (resnette.data). The DataLoaders it
returns are resnette's, with fastai's `one_batch()` and `show_batch(max_n=)` spelt as fastai's.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch

from resnette.data.augment import IMAGENET_MEAN, AugmentConfig
from resnette.data.cache import decoded_store
from resnette.data.decode import unreadable_warning
from resnette.data.folders import human_names
from resnette.data.loaders import DataLoaders as _DataLoaders, Loader
from resnette.utils import ResnetteError

from .data import AugTransforms, CategoryBlock, ImageBlock, Normalize, RandomSplitter, Resize

DEFAULT_SEED = 0   # the split when no splitter is given, and the batches' augmentation


class DataLoaders(_DataLoaders):
    """resnette's DataLoaders (train, valid, vocab, c, ...), plus fastai's batch methods."""

    def one_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The first training batch (augmented, normalised), as fastai's `dls.one_batch()`."""
        loader = self.train
        return loader.batch(loader.order(0), 0, 0)

    def show_batch(self, b: Any = None, max_n: int = 9, nrows: int | None = None,
                   ncols: int | None = None, show: bool = True, path: str | Path | None = None,
                   **kwargs: Any) -> None:
        """fastai's `show_batch(max_n=9)`: a grid of training images with their labels, inline
        in a notebook (resnette's picture; `path` also writes it as a PNG). Returns None, as
        fastai's does, so the cell shows the picture and no `<Figure ...>` line after it."""
        if b is not None or nrows is not None or ncols is not None or kwargs:
            raise ResnetteError("resnette.book's show_batch takes max_n (and path=); it draws the "
                                "first training batch in a square grid")
        super().show_batch(path, max_n)


class DataBlock:
    """fastai's DataBlock for the chapter's kind of data: images in, one category out."""

    def __init__(self, blocks: Sequence[Any] = (ImageBlock, CategoryBlock), dl_type: Any = None,
                 getters: Any = None, n_inp: int | None = None, item_tfms: Any = None,
                 batch_tfms: Any = None, get_items: Callable | None = None,
                 splitter: Callable | None = None, get_y: Callable | None = None,
                 get_x: Callable | None = None) -> None:
        if tuple(blocks) != (ImageBlock, CategoryBlock):
            raise ResnetteError("resnette.book's DataBlock covers blocks=(ImageBlock, "
                                "CategoryBlock), single-label image classification, only")
        for name, value in (("dl_type", dl_type), ("getters", getters), ("n_inp", n_inp)):
            if value is not None:
                raise ResnetteError(f"DataBlock({name}=...) is not in resnette.book; "
                                    "give get_x/get_y")
        self.get_items, self.splitter, self.get_y, self.get_x = get_items, splitter, get_y, get_x
        self.presize, self.method = _presize(_listify(item_tfms))
        self.augment, self.size, self.mean, self.std = _batch_tfms(_listify(batch_tfms))

    def dataloaders(self, source: Any, path: str | os.PathLike = ".", verbose: bool = False,
                    bs: int = 64, device: str | torch.device | None = None,
                    num_workers: int | None = None, **kwargs: Any) -> DataLoaders:
        """Items from `get_items(source)`, split and labelled by the DataBlock's functions, then
        decoded once at the Resize size and served by resnette's Loaders (bs 64 and the GPU when
        there is one, fastai's defaults; train shuffled, last partial batch dropped; valid in
        order, all of it)."""
        if kwargs:
            raise ResnetteError(f"dataloaders({next(iter(kwargs))}=...) is not in resnette.book; "
                                "it takes bs, device and num_workers")
        items = list(self.get_items(source) if self.get_items else source)
        if not items:
            raise ResnetteError(f"get_items found no items in {source}; check the path")
        train_idx, valid_idx = (self.splitter or RandomSplitter(0.2, DEFAULT_SEED))(items)
        train_idx, valid_idx = [int(i) for i in train_idx], [int(i) for i in valid_idx]
        if not train_idx or not valid_idx:
            raise ResnetteError(f"the splitter gave {len(train_idx)} training and {len(valid_idx)} "
                                "validation items; both need some (check GrandparentSplitter's "
                                "names)")
        if self.get_y is None:
            raise ResnetteError("DataBlock needs get_y (e.g. get_y=parent_label) to label the "
                                "images")
        labels = {i: str(self.get_y(items[i])) for i in (*train_idx, *valid_idx)}
        vocab = sorted({labels[i] for i in train_idx})   # fastai's Categorize: the training labels
        unknown = sorted({labels[i] for i in valid_idx} - set(vocab))
        if unknown:
            raise ResnetteError(f"validation labels {unknown[:5]} have no training items; a "
                                "classifier cannot predict them")
        # Each part in path order (the Loaders shuffle with their own seed): the cache's key
        # then does not depend on the file system's listing order, and it is the key
        # `resnette train --data <folder>` uses for the same files (train first, then valid).
        path_of = {i: Path(self.get_x(items[i]) if self.get_x else items[i])
                   for i in (*train_idx, *valid_idx)}
        order = [*sorted(train_idx, key=path_of.get), *sorted(valid_idx, key=path_of.get)]
        files = [path_of[i] for i in order]
        root = Path(os.path.commonpath([str(f.parent) for f in files]))
        workers = 2 if num_workers is None else max(int(num_workers), 1)
        store = decoded_store(root, files, self.presize, self.method, 3, None, workers)
        if store.bad:
            warnings.warn(unreadable_warning(store.bad, len(files), root), stacklevel=2)
        index = {v: k for k, v in enumerate(vocab)}
        y = np.array([index[labels[i]] for i in order], dtype=np.int64)
        is_valid = np.arange(len(order)) >= len(train_idx)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")   # fastai's default
        return self._loaders(store.images, y, [str(f) for f in files], is_valid, store.ok, vocab,
                             bs, str(device), workers)

    def _loaders(self, images: np.ndarray, y: np.ndarray, names: list[str], is_valid: np.ndarray,
                 ok: np.ndarray, vocab: list[str], bs: int, device: str,
                 workers: int) -> DataLoaders:
        common = dict(size=self.size or self.presize, mean=self.mean, std=self.std,
                      seed=DEFAULT_SEED, device=device, workers=workers)
        loaders = []
        for part, train in ((~is_valid & ok, True), (is_valid & ok, False)):
            idx = np.flatnonzero(part)
            loaders.append(Loader(images, idx, y[idx], [names[i] for i in idx], bs=bs, train=train,
                                  augment=self.augment if train else None, **common))
        return DataLoaders(*loaders, vocab, human_names(vocab), 3, self.mean, self.std)


def _listify(tfms: Any) -> list[Any]:
    if tfms is None:
        return []
    out: list[Any] = []
    for t in (tfms if isinstance(tfms, Iterable) else [tfms]):
        out += _listify(t) if isinstance(t, (list, tuple)) else [t]
    return out


def _presize(item_tfms: list[Any]) -> tuple[int, str]:
    """The one Resize: resnette decodes every image at this size once (its cache)."""
    if len(item_tfms) != 1 or not isinstance(item_tfms[0], Resize):
        raise ResnetteError("resnette.book's DataBlock needs item_tfms=Resize(size) and nothing "
                            "else: every image is decoded once at that size into resnette's cache")
    return item_tfms[0].size, item_tfms[0].method


def _batch_tfms(batch_tfms: list[Any]) -> tuple[AugmentConfig | None, int | None, tuple, tuple]:
    """(augmentation, output size, mean, std) from aug_transforms(...) and Normalize."""
    augment, size, mean, std = None, None, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    for t in batch_tfms:
        if isinstance(t, AugTransforms) and augment is None:
            augment, size = t.config, t.size
        elif isinstance(t, Normalize) and mean == (0.0, 0.0, 0.0):
            mean, std = tuple(t.mean), tuple(t.std)
        else:
            raise ResnetteError(f"batch_tfms: {t!r} is not in resnette.book; it takes "
                                "*aug_transforms(...) and one Normalize.from_stats(...)")
    if len(mean) != len(IMAGENET_MEAN) or len(std) != len(IMAGENET_MEAN):
        raise ResnetteError("Normalize needs 3 means and 3 stds (RGB images)")
    return augment, size, mean, std
