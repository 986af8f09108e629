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

from ..data.classes import class_info, strings
from ..files import read_text
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
    info = _read_info(folder / "learner.toml")
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


def _read_info(path: Path) -> dict:
    """learner.toml, checked for what `load_learner` needs: the architecture's name and
    outputs, one class name per output (data/classes.py), the image size, the metrics."""
    try:
        info = tomllib.loads(read_text(path, "learner.toml"))
    except FileNotFoundError:
        raise ResnetteError(f"{path.parent} is not a resnette export (no learner.toml); write "
                            "one with learn.export()") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ResnetteError(f"{path} is damaged ({e})") from None
    if info.get("format") != FORMAT:
        raise ResnetteError(f"{path.parent} is not a resnette export ({FORMAT} expected)")

    def damaged(what: str) -> ResnetteError:
        return ResnetteError(f"{path} is damaged ({what}); export the Learner again")
    arch, data, learner = (info.get(k) for k in ("arch", "data", "learner"))
    if not (isinstance(arch, dict) and isinstance(arch.get("name"), str)):
        raise damaged("[arch] must name the architecture")
    n_out = arch.get("n_out", 1000)   # create_model's default, as it was when exported
    if not isinstance(n_out, int) or isinstance(n_out, bool) or n_out < 1:
        raise damaged(f"[arch] n_out must be a positive number of outputs, got {n_out!r}")
    try:
        classes = class_info(data, n_out)
    except ValueError as e:
        raise damaged(f"[data]: {e}") from None
    size = data.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise damaged(f"[data] size must be a positive number of pixels, got {size!r}")
    if not (isinstance(learner, dict) and strings(learner.get("metrics"))):
        raise damaged("[learner] metrics must be a list of metric names")
    return {**info, "data": {**classes, "size": size}}
