"""The chapter's building blocks: ConvLayer, the pooled head, and the leaderboard's extras.

Everything here is a plain `nn.Module`; none of it knows about training. The extras
(squeeze-excitation, simple self-attention, blur pooling, Mish) are the tweaks that the
Imagenette leaderboard's best entries added to the XResNet of the chapter.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from resnette.utils import ResnetteError

# Activations by name, so configs and the command line can say act="mish". ReLU and Mish run
# in place: the tensor they overwrite is a fresh batchnorm output nobody else reads, and in
# place saves one activation-sized allocation per layer (memory traffic dominates on a CPU).
ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "mish": nn.Mish, "silu": nn.SiLU}
NORMS = ("batch", "batch_zero", None)


def make_act(act: str | type[nn.Module] | None) -> nn.Module | None:
    """An activation module from a name ("relu", "mish", "silu"), a module class, or None."""
    if act is None:
        return None
    if isinstance(act, str):
        if act.lower() not in ACTIVATIONS:
            raise ResnetteError(f"unknown activation {act!r}; choose one of {sorted(ACTIVATIONS)}")
        act = ACTIVATIONS[act.lower()]
    try:
        return act(inplace=True)
    except TypeError:  # activations such as nn.Sigmoid have no in-place variant
        return act()


class BlurPool(nn.Module):
    """Downsample by `stride` after a fixed [1,2,1] x [1,2,1] blur ("Making convolutional
    networks shift-invariant again", Zhang 2019): striding without blurring first aliases, so
    a one-pixel shift of the input can change the output a lot.

    The kernel is a non-persistent buffer: it has no parameters and is not in the state dict.
    The output size is ceil(size / stride), the same as `nn.AvgPool2d(2, ceil_mode=True)`.
    """

    def __init__(self, channels: int, stride: int = 2):
        super().__init__()
        self.channels, self.stride = channels, stride
        row = torch.tensor([1.0, 2.0, 1.0])
        kernel = (row[:, None] * row[None, :]) / 16
        self.register_buffer("kernel", kernel.expand(channels, 1, 3, 3).clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Replicate padding works for every input size, even a 1x1 grid (reflect would not).
        x = F.pad(x, (1, 1, 1, 1), mode="replicate")
        return F.conv2d(x, self.kernel.to(x.dtype), stride=self.stride, groups=self.channels)


class ConvLayer(nn.Sequential):
    """Convolution, then batchnorm, then activation: the chapter's (and fastai's) ConvLayer.

    - `norm="batch_zero"` starts the batchnorm's gamma at 0, so the layer outputs exactly 0 at
      initialisation: the trick that makes a ResBlock start as the identity.
    - The convolution has no bias when a batchnorm follows (the norm's beta does that job).
    - `blur=True` with stride 2 convolves at stride 1 and downsamples with a BlurPool after
      the activation (anti-aliased downsampling); it costs 4x the convolution's compute.
    """

    def __init__(self, ni: int, nf: int, ks: int = 3, stride: int = 1, norm: str | None = "batch",
                 act: str | type[nn.Module] | None = "relu", groups: int = 1, blur: bool = False):
        if norm not in NORMS:
            raise ResnetteError(f"unknown norm {norm!r}; choose one of {NORMS}")
        conv_stride = 1 if blur and stride > 1 else stride
        layers: list[nn.Module] = [nn.Conv2d(ni, nf, ks, stride=conv_stride, padding=ks // 2,
                                             groups=groups, bias=norm is None)]
        if norm is not None:
            bn = nn.BatchNorm2d(nf)
            nn.init.constant_(bn.weight, 0.0 if norm == "batch_zero" else 1.0)
            layers.append(bn)
        activation = make_act(act)
        if activation is not None:
            layers.append(activation)
        if conv_stride != stride:
            layers.append(BlurPool(nf, stride))
        super().__init__(*layers)
        # fastai's ConvLayer: Kaiming init where a ReLU-like activation follows; a conv with no
        # activation (a ResBlock's last conv, its 1x1 shortcut) keeps PyTorch's default init.
        # With Adam and a batchnorm after it, a weight's scale sets its effective step size,
        # so this matters for matching the chapter's numbers.
        if activation is not None:
            nn.init.kaiming_normal_(layers[0].weight)


def pool_head(ni: int, n_out: int, p: float = 0.0) -> nn.Sequential:
    """The fully convolutional head: average the grid to one vector per image (any input size
    works), drop out with probability `p`, then a linear layer to the classes."""
    if not 0.0 <= p < 1.0:
        raise ResnetteError(f"dropout p must be in [0, 1), got {p}")
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(p), nn.Linear(ni, n_out))


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018): a per-channel gate in (0, 1) computed from the
    whole image's average, so a block can turn channels up or down depending on the content.

    The hidden width is ch/reduction rounded up to a multiple of 8, as fastai's SEModule does.
    """

    def __init__(self, ch: int, reduction: int = 16, act: str | type[nn.Module] | None = "relu"):
        super().__init__()
        hidden = math.ceil(ch // reduction / 8) * 8
        self.squeeze = nn.AdaptiveAvgPool2d(1)
        self.excite = nn.Sequential(ConvLayer(ch, hidden, ks=1, norm=None, act=act),
                                    ConvLayer(hidden, ch, ks=1, norm=None, act=nn.Sigmoid))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.excite(self.squeeze(x))


class SimpleSelfAttention(nn.Module):
    """Simple self-attention (from the Imagenette leaderboard's "SSA"): o = gamma * (x xT) W x + x,
    with x the N x C x (H*W) activations and W a 1x1 convolution over channels.

    `gamma` starts at 0, so the layer is the identity at initialisation and learns how much
    attention to mix in. Unlike fastai we do not apply spectral normalisation to W; gamma
    already starts the layer switched off, and plain weights keep ONNX export simple.
    """

    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv1d(ch, ch, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        flat = x.reshape(n, c, h * w)          # reshape, not view: x may be channels-last
        convx = self.conv(flat)
        xxt = torch.bmm(flat, flat.transpose(1, 2))
        out = self.gamma * torch.bmm(xxt, convx) + flat
        return out.reshape(n, c, h, w)


def init_cnn(module: nn.Module) -> None:
    """Kaiming-normal weights for every convolution and linear layer, zero biases (fastai's
    init_cnn). Batchnorm weights are left alone so zero-initialised gammas stay zero."""
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight)
        if getattr(m, "bias", None) is not None:
            nn.init.zeros_(m.bias)
