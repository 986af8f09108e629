"""Weights in timm's and fastai's names: the same tensors, other module paths.

timm's `resnet*d` (ResNet-D: the deep 32-32-64 stem, average pooling in the downsampling
shortcut; "Bag of Tricks", He et al. 2018) and fastai's `xresnet*` are the chapter's
XResNet, module for module, so a trained model moves between the three by renaming keys:

    ours                          timm (resnet18d)          fastai (xresnet18)
    stem.0.0 / .0.1               conv1.0 / conv1.1         0.0 / 0.1
    stem.1.0 / .1.1               conv1.3 / conv1.4         1.0 / 1.1
    stem.2.0 / .2.1               conv1.6 / bn1             2.0 / 2.1
    stage2.0.convs.1.0 / .1.1     layer2.0.conv2 / .bn2     5.0.convpath.1.0 / .1.1
    stage2.0.shortcut.1.0 / .1.1  layer2.0.downsample.1/.2  5.0.idpath.1.0 / .1.1
    stage1.0.convs.3.excite.0.0   (no SE ResNeXt-D here)    4.0.convpath.3.layers.1.0
    head.3                        fc                        11

Where they differ, nothing of ours is renamed: the chapter nets (`resblock_cnn`, ...) and
the bottleneck 18/34 have no named counterpart; `--act mish|silu` computes other functions
than their ReLU defaults; `--sa` is fastai's self-attention with a spectral-normalised
convolution (ours is plain, timm has none); `--blur` downsamples where neither does. Those
are refused in one line. Initialisation differs (timm: Kaiming fan-out; fastai: batchnorm
beta 1e-3) but is not in the weights. Checked against timm 1.0.31 and fastai 2.8.12
(tests/test_interop.py; the records in tests/data/ say how they were made).
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import torch

from resnette.models.layers import BlurPool, SimpleSelfAttention
from resnette.models.weights import check_weights
from resnette.files import check_regular_file, load_torch
from resnette.utils import ResnetteError

# our architecture -> the counterpart's model name (timm.create_model / fastai's function)
COUNTERPARTS: dict[str, dict[str, str]] = {
    "timm": {"xresnet18": "resnet18d", "xresnet34": "resnet34d", "xresnet50": "resnet50d",
             "xresnet101": "resnet101d", "xresnet152": "resnet152d",
             "xresnext50": "resnext50d_32x4d"},
    "fastai": {"xresnet18": "xresnet18", "xresnet34": "xresnet34", "xresnet50": "xresnet50",
               "xresnet101": "xresnet101", "xresnet152": "xresnet152",
               "xresnext50": "xresnext50", "xse_resnext50": "xse_resnext50"},
}
FORMATS = tuple(COUNTERPARTS)

# (our pattern, theirs), applied in order to each key; the first that matches renames it
_BLOCK = r"stage(\d)\.(\d+)\."
_TIMM = [
    (r"^stem\.0\.(\d)\.", r"conv1.\1."),
    (r"^stem\.1\.0\.", "conv1.3."), (r"^stem\.1\.1\.", "conv1.4."),
    (r"^stem\.2\.0\.", "conv1.6."), (r"^stem\.2\.1\.", "bn1."),
    (rf"^{_BLOCK}convs\.(\d)\.0\.", lambda m: f"layer{m[1]}.{m[2]}.conv{int(m[3]) + 1}."),
    (rf"^{_BLOCK}convs\.(\d)\.1\.", lambda m: f"layer{m[1]}.{m[2]}.bn{int(m[3]) + 1}."),
    # timm's downsample is (pool or Identity, conv, bn) even when it does not pool
    (rf"^{_BLOCK}shortcut\.\d\.0\.", r"layer\1.\2.downsample.1."),
    (rf"^{_BLOCK}shortcut\.\d\.1\.", r"layer\1.\2.downsample.2."),
    (r"^head\.3\.", "fc."),
]
_FASTAI = [
    (r"^stem\.(\d)\.", r"\1."),                      # stem ConvLayers are items 0-2, then MaxPool 3
    (rf"^{_BLOCK}convs\.(\d)\.excite\.(\d)\.",
     lambda m: f"{int(m[1]) + 3}.{m[2]}.convpath.{m[3]}.layers.{int(m[4]) + 1}."),
    (rf"^{_BLOCK}convs\.", lambda m: f"{int(m[1]) + 3}.{m[2]}.convpath."),
    (rf"^{_BLOCK}shortcut\.", lambda m: f"{int(m[1]) + 3}.{m[2]}.idpath."),
    (r"^head\.3\.", "11."),                          # after AdaptiveAvgPool, Flatten, Dropout
]
_RULES = {"timm": _TIMM, "fastai": _FASTAI}


def counterpart(fmt: str, arch: str, act: str = "relu", sa: bool = False,
                blur: bool = False) -> str:
    """The name of `arch`'s exact counterpart in `fmt`, or one line saying why there is none."""
    if fmt not in COUNTERPARTS:
        raise ResnetteError(f"unknown weights format {fmt!r}; choose one of {', '.join(FORMATS)}")
    names = COUNTERPARTS[fmt]
    if arch not in names:
        raise ResnetteError(f"{arch} has no exact {fmt} counterpart ({fmt} names map "
                            f"{', '.join(names)}); export it as safetensors or onnx instead")
    if act != "relu":
        raise ResnetteError(f"{fmt}'s {names[arch]} uses ReLU and this model uses {act}: its "
                            "weights would compute something else there; export as safetensors")
    if sa or blur:
        why = ("self-attention (fastai's has a spectral-normalised convolution, timm has none)"
               if sa else "blur-pool downsampling (placed where neither library places it)")
        raise ResnetteError(f"this {arch} has {why}, so it does not map exactly onto {fmt}'s "
                            f"{names[arch]}; export as safetensors or onnx")
    return names[arch]


