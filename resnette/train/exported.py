"""`load_learner`: a Learner rebuilt from what `learn.export()` wrote (train/export.py): the
architecture from resnette's registry, the weights from safetensors, the classes and the
normalisation from TOML. Nothing in those files can run code.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from ..utils import ResnetteError
from .checkpoints import check_compatible
from .export import FORMAT, read_safetensors
from .learner import Learner


@dataclass
class ExportedData:
    """What an exported Learner knows of its data: the classes and the normalisation
    (no images: give `get_preds` a loader, or `predict` normalised tensors)."""

    vocab: list[str]
    names: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    channels: int
    size: int
    train: Any = None
    valid: Any = None

    @property
    def c(self) -> int:
        return len(self.vocab)


def load_learner(path: str | Path, cpu: bool = True):
    """fastai's: the Learner `learn.export()` wrote (its folder, or a file in it), ready to
    predict on the CPU (`cpu=False`: the GPU when there is one)."""
    from ..models import create_model
    folder = Path(path)
    folder = folder.parent if folder.is_file() else folder
    try:
        info = tomllib.loads((folder / "learner.toml").read_text("utf-8"))
    except FileNotFoundError:
        raise ResnetteError(f"{folder} is not a resnette export (no learner.toml); write one "
                            "with learn.export()") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ResnetteError(f"{folder / 'learner.toml'} is damaged ({e})") from None
    if info.get("format") != FORMAT:
        raise ResnetteError(f"{folder} is not a resnette export ({FORMAT} expected)")
    arch = dict(info["arch"])
    model = create_model(arch.pop("name"), **arch)
    weights, _ = read_safetensors(folder / "model.safetensors")
    check_compatible(model, weights, str(folder / "model.safetensors"))
    model.load_state_dict(weights)
    d = info["data"]
    dls = ExportedData(d["vocab"], d["names"], tuple(d["mean"]), tuple(d["std"]),
                       d["channels"], d["size"])
    if not cpu and torch.cuda.is_available():   # the Learner takes its device from dls.train
        dls.train = SimpleNamespace(device="cuda")
    return Learner(dls, model, metrics=info["learner"]["metrics"], quiet=True,
                   precision="fp32" if cpu else "auto")
