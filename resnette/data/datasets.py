"""The user's entry points: any folder, a named dataset, or "digits", as DataLoaders.

`from_arrays` (the step every entry point ends with) lives in `arrays`, below both this
module and `digits`, so the imports go one way: arrays <- digits <- datasets.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

from resnette.data.arrays import from_arrays
from resnette.data.cache import decoded_store
from resnette.data.decode import unreadable_warning
from resnette.data.digits import digits
from resnette.data.folders import human_names, scan_folder
from resnette.data.loaders import DataLoaders
from resnette.data.sources import DATASETS, untar_data
from resnette.utils import ResnetteError


def folder(path: str | os.PathLike, size: int = 128, presize: int = 160, bs: int = 128,
           valid_pct: float | None = None, seed: int = 0, device: str = "cpu", augment: bool | str = True,
           min_scale: float = 0.5, cache_dir: str | os.PathLike | None = None, rank: int = 0,
           world_size: int = 1, channels: int = 3, method: str = "crop", workers: int = 2,
           channels_last: bool = False, prefetch: int | None = None, resident: bool | None = None) -> DataLoaders:
    """DataLoaders for `<path>/<train|valid>/<label>/*` (or `<path>/<label>/*` with valid_pct).

    Images are decoded once at `presize` into a cache under `cache_dir` (default
    `$RESNETTE_HOME/decoded`, i.e. `~/.cache/resnette/decoded`); unreadable files are skipped
    with one warning. Train batches are augmented like the chapter's
    `aug_transforms(min_scale=0.5, size=size)` (`augment="crop_flip"`: crop and flip only);
    valid batches are resized to `size`. On a
    CUDA device the decoded images move to the GPU once when they fit (`resident=None`;
    True/False forces either way), else batches stream from the cache.
    """
    _check(size=size, presize=presize, bs=bs, channels=channels)
    split = scan_folder(path, valid_pct, seed)
    store = decoded_store(split.root, split.files, presize, method, channels, cache_dir, workers)
    if store.bad:
        warnings.warn(unreadable_warning(store.bad, len(split.files), split.root), stacklevel=2)
    items = [str(f) for f in split.files]
    return from_arrays(store.images, split.labels, items, split.is_valid & store.ok,
                       ~split.is_valid & store.ok, split.vocab, human_names(split.vocab),
                       size=size, bs=bs, seed=seed, device=device, augment=augment,
                       min_scale=min_scale, rank=rank, world_size=world_size,
                       channels_last=channels_last, prefetch=prefetch, workers=workers,
                       resident=resident)


def imagenette(size: int = 128, presize: int = 160, bs: int = 128, variant: str = "160",
               data_dir: str | os.PathLike | None = None, url: str | None = None, **kwargs) -> DataLoaders:
    """Imagenette (variant "160", "320" or "full"), downloaded once, as DataLoaders."""
    return folder(untar_data(_variant("imagenette", variant), data_dir, url), size=size,
                  presize=presize, bs=bs, **kwargs)


def imagewoof(size: int = 128, presize: int = 160, bs: int = 128, variant: str = "160",
              data_dir: str | os.PathLike | None = None, url: str | None = None, **kwargs) -> DataLoaders:
    """Imagewoof (ten dog breeds; variant "160", "320" or "full"), as DataLoaders."""
    return folder(untar_data(_variant("imagewoof", variant), data_dir, url), size=size,
                  presize=presize, bs=bs, **kwargs)


def _variant(family: str, variant: str) -> str:
    variant = str(variant)
    if variant not in ("160", "320", "full"):
        raise ResnetteError(f"unknown {family} variant {variant!r}; choose 160, 320 or full")
    return family if variant == "full" else f"{family}-{variant}"


def get_data(name_or_path: str | os.PathLike, data_dir: str | os.PathLike | None = None,
             url: str | None = None, **kwargs) -> DataLoaders:
    """A named dataset (see `known_names()`), "digits", or a folder path, as DataLoaders."""
    name = str(name_or_path)
    if name in DATASETS:
        return folder(untar_data(name, data_dir, url), **kwargs)
    if name == "digits":
        return digits(**kwargs)
    path = Path(os.path.expanduser(name))   # "~nosuchuser/x" stays as typed (Path raises)
    if path.is_dir():
        return folder(path, **kwargs)
    looks_like_name = os.sep not in name and "/" not in name and not name.startswith((".", "~"))
    if looks_like_name:
        raise ResnetteError(f"unknown dataset {name!r} (and no such folder); choose one of: "
                            f"{', '.join(known_names())}, or give a folder path")
    raise ResnetteError(f"no folder at {path}; give an existing image folder or one of: "
                        f"{', '.join(known_names())}")


def known_names() -> list[str]:
    return [*DATASETS, "digits"]


def _check(*, size: int, presize: int, bs: int, channels: int) -> None:
    if channels not in (1, 3):
        raise ResnetteError(f"channels must be 1 or 3, got {channels}")
    if size < 8 or presize < 8:
        raise ResnetteError(f"size {size} and presize {presize} must both be at least 8 pixels")
    if bs < 1:
        raise ResnetteError(f"batch size must be at least 1, got {bs}")
