"""The chapter's building blocks with fastai's signatures and initialisation.

`ConvLayer(ni, nf, ks, stride, norm_type=NormType.BatchZero, act_cls=None)` and fastai's
`ResBlock(expansion, ni, nf, stride)` are written here to fastai's semantics (fastai 2.8's
layers.py), because the chapter's numbers depend on them: a ReLU ConvLayer's weights are
kaiming-uniform (`init='auto'` reads the activation's default init), a conv without an
activation keeps PyTorch's init, a conv with a bias gets N(0, 0.01) biases, and every
batchnorm starts with bias 1e-3 and weight 1 (0 for BatchZero). resnette's own
`resnette.models.ConvLayer` (what the command line trains) uses kaiming-normal and bias 0.
"""
from __future__ import annotations

from enum import Enum
from typing import Any, Callable

import torch
from torch import nn
from torch.nn.utils import spectral_norm, weight_norm

from resnette import models
from resnette.utils import ResnetteError

NormType = Enum("NormType", "Batch BatchZero Weight Spectral Instance InstanceZero")


def noop(x: Any = None, *args: Any, **kwargs: Any) -> Any:
    """fastcore's noop: returns its first argument (the chapter's identity shortcut)."""
    return x


class _PreInit(type):
    """fastcore's PrePostInitMeta, the part Module needs: nn.Module.__init__ runs before the
    class's own __init__, so a subclass may assign layers without super().__init__()."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        obj = cls.__new__(cls)
        if type(obj) is cls:
            nn.Module.__init__(obj)
            obj.__init__(*args, **kwargs)
        return obj


class Module(nn.Module, metaclass=_PreInit):
    """fastai's Module: an nn.Module whose subclasses need not call super().__init__()."""

    def __init__(self) -> None:
        pass


class Flatten(nn.Module):
    """fastai's Flatten: N,... -> N,features (`full=True`: one flat vector)."""

    def __init__(self, full: bool = False) -> None:
        super().__init__()
        self.full = full

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(-1) if self.full else x.view(x.size(0), -1)


# fastai's `__default_init__` of each activation class (layers.py), found through the MRO
_DEFAULT_INIT: list[tuple[type, Callable]] = [
    ((nn.ReLU, nn.ReLU6, nn.LeakyReLU), nn.init.kaiming_uniform_),
    ((nn.Sigmoid, nn.Tanh), nn.init.xavier_uniform_)]


def _init_linear(m: nn.Module, act: nn.Module | None, init: Any = "auto",
                 bias_std: float = 0.01) -> None:
    """fastai's init_linear: bias ~ N(0, bias_std) (0 if bias_std == 0); weight by `init`
    ("auto": the activation's default init; none known: PyTorch's own, left as is)."""
    if getattr(m, "bias", None) is not None and bias_std is not None:
        if bias_std != 0:
            nn.init.normal_(m.bias, 0, bias_std)
        else:
            nn.init.zeros_(m.bias)
    if init == "auto":
        init = next((f for classes, f in _DEFAULT_INIT if isinstance(act, classes)), None)
    if callable(init):
        init(m.weight)


def _norm(kind: str, nf: int, ndim: int, zero: bool) -> nn.Module:
    """fastai's _get_norm: bias 1e-3, weight 0 (zero) or 1; InstanceNorm is affine."""
    norm = getattr(nn, f"{kind}{ndim}d")(nf, **({"affine": True} if kind == "InstanceNorm" else {}))
    with torch.no_grad():
        norm.bias.fill_(1e-3)
        norm.weight.fill_(0.0 if zero else 1.0)
    return norm


class ConvLayer(nn.Sequential):
    """fastai's ConvLayer: conv (no bias before a norm), then norm, then activation
    (`bn_1st=False`: activation first), with fastai's initialisation (module docstring)."""

    def __init__(self, ni: int, nf: int, ks: int = 3, stride: int = 1, padding: int | None = None,
                 bias: bool | None = None, ndim: int = 2,
                 norm_type: NormType | None = NormType.Batch,
                 bn_1st: bool = True, act_cls: Callable[[], nn.Module] | None = nn.ReLU,
                 transpose: bool = False, init: Any = "auto", xtra: nn.Module | None = None,
                 bias_std: float = 0.01, **kwargs: Any) -> None:
        if ndim not in (1, 2, 3):
            raise ResnetteError(f"ConvLayer: ndim must be 1, 2 or 3, got {ndim}")
        if padding is None:
            padding = (ks - 1) // 2 if not transpose else 0
        bn = norm_type in (NormType.Batch, NormType.BatchZero)
        inn = norm_type in (NormType.Instance, NormType.InstanceZero)
        if bias is None:
            bias = not (bn or inn)
        conv_cls = getattr(nn, f"Conv{'Transpose' if transpose else ''}{ndim}d")
        conv = conv_cls(ni, nf, kernel_size=ks, bias=bias, stride=stride, padding=padding, **kwargs)
        # fastai's act_cls(); ReLU in place, as resnette's own layers (the same numbers, one
        # activation-sized allocation less per layer: memory traffic dominates on a CPU)
        act = (None if act_cls is None else
               nn.ReLU(inplace=True) if act_cls is nn.ReLU else act_cls())
        _init_linear(conv, act, init, bias_std)
        if norm_type == NormType.Weight:
            conv = weight_norm(conv)
        elif norm_type == NormType.Spectral:
            conv = spectral_norm(conv)
        act_bn: list[nn.Module] = [act] if act is not None else []
        if bn or inn:
            zero = norm_type in (NormType.BatchZero, NormType.InstanceZero)
            act_bn.append(_norm("BatchNorm" if bn else "InstanceNorm", nf, ndim, zero))
        if bn_1st:
            act_bn.reverse()
        super().__init__(conv, *act_bn, *([xtra] if xtra else []))


