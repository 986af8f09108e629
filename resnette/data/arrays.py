"""DataLoaders over images already decoded into one uint8 array (what `folder` and `digits`
both end with): the split, the normalisation statistics and the two Loaders."""
from __future__ import annotations

import numpy as np

from resnette.data.augment import IMAGENET_MEAN, IMAGENET_STD, AugmentConfig
from resnette.data.loaders import DataLoaders, Loader
from resnette.utils import ResnetteError


def from_arrays(images: np.ndarray, labels: np.ndarray, items: list[str], is_valid: np.ndarray,
                is_train: np.ndarray, vocab: list[str], names: list[str], *, size: int, bs: int,
                seed: int = 0, device: str = "cpu", augment: bool | str = True, min_scale: float = 0.5,
                rank: int = 0, world_size: int = 1, channels_last: bool = False, prefetch: int | None = None,
                workers: int = 2, resident: bool | None = None) -> DataLoaders:
    """DataLoaders over a uint8 N,P,P,C array (a memory map or in memory) and its labels.

    `augment`: True or "chapter" (aug_transforms), "crop_flip", or False (see AugmentConfig.named)."""
    channels = images.shape[-1]
    mean = IMAGENET_MEAN if channels == 3 else (sum(IMAGENET_MEAN) / 3,)
    std = IMAGENET_STD if channels == 3 else (sum(IMAGENET_STD) / 3,)
    train_idx, valid_idx = np.flatnonzero(is_train), np.flatnonzero(is_valid)
    if len(train_idx) == 0 or len(valid_idx) == 0:
        raise ResnetteError(f"{len(train_idx)} readable training and {len(valid_idx)} validation "
                            "images; both splits need images")
    common = dict(size=size, mean=mean, std=std, seed=seed, device=device, rank=rank,
                  world_size=world_size, channels_last=channels_last, prefetch=prefetch,
                  workers=workers, resident=resident)
    try:
        aug = AugmentConfig.named(augment, min_scale)
    except ValueError as e:
        raise ResnetteError(str(e)) from None
    train = Loader(images, train_idx, labels[train_idx], [items[i] for i in train_idx], bs=bs,
                   train=True, augment=aug, **common)
    valid = Loader(images, valid_idx, labels[valid_idx], [items[i] for i in valid_idx], bs=bs,
                   train=False, **common)
    return DataLoaders(train, valid, vocab, names, channels, mean, std)
