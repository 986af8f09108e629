"""Data: named datasets, any image folder, a decoded uint8 cache, batch augmentation, loaders.

    dls = resnette.data.folder(path, size=128, presize=160, bs=128)
    dls = resnette.data.imagenette(size=128, presize=160, bs=128)
    dls = resnette.data.get_data("imagenette-160" | "digits" | "path/to/folder", ...)
"""
from resnette.data.augment import IMAGENET_MEAN, IMAGENET_STD, AugmentConfig
from resnette.data.datasets import folder, from_arrays, get_data, imagenette, imagewoof, known_names
from resnette.data.digits import digits
from resnette.data.folders import WORDNET_NAMES, human_names
from resnette.data.loaders import DataLoaders, Loader
from resnette.data.sources import DATASETS, resnette_home, untar_data

__all__ = ["AugmentConfig", "DATASETS", "DataLoaders", "IMAGENET_MEAN", "IMAGENET_STD", "Loader",
           "WORDNET_NAMES", "digits", "folder", "from_arrays", "get_data", "human_names",
           "imagenette", "imagewoof", "known_names", "resnette_home", "untar_data"]
