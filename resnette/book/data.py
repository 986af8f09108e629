"""The chapter's data cells, `untar_data(URLs...)` and `DataBlock(...).dataloaders(path, bs=)`,
mapped onto resnette's own pipeline.

A `DataBlock` here runs the user's own getters as fastai would (`get_items` lists the files,
the splitter splits them, `get_y` labels them, the vocabulary is the sorted labels of the
training split, as fastai's `Categorize`), and then hands the files to resnette: each image is
decoded once at `Resize`'s size into the uint8 cache and the batches are augmented per batch,
in one resampling (resnette.data). The speed is resnette's; nothing is decoded per epoch.
Transforms are descriptions that the DataBlock reads; an argument with no resnette equivalent
is refused with one line naming what to do instead.
"""
from __future__ import annotations

import mimetypes
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence
from urllib.parse import unquote, urlparse

import torch

from resnette.data.augment import AugmentConfig
from resnette.data.sources import DATASETS, copy_advice, untar_data as _untar_data, url_env_var
from resnette.utils import ResnetteError

imagenet_stats = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])   # fastai's, as lists


class URLs:
    """fastai's addresses of the datasets resnette knows (the same strings as fastai's URLs)."""

    IMAGENETTE, IMAGENETTE_160, IMAGENETTE_320 = (DATASETS[k].url for k in (
        "imagenette", "imagenette-160", "imagenette-320"))
    IMAGEWOOF, IMAGEWOOF_160, IMAGEWOOF_320 = (DATASETS[k].url for k in (
        "imagewoof", "imagewoof-160", "imagewoof-320"))
    MNIST, MNIST_SAMPLE, MNIST_TINY = (DATASETS[k].url for k in (
        "mnist", "mnist-sample", "mnist-tiny"))


def untar_data(url: str, force_download: bool = False) -> Path:
    """fastai's `untar_data(URLs.X)`: resnette's download, check and safe extraction of that
    dataset into `$RESNETTE_HOME` (default ~/.cache/resnette), reused offline afterwards.

    `RESNETTE_URL_<NAME>` (e.g. RESNETTE_URL_IMAGENETTE_160) replaces the address, as for the
    command line; here it may also be `file:///a/folder`: an already extracted copy, used in
    place (nothing copied, nothing checked), so a notebook can read a local dataset unchanged.
    """
    name = next((k for k, ds in DATASETS.items() if ds.url == url), None)
    if name is None:
        raise ResnetteError(f"resnette.book's untar_data knows the URLs of {', '.join(DATASETS)}; "
                            f"{url!r} is not one (for your own images give DataBlock a "
                            "folder path)")
    if force_download:
        raise ResnetteError("untar_data(force_download=True) is not in resnette.book; delete the "
                            "dataset's folder under $RESNETTE_HOME to fetch it again")
    given = os.environ.get(url_env_var(name), "")
    if given.startswith("file://"):
        local = Path(unquote(urlparse(given).path))
        if local.is_dir():
            return local
    return _untar_data(name, advice=copy_advice(name, book=True))


# fastai's: the extensions whose MIME type is image/*. fastai reads mimetypes.types_map after
# its imports have initialised mimetypes, which adds the system's tables (/etc/mime.types:
# .webp, .jfif, ...); a MimeTypes of those same files gives that set without global state.
_MIME = mimetypes.MimeTypes([f for f in mimetypes.knownfiles if os.path.isfile(f)])
image_extensions = {k for k, v in _MIME.types_map[True].items() if v.startswith("image/")}


def get_image_files(path: str | os.PathLike, recurse: bool = True,
                    folders: Sequence[str] | None = None) -> list[Path]:
    """fastai's get_image_files: every file under `path` whose extension's MIME type is an image
    (`folders`: only those top-level folders), hidden names skipped, in os.walk's order."""
    path, folders = Path(path), list(folders or [])
    if not recurse:
        return _image_names(path, [e.name for e in os.scandir(path) if e.is_file()])
    out = []
    for i, (p, dirs, files) in enumerate(os.walk(path, followlinks=True)):
        if folders and i == 0:
            dirs[:] = [d for d in dirs if d in folders]
        else:
            dirs[:] = [d for d in dirs if not d.startswith(".")]
        if folders and i == 0 and "." not in folders:
            continue
        out += _image_names(Path(p), files)
    return out


def _image_names(folder: Path, names: Iterable[str]) -> list[Path]:
    return [folder / f for f in names if not f.startswith(".")
            and "." + f.split(".")[-1].lower() in image_extensions]


def parent_label(o: str | os.PathLike) -> str:
    """fastai's parent_label: the name of the item's folder."""
    return Path(o).parent.name


Splitter = Callable[[Sequence[Any]], tuple[list[int], list[int]]]


