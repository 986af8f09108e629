"""The chapter's three fully convolutional nets, before XResNet.

Each is five stride-2 blocks 3-16-32-64-128-256 then the pooled head; only `block` changes:
    simple_cnn      a plain ConvLayer (the chapter's first fully convolutional net, 65.9%)
    resblock_cnn    a stride-2 ResBlock (66.8%: "not much better")
    resblock2_cnn   a stride-2 ResBlock then a stride-1 one: twice as deep (69.3%)
"""
from __future__ import annotations

from typing import Any, Callable

from torch import nn

from resnette.models.layers import ConvLayer, pool_head
from resnette.models.registry import register
from resnette.models.xresnet import ResBlock

CHANNELS = (16, 32, 64, 128, 256)
Block = Callable[[int, int], nn.Module]


def fully_conv_net(block: Block, n_out: int, c_in: int = 3, p: float = 0.0) -> nn.Sequential:
    """Five `block(ni, nf)`s halving the grid each time, then average pool, flatten, linear.

    The average pool is what makes it fully convolutional: it turns any grid into one vector
    per image, so the same weights work at 128, 160 or 224 px.
    """
    sizes = (c_in, *CHANNELS)
    blocks = [block(sizes[i], sizes[i + 1]) for i in range(len(CHANNELS))]
    # No init_cnn here: the chapter builds these nets from fastai's ConvLayers (which init
    # themselves) and a plain nn.Linear (PyTorch's default init), and its numbers come from that.
    return nn.Sequential(*blocks, *pool_head(CHANNELS[-1], n_out, p))


def _conv_block(act: Any) -> Block:
    return lambda ni, nf: ConvLayer(ni, nf, stride=2, act=act)


def _res_block(act: Any) -> Block:
    return lambda ni, nf: ResBlock(ni, nf, stride=2, act=act)


def _res_block2(act: Any) -> Block:
    return lambda ni, nf: nn.Sequential(ResBlock(ni, nf, stride=2, act=act), ResBlock(nf, nf, act=act))


@register
def simple_cnn(n_out: int = 1000, c_in: int = 3, act: Any = "relu", p: float = 0.0) -> nn.Sequential:
    return fully_conv_net(_conv_block(act), n_out, c_in, p)


@register
def resblock_cnn(n_out: int = 1000, c_in: int = 3, act: Any = "relu", p: float = 0.0) -> nn.Sequential:
    return fully_conv_net(_res_block(act), n_out, c_in, p)


@register
def resblock2_cnn(n_out: int = 1000, c_in: int = 3, act: Any = "relu", p: float = 0.0) -> nn.Sequential:
    return fully_conv_net(_res_block2(act), n_out, c_in, p)
