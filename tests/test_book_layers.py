"""resnette.book's layers: fastai's ConvLayer, ResBlock and Module, bit for bit.

Expected values come from fastai 2.8.12 (layers.py: init_linear with the activation's
__default_init__, kaiming_uniform_ for ReLU; _get_norm: batchnorm bias 1e-3, weight 0 for
BatchZero; ResBlock's layout; torch_core.py: Module's pre-init), read in its code and, for
the digests below, printed by fastai itself.
"""
import math

import pytest
import torch
from torch import nn

import resnette.book as book
from resnette.book import ConvLayer, Module, NormType, ResBlock, noop
from resnette.utils import ResnetteError


def test_module_needs_no_super_init():
    class Net(Module):
        def __init__(self, ni, nf):
            self.conv = nn.Conv2d(ni, nf, 1)
            self.shortcut = noop

        def forward(self, x):
            return self.conv(x) + self.shortcut(x)

    net = Net(4, 4)
    assert [n for n, _ in net.named_parameters()] == ["conv.weight", "conv.bias"]
    assert net(torch.zeros(1, 4, 3, 3)).shape == (1, 4, 3, 3)
    assert noop(5) == 5 and noop() is None


def test_conv_layer_is_fastais_layout_and_init():
    torch.manual_seed(0)
    layer = ConvLayer(64, 128, stride=2)
    conv, bn, act = layer
    assert conv.bias is None and conv.stride == (2, 2) and conv.padding == (1, 1)
    assert isinstance(bn, nn.BatchNorm2d) and isinstance(act, nn.ReLU)
    assert torch.all(bn.bias == 1e-3) and torch.all(bn.weight == 1)
    fan_in = 64 * 9                        # kaiming_uniform_: U(-b, b), b = sqrt(6 / fan_in)
    w = conv.weight.detach()
    assert float(w.abs().max()) <= math.sqrt(6 / fan_in)
    assert float(w.abs().max()) > 0.98 * math.sqrt(6 / fan_in)
    assert abs(float(w.std()) - math.sqrt(2 / fan_in)) < 0.02 * math.sqrt(2 / fan_in)
    zero = ConvLayer(16, 16, act_cls=None, norm_type=NormType.BatchZero)
    assert len(zero) == 2 and torch.all(zero[1].weight == 0) and torch.all(zero[1].bias == 1e-3)
    bound = 1 / math.sqrt(16 * 9)                    # no activation: PyTorch's own init
    assert float(zero[0].weight.detach().abs().max()) <= bound
    plain = ConvLayer(16, 32, ks=1, norm_type=None, bn_1st=False)
    assert plain[0].bias is not None and abs(float(plain[0].bias.detach().std()) - 0.01) < 0.005
    assert isinstance(ConvLayer(8, 8, bn_1st=False)[1], nn.ReLU)


def test_resblock_is_fastais_and_starts_as_the_shortcut():
    torch.manual_seed(0)
    rb = ResBlock(1, 16, 32, stride=2)
    assert [type(m).__name__ for m in rb.idpath] == ["AvgPool2d", "ConvLayer"]
    assert rb.idpath[0].ceil_mode
    x = torch.randn(2, 16, 9, 9)
    out = rb(x)
    assert out.shape == (2, 32, 5, 5)
    # The BatchZero layer outputs its bias, 1e-3, everywhere: act(1e-3 + shortcut(x)).
    assert torch.allclose(out, torch.relu(rb.idpath(x) + 1e-3), atol=1e-6)
    same = ResBlock(1, 64, 64)
    assert len(same.idpath) == 0
    assert sum(p.numel() for p in same.parameters()) == 2 * 64 * 64 * 9 + 2 * 2 * 64
    bottle = ResBlock(4, 16, 16)                     # fastai: ni, nf times expansion; nh = nf
    assert bottle.convpath[0][0].in_channels == 64 and bottle.convpath[1][0].out_channels == 16
    assert bottle(torch.randn(1, 64, 4, 4)).shape == (1, 64, 4, 4)


# sha256 (first 16 hex) of the state_dict (each name, then its values as float32 bytes) of each
# layer built right after torch.manual_seed(0), and the chapter net's outputs, as printed by
# fastai 2.8.12 (`from fastai.vision.all import *`) on torch 2.13.0 (CPU): the same random
# draws in the same order give the same weights, bit for bit, so these equal fastai's exactly.
FASTAI_DIGESTS = {
    "ConvLayer(64, 128, stride=2)": "630e621e3dfe0c85",
    "ConvLayer(16, 16, act_cls=None, norm_type=NormType.BatchZero)": "6cdcf5f9b334129f",
    "ConvLayer(16, 32, ks=1, norm_type=None, bn_1st=False)": "a56e8105b7703c38",
    "ResBlock(1, 16, 32, stride=2)": "94a0fcc3275d4e80",
    "ResBlock(4, 16, 16)": "3f9d4da20eb5525d",
}
FASTAI_CHAPTER_NET = ("40f1790c6937171c", [-0.33535, -0.42855, -0.02452, 0.04651])
SAME_TORCH = pytest.mark.skipif(not torch.__version__.startswith("2.13."),
                                reason="fastai's digests were taken on torch 2.13")


def digest(module: nn.Module) -> str:
    import hashlib
    h = hashlib.sha256()
    for name, value in module.state_dict().items():
        h.update(name.encode())
        h.update(value.detach().float().numpy().tobytes())
    return h.hexdigest()[:16]


@SAME_TORCH
@pytest.mark.parametrize("expr", FASTAI_DIGESTS)
def test_layers_are_fastais_bit_for_bit(expr):
    torch.manual_seed(0)
    assert digest(eval(expr)) == FASTAI_DIGESTS[expr]


@SAME_TORCH
def test_the_chapters_resblock_net_is_fastais_bit_for_bit():
    def _conv_block(ni, nf, stride):   # the chapter's code, as in the notebook
        return nn.Sequential(ConvLayer(ni, nf, stride=stride),
                             ConvLayer(nf, nf, act_cls=None, norm_type=NormType.BatchZero))

    class ChapterResBlock(Module):
        def __init__(self, ni, nf, stride=1):
            self.convs = _conv_block(ni, nf, stride)
            self.idconv = noop if ni == nf else ConvLayer(ni, nf, 1, act_cls=None)
            self.pool = noop if stride == 1 else nn.AvgPool2d(2, ceil_mode=True)

        def forward(self, x):
            return torch.relu(self.convs(x) + self.idconv(self.pool(x)))

    def block(ni, nf):
        return nn.Sequential(ChapterResBlock(ni, nf, stride=2), ChapterResBlock(nf, nf))

    torch.manual_seed(0)
    net = nn.Sequential(block(3, 16), block(16, 32), block(32, 64), block(64, 128),
                        block(128, 256), nn.AdaptiveAvgPool2d(1), book.Flatten(),
                        nn.Linear(256, 10))
    assert digest(net) == FASTAI_CHAPTER_NET[0]
    torch.manual_seed(1)
    out = net(torch.randn(4, 3, 64, 64)).sum(1).detach()     # training mode, as fastai's was
    assert [round(float(v), 5) for v in out] == FASTAI_CHAPTER_NET[1]


def test_xresnet_takes_fastais_arguments():
    model = book.xresnet18(n_out=7, c_in=1, widen=0.25)
    assert model(torch.zeros(2, 1, 32, 32)).shape == (2, 7)
    with pytest.raises(ResnetteError, match="pretrained"):
        book.xresnet50(pretrained=True)