def renames(keys: Iterable[str], fmt: str) -> dict[str, str]:
    """Our state-dict key -> `fmt`'s, for every key of one of our XResNets."""
    out = {}
    for key in keys:
        for pattern, repl in _RULES[fmt]:
            new, n = re.subn(pattern, repl, key, count=1)
            if n:
                out[key] = new
                break
        else:
            raise ResnetteError(f"no {fmt} name for the weight {key!r}")
    return out


def to_format(state: dict[str, torch.Tensor], fmt: str) -> dict[str, torch.Tensor]:
    """Our state dict with `fmt`'s names (same tensors, same order)."""
    names = renames(state, fmt)
    return {names[k]: v for k, v in state.items()}


def from_format(model: torch.nn.Module, tensors: dict[str, torch.Tensor], fmt: str,
                source: str, head_may_differ: bool = False) -> dict[str, torch.Tensor]:
    """`fmt`-named tensors renamed to `model`'s keys, checked to be exactly its weights (every
    key, every shape; with `head_may_differ` the final linear layer may have other classes)."""
    own = model.state_dict()
    ours = {theirs: k for k, theirs in renames(own, fmt).items()}
    missing = sorted(set(ours) - set(tensors))
    unexpected = sorted(set(tensors) - set(ours))
    if missing or unexpected:
        raise ResnetteError(f"{source} does not fit this model in {fmt}'s names (missing "
                            f"{missing[:2]}, unexpected {unexpected[:2]}); check --arch")
    head = {k for k in own if k.startswith("head.3.")} if head_may_differ else set()
    for theirs, k in ours.items():
        if tuple(tensors[theirs].shape) != tuple(own[k].shape) and k not in head:
            raise ResnetteError(f"{source}: {theirs} is {tuple(tensors[theirs].shape)} there and "
                                f"{tuple(own[k].shape)} here; check --arch and the image channels")
    renamed = {ours[t]: v for t, v in tensors.items()}
    check_weights(renamed, own, source)
    return renamed


def detect(keys: Iterable[str]) -> str | None:
    """"timm" or "fastai" when the names are theirs (ours never contain these), else None."""
    keys = list(keys)
    if any(k.startswith("layer1.") for k in keys) and "fc.weight" in keys:
        return "timm"
    if any(".convpath." in k for k in keys):
        return "fastai"
    return None


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors from a .safetensors file, or a .pth/.pt/.bin read with torch.load(weights_only=
    True) (a bare state dict, or one under "model" as fastai's `learn.save` writes it, or
    "state_dict" as timm's train script does). Pickled code is refused, never run."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        check_regular_file(path, "weights file")   # safetensors' open would block on a FIFO
        try:
            return load_file(str(path))
        except Exception as e:   # safetensors' own error types vary by version
            raise ResnetteError(f"cannot read {path} as safetensors ({e})") from None
    obj = load_torch(path, "weights file")   # any bytes: one line (resnette/files)
    for key in ("model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ResnetteError(f"{path} holds no state dict (a dict of tensors)")
    return obj


def read_foreign(source: str | Path, model: torch.nn.Module, arch: str) -> dict | None:
    """`--init-from`'s timm or fastai file as `model`'s state dict (the final layer may have
    other classes); None when `source` is resnette's own (a run folder, our safetensors)."""
    path = Path(source)
    if not path.is_file() or path.suffix not in (".safetensors", ".pth", ".pt", ".bin"):
        return None
    if path.suffix == ".safetensors":
        from safetensors import safe_open
        try:
            with safe_open(str(path), framework="pt") as f:
                if detect(f.keys()) is None:
                    return None   # ours: load_trained reads it, with its config and classes
        except Exception:   # unreadable: load_trained says so in its words
            return None
    tensors = read_state_dict(path)
    fmt = detect(tensors)
    if fmt is None:
        raise ResnetteError(f"{path} names its weights neither as timm nor as fastai does (e.g. "
                            f"{next(iter(tensors), 'nothing')!r}); --init-from takes a resnette "
                            "run folder or .safetensors, or a timm/fastai state dict")
    kinds = {type(m) for m in model.modules()}
    act = next((name for name, cls in (("mish", torch.nn.Mish), ("silu", torch.nn.SiLU))
                if cls in kinds), "relu")
    counterpart(fmt, arch, act, SimpleSelfAttention in kinds, BlurPool in kinds)
    return from_format(model, tensors, fmt, str(path), head_may_differ=True)