class ResBlock(Module):
    """fastai's ResBlock(expansion, ni, nf, stride): act(convpath(x) + idpath(x)), where the
    conv path ends in a BatchZero ConvLayer without activation and the identity path is a
    ceil-mode average pool (stride != 1) then a 1x1 ConvLayer (channels change)."""

    def __init__(self, expansion: int, ni: int, nf: int, stride: int = 1, groups: int = 1,
                 reduction: int | None = None, nh1: int | None = None, nh2: int | None = None,
                 dw: bool = False, g2: int = 1, sa: bool = False, sym: bool = False,
                 norm_type: NormType = NormType.Batch, act_cls: Callable[..., nn.Module] = nn.ReLU,
                 ndim: int = 2, ks: int = 3, pool: Callable[..., nn.Module] | None = None,
                 pool_first: bool = True, **kwargs: Any) -> None:
        if reduction or sa or sym:
            raise ResnetteError("ResBlock(reduction=/sa=) is not in resnette.book; resnette.models."
                                "ResBlock(se=True, sa=True) has squeeze-excitation and "
                                "self-attention")
        norm2 = {NormType.Batch: NormType.BatchZero,
                 NormType.Instance: NormType.InstanceZero}.get(norm_type, norm_type)
        nh2 = nf if nh2 is None else nh2
        nh1 = nh2 if nh1 is None else nh1
        nf, ni = nf * expansion, ni * expansion
        k0 = dict(norm_type=norm_type, act_cls=act_cls, ndim=ndim, **kwargs)
        k1 = dict(norm_type=norm2, act_cls=None, ndim=ndim, **kwargs)
        if expansion == 1:
            convpath = [ConvLayer(ni, nh2, ks, stride=stride, groups=ni if dw else groups, **k0),
                        ConvLayer(nh2, nf, ks, groups=g2, **k1)]
        else:
            convpath = [ConvLayer(ni, nh1, 1, **k0),
                        ConvLayer(nh1, nh2, ks, stride=stride, groups=nh1 if dw else groups, **k0),
                        ConvLayer(nh2, nf, 1, groups=g2, **k1)]
        self.convpath = nn.Sequential(*convpath)
        idpath: list[nn.Module] = []
        if ni != nf:
            idpath.append(ConvLayer(ni, nf, 1, act_cls=None, ndim=ndim, **kwargs))
        if stride != 1:
            pooling = pool or (lambda ks, ndim, ceil_mode: getattr(nn, f"AvgPool{ndim}d")(
                ks, ceil_mode=ceil_mode))
            idpath.insert(0 if pool_first else 1, pooling(stride, ndim=ndim, ceil_mode=True))
        self.idpath = nn.Sequential(*idpath)
        self.act = nn.ReLU(inplace=True) if act_cls is nn.ReLU else act_cls()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.convpath(x) + self.idpath(x))


def _xresnet(name: str) -> Callable[..., nn.Module]:
    def build(pretrained: bool = False, n_out: int = 1000, c_in: int = 3, p: float = 0.0,
              act_cls: Any = nn.ReLU, sa: bool = False, widen: float = 1.0,
              stem_szs: tuple = (32, 32, 64), **kwargs: Any) -> nn.Module:
        if pretrained or kwargs:
            what = "pretrained=True (resnette trains from scratch)" if pretrained else \
                f"{next(iter(kwargs))}="
            raise ResnetteError(f"{name}({what}) is not in resnette.book; it takes n_out, c_in, p, "
                                "act_cls, sa, widen, stem_szs")
        return models.create_model(name, n_out=n_out, c_in=c_in, p=p, act=act_cls, sa=sa,
                                    widen=widen, stem=tuple(stem_szs))
    build.__name__ = build.__qualname__ = name
    build.__doc__ = (f"fastai's {name}(n_out=...): resnette's XResNet (resnette.models), fastai's "
                     "design, parameter count and init_cnn initialisation.")
    return build


xresnet18, xresnet34, xresnet50, xresnet101, xresnet152 = (
    _xresnet(f"xresnet{d}") for d in (18, 34, 50, 101, 152))
