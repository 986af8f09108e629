"""`from resnette.book import *`: the names fastai's book chapter 14 ("ResNets") uses, on resnette.

Put it in place of the chapter's `from fastbook import *` and its cells run unchanged, on
resnette's data pipeline, models and Learner (so at resnette's speed). It is a facade over
resnette, not a copy of fastai: it covers that chapter and nothing else (docs/BOOK.md lists
the subset and every difference). A name outside it fails with one line saying so, where
fastai would have had it.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from resnette.train import LabelSmoothingCrossEntropy, accuracy

from .block import DataBlock, DataLoaders
from .data import (CategoryBlock, GrandparentSplitter, ImageBlock, Normalize, RandomSplitter,
                   Resize, URLs, aug_transforms, get_image_files, imagenet_stats, parent_label,
                   untar_data)
from .layers import (ConvLayer, Flatten, Module, NormType, ResBlock, noop, xresnet18, xresnet34,
                     xresnet50, xresnet101, xresnet152)
from .learner import CutMix, Learner, MixUp

__all__ = [
    # data
    "untar_data", "URLs", "DataBlock", "DataLoaders", "ImageBlock", "CategoryBlock",
    "get_image_files", "parent_label", "GrandparentSplitter", "RandomSplitter", "Resize",
    "aug_transforms", "Normalize", "imagenet_stats",
    # layers and models
    "nn", "F", "torch", "Module", "noop", "NormType", "Flatten", "ConvLayer", "ResBlock",
    "xresnet18", "xresnet34", "xresnet50", "xresnet101", "xresnet152",
    # training
    "Learner", "accuracy", "LabelSmoothingCrossEntropy", "MixUp", "CutMix",
]


def __getattr__(name: str) -> Any:
    """`resnette.book.X` for X outside the chapter's set: one line, not a bare AttributeError."""
    if name.startswith("__"):   # Python's own probes (__path__, __wrapped__, ...)
        raise AttributeError(name)
    raise AttributeError(f"resnette.book covers chapter 14; {name} is not in it "
                         "(see docs/BOOK.md for what is)")