def RandomSplitter(valid_pct: float = 0.2, seed: int | None = None) -> Splitter:
    """fastai's: torch.manual_seed(seed) when given, a torch.randperm of the items, the first
    int(valid_pct * n) of it validation (same seed, same split as fastai's)."""
    def split(items: Sequence[Any]) -> tuple[list[int], list[int]]:
        if seed is not None:
            torch.manual_seed(seed)
        perm = torch.randperm(len(items)).tolist()
        cut = int(valid_pct * len(items))
        return perm[cut:], perm[:cut]
    return split


def GrandparentSplitter(train_name: str = "train", valid_name: str = "valid") -> Splitter:
    """fastai's: items whose grandparent folder is `train_name` train, `valid_name` validation
    (either may be a list of names); items under other folders are in neither."""
    def idxs(items: Sequence[Any], names: str | Sequence[str]) -> list[int]:
        names = [names] if isinstance(names, str) else list(names)
        return [i for n in names for i, o in enumerate(items) if Path(o).parent.parent.name == n]
    return lambda items: (idxs(items, train_name), idxs(items, valid_name))


class ImageBlock:
    """The input block: an image file (RGB, as fastai's PILImage), decoded by resnette."""


class CategoryBlock:
    """The target block: one label per item, the vocabulary sorted (fastai's default)."""


@dataclass(frozen=True)
class Resize:
    """fastai's item transform `Resize(size)`: here the size every image is decoded at, once,
    into resnette's cache. `method`: "crop" (fastai's default) or "squish"."""

    size: int
    method: str = "crop"

    def __post_init__(self) -> None:
        if not isinstance(self.size, int) or self.method not in ("crop", "squish"):
            raise ResnetteError("resnette.book's Resize takes one int size (square) and method "
                                f"'crop' or 'squish', got Resize({self.size!r}, {self.method!r})")


@dataclass(frozen=True)
class AugTransforms:
    """What `aug_transforms(...)` returns here: one description resnette's batch augmentation
    reads (fastai returns the list Flip, Warp, Rotate, Zoom, Brightness, Contrast, crop)."""

    config: AugmentConfig
    size: int | None


def aug_transforms(mult: float = 1.0, do_flip: bool = True, flip_vert: bool = False,
                   max_rotate: float = 10.0, min_zoom: float = 1.0, max_zoom: float = 1.1,
                   max_lighting: float = 0.2, max_warp: float = 0.2, p_affine: float = 0.75,
                   p_lighting: float = 0.75, xtra_tfms: list | None = None, size: int | None = None,
                   mode: str = "bilinear", pad_mode: str = "reflection", align_corners: bool = True,
                   batch: bool = False, min_scale: float = 1.0) -> list[AugTransforms]:
    """fastai's aug_transforms, same arguments and defaults, as resnette's batch augmentation
    (with min_scale < 1 fastai adds a square RandomResizedCropGPU; 1 keeps the whole image)."""
    unsupported = {"flip_vert": flip_vert, "xtra_tfms": xtra_tfms, "batch": batch,
                   "mode != 'bilinear'": mode != "bilinear",
                   "align_corners=False": not align_corners,
                   "pad_mode != 'reflection'": str(pad_mode).lower() != "reflection",
                   "a non-square size": size is not None and not isinstance(size, int)}
    bad = [k for k, v in unsupported.items() if v]
    if bad:
        raise ResnetteError(f"aug_transforms({bad[0]}) has no resnette equivalent; resnette.book "
                            "covers flip, rotate, zoom, warp, lighting and min_scale")
    cfg = AugmentConfig(min_scale=min_scale, do_flip=do_flip, max_rotate=max_rotate * mult,
                        min_zoom=min_zoom, max_zoom=max_zoom, max_warp=max_warp * mult,
                        p_affine=p_affine, max_lighting=max_lighting * mult, p_lighting=p_lighting)
    return [AugTransforms(cfg, size)]


@dataclass(frozen=True)
class Normalize:
    """fastai's `Normalize.from_stats(mean, std)`: the per-channel statistics the batches are
    normalised with (without a Normalize, batches stay in [0, 1], as fastai's)."""

    mean: Sequence[float] | None = None
    std: Sequence[float] | None = None

    def __post_init__(self) -> None:
        if self.mean is None or self.std is None:
            raise ResnetteError("Normalize() without statistics is not in resnette.book; give "
                                "them: Normalize.from_stats(*imagenet_stats)")

    @classmethod
    def from_stats(cls, mean: Sequence[float], std: Sequence[float], dim: int = 1, ndim: int = 4,
                   cuda: bool = True) -> "Normalize":
        return cls([float(m) for m in mean], [float(s) for s in std])
