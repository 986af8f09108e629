"""ResBlock and XResNet: the chapter's "bag of tricks" ResNet (He et al. 2018), with the
Imagenette leaderboard's extras as options instead of copied classes.

Vocabulary (timm's): a model is a `stem`, four `stage`s of ResBlocks, and a `head`.
The design and the parameter counts follow fastai 2.8's XResNet exactly.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Sequence

import torch
from torch import nn

from resnette.models.layers import (BlurPool, ConvLayer, SimpleSelfAttention, SqueezeExcite,
                                    init_cnn, make_act, pool_head)
from resnette.models.registry import register
from resnette.utils import ResnetteError


class ResBlock(nn.Module):
    """x -> act(convs(x) + shortcut(x)), with `ni` input and `nf` output channels.

    - `expansion=1`: two 3x3 ConvLayers. `expansion>1`: the bottleneck 1x1 -> 3x3 -> 1x1 whose
      middle width is nf // expansion (1x1 convolutions are cheap, so the block can afford 4x
      more channels in and out for the same time).
    - The last ConvLayer has no activation and its batchnorm gamma starts at 0, so at
      initialisation the block is act(shortcut(x)): the identity on non-negative input.
    - The shortcut is the identity when shapes match; otherwise it averages 2x2 patches (stride
      2, ceil mode, so odd sizes keep their last row) and/or maps channels with a 1x1 ConvLayer
      without activation: the simplest convolution, to stay as close to identity as possible.
    - `groups`/`width`: ResNeXt grouped 3x3 convolution and its inner width; `se`: a
      squeeze-excitation gate on the conv path; `sa`: simple self-attention on the conv path;
      `blur`: anti-aliased (blur-pool) downsampling in both paths.
    """

    def __init__(self, ni: int, nf: int, stride: int = 1, expansion: int = 1, groups: int = 1,
                 width: int | None = None, act: str | type[nn.Module] | None = "relu",
                 se: bool = False, sa: bool = False, blur: bool = False):
        super().__init__()
        nh = width if width is not None else nf // expansion
        if nh % groups or (expansion == 1 and ni % groups):
            raise ResnetteError(f"groups={groups} must divide the block's channels ({ni} in, "
                                f"{nh} wide); choose groups that divides 64 * widen")
        if expansion == 1:
            convs = [ConvLayer(ni, nh, 3, stride=stride, groups=groups, act=act, blur=blur),
                     ConvLayer(nh, nf, 3, norm="batch_zero", act=None)]
        else:
            convs = [ConvLayer(ni, nh, 1, act=act),
                     ConvLayer(nh, nh, 3, stride=stride, groups=groups, act=act, blur=blur),
                     ConvLayer(nh, nf, 1, norm="batch_zero", act=None)]
        if se:
            convs.append(SqueezeExcite(nf, act=act))
        if sa:
            convs.append(SimpleSelfAttention(nf))
        self.convs = nn.Sequential(*convs)
        shortcut: list[nn.Module] = []
        if stride != 1:
            shortcut.append(BlurPool(ni, stride) if blur else nn.AvgPool2d(stride, ceil_mode=True))
        if ni != nf:
            shortcut.append(ConvLayer(ni, nf, 1, act=None))
        self.shortcut = nn.Sequential(*shortcut)   # empty Sequential = identity
        self.act = make_act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.convs(x) + self.shortcut(x))


def xresnet_stem(c_in: int, sizes: Sequence[int] = (32, 32, 64), act: Any = "relu",
                 blur: bool = False) -> nn.Sequential:
    """Plain 3x3 ConvLayers (the first at stride 2) then a 3x3 stride-2 max pool.

    The early layers do most of the computation (they see the largest grids), so they are
    kept as simple and cheap as possible: plain convolutions, not ResBlocks.
    """
    szs = [c_in, *sizes]
    layers: list[nn.Module] = [ConvLayer(szs[i], szs[i + 1], 3, stride=2 if i == 0 else 1, act=act)
                               for i in range(len(sizes))]
    if blur:   # "MaxBlurPool": max at stride 1, then blur and subsample
        layers += [nn.MaxPool2d(3, stride=1, padding=1), BlurPool(szs[-1], 2)]
    else:
        layers.append(nn.MaxPool2d(3, stride=2, padding=1))
    return nn.Sequential(*layers)


class XResNet(nn.Sequential):
    """stem -> stage1..stage4 -> head. Stage i has `layers[i]` ResBlocks; every stage but the
    first starts with a stride-2 block (the first follows the stem's max pool).

    Stage widths are (64, 128, 256, 512) * widen * expansion. `p` is the dropout before the
    head's linear layer. With `sa=True` the last block of the first stage gets simple
    self-attention (where fastai puts it). `groups > 1` makes it a ResNeXt: the 3x3
    convolutions are grouped and widened to floor(width * base_width / 64) * groups.
    """

    def __init__(self, layers: Sequence[int], expansion: int = 1, n_out: int = 1000, c_in: int = 3,
                 stem: Sequence[int] = (32, 32, 64), widen: float = 1.0, p: float = 0.0,
                 act: str | type[nn.Module] | None = "relu", se: bool = False, sa: bool = False,
                 groups: int = 1, base_width: int = 4, blur: bool = False):
        if widen <= 0:
            raise ResnetteError(f"widen must be positive, got {widen}")
        widths = [int(w * widen) * expansion for w in (64, 128, 256, 512)]
        parts: list[tuple[str, nn.Module]] = [("stem", xresnet_stem(c_in, stem, act, blur))]
        ni = stem[-1]
        for i, (n_blocks, nf) in enumerate(zip(layers, widths)):
            inner = nf // expansion
            width = (inner * base_width // 64) * groups if groups > 1 else inner
            blocks = [ResBlock(ni if j == 0 else nf, nf, stride=2 if (i > 0 and j == 0) else 1,
                               expansion=expansion, groups=groups, width=width, act=act, se=se,
                               sa=sa and i == 0 and j == n_blocks - 1, blur=blur)
                      for j in range(n_blocks)]
            parts.append((f"stage{i + 1}", nn.Sequential(*blocks)))
            ni = nf
        parts.append(("head", pool_head(ni, n_out, p)))
        super().__init__(OrderedDict(parts))
        init_cnn(self)
        # init_cnn re-initialises every conv, so zero-init gammas (batchnorms) stay as built.


def _xresnet(layers: Sequence[int], expansion: int, n_out: int, c_in: int, **kwargs: Any) -> XResNet:
    return XResNet(layers, expansion, n_out=n_out, c_in=c_in, **kwargs)


# ---- the named architectures: each only chooses arguments ----

@register
def xresnet18(n_out: int = 1000, c_in: int = 3, **kwargs: Any) -> XResNet:
    return _xresnet([2, 2, 2, 2], 1, n_out, c_in, **kwargs)


@register
def xresnet34(n_out: int = 1000, c_in: int = 3, **kwargs: Any) -> XResNet:
    return _xresnet([3, 4, 6, 3], 1, n_out, c_in, **kwargs)


@register
def xresnet50(n_out: int = 1000, c_in: int = 3, **kwargs: Any) -> XResNet:
    return _xresnet([3, 4, 6, 3], 4, n_out, c_in, **kwargs)


@register
def xresnet101(n_out: int = 1000, c_in: int = 3, **kwargs: Any) -> XResNet:
    return _xresnet([3, 4, 23, 3], 4, n_out, c_in, **kwargs)


@register
def xresnet152(n_out: int = 1000, c_in: int = 3, **kwargs: Any) -> XResNet:
    return _xresnet([3, 8, 36, 3], 4, n_out, c_in, **kwargs)


@register
def xresnet18_bottleneck(n_out: int = 1000, c_in: int = 3, **kwargs: Any) -> XResNet:
    """ResNet-18's depths with bottleneck blocks: the chapter finds this works better."""
    return _xresnet([2, 2, 2, 2], 4, n_out, c_in, **kwargs)


@register
def xresnet34_bottleneck(n_out: int = 1000, c_in: int = 3, **kwargs: Any) -> XResNet:
    return _xresnet([3, 4, 6, 3], 4, n_out, c_in, **kwargs)


@register
def xresnext50(n_out: int = 1000, c_in: int = 3, **kwargs: Any) -> XResNet:
    """ResNeXt-50 32x4d on the XResNet stem."""
    return _xresnet([3, 4, 6, 3], 4, n_out, c_in, **{"groups": 32, **kwargs})


@register
def xse_resnext50(n_out: int = 1000, c_in: int = 3, **kwargs: Any) -> XResNet:
    """The Imagenette leaderboard's backbone; add act="mish", sa=True, blur=True for its tricks."""
    return _xresnet([3, 4, 6, 3], 4, n_out, c_in, **{"groups": 32, "se": True, **kwargs})
