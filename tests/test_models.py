"""The chapter's claims about its models, and the registry's contract."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resnette.models import (BlurPool, ConvLayer, ResBlock, SimpleSelfAttention, SqueezeExcite,
                             create_model, list_models, xresnet50)
from resnette.utils import ResnetteError

# fastai 2.8's XResNet has exactly these parameter counts with 10 outputs.
PARAM_COUNTS = {"simple_cnn": 395_674, "xresnet18": 11_200_874, "xresnet34": 21_309_034,
                "xresnet50": 23_547_754, "xresnet101": 42_539_882, "xresnet152": 58_183_530}


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("name,count", sorted(PARAM_COUNTS.items()))
def test_parameter_counts_match_the_architecture(name, count):
    assert n_params(create_model(name, n_out=10)) == count


def test_chapter_nets_and_xresnets_are_registered():
    names = list_models()
    for name in ["simple_cnn", "resblock_cnn", "resblock2_cnn", "xresnet18", "xresnet34",
                 "xresnet50", "xresnet101", "xresnet152", "xresnet18_bottleneck",
                 "xresnet34_bottleneck", "xresnext50", "xse_resnext50"]:
        assert name in names


def test_unknown_architecture_names_the_valid_ones():
    with pytest.raises(ResnetteError, match="xresnet18.*") as e:
        create_model("resnet9000", n_out=10)
    assert "resnet9000" in str(e.value) and "simple_cnn" in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("kwargs", [{"n_out": 0}, {"n_out": 10, "c_in": 0},
                                    {"n_out": 10, "sqeeze": True}, {"n_out": 10, "act": "gelu2"},
                                    {"n_out": 10, "p": 1.5}, {"n_out": 10, "groups": 7}])
def test_bad_model_options_are_user_errors(kwargs):
    with pytest.raises(ResnetteError):
        create_model("xresnet18", **kwargs)


def test_chapter_nets_check_their_options_too():
    with pytest.raises(ResnetteError):
        create_model("simple_cnn", n_out=10, p=-0.1)
    with pytest.raises(ResnetteError):
        create_model("resblock_cnn", n_out=10, se=True)     # an XResNet-only option


@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("opts", [{}, {"expansion": 4}, {"se": True, "sa": True},
                                  {"act": "mish"}, {"groups": 4, "expansion": 4, "width": 32}])
def test_zero_initialised_resblock_is_the_identity(train, opts):
    """Stride 1, same width: the last batchnorm's gamma is 0, so convs(x) == 0 and the block
    returns act(x), which is x for non-negative x (ReLU; Mish only approximately)."""
    torch.manual_seed(0)
    block = ResBlock(64, 64, stride=1, **opts).train(train)
    x = torch.rand(4, 64, 9, 9)           # non-negative, like the output of a previous ReLU
    with torch.no_grad():
        out = block(x)
    if opts.get("act") == "mish":
        torch.testing.assert_close(out, F.mish(x))
    else:
        assert torch.equal(out, x)


def test_changing_resblock_is_not_the_identity_but_keeps_shapes():
    block = ResBlock(32, 64, stride=2)
    assert isinstance(block.shortcut[0], nn.AvgPool2d) and block.shortcut[0].ceil_mode
    assert isinstance(block.shortcut[1], ConvLayer) and len(block.shortcut[1]) == 2  # no act
    out = block(torch.rand(2, 32, 15, 15))
    assert out.shape == (2, 64, 8, 8)      # ceil mode keeps the odd row and column


def test_bottleneck_is_one_quarter_width():
    block = ResBlock(256, 256, expansion=4)
    widths = [layer[0].out_channels for layer in block.convs]
    kernels = [layer[0].kernel_size for layer in block.convs]
    assert widths == [64, 64, 256] and kernels == [(1, 1), (3, 3), (1, 1)]
    model = xresnet50(n_out=10)
    first = model.stage1[0]
    assert [layer[0].out_channels for layer in first.convs] == [64, 64, 256]
    assert model.stage4[-1].convs[0][0].out_channels == 2048 // 4


def test_convlayer_options():
    plain = ConvLayer(3, 8)
    assert plain[0].bias is None and plain[1].weight.eq(1).all() and isinstance(plain[2], nn.ReLU)
    zero = ConvLayer(8, 8, norm="batch_zero", act=None)
    assert zero[1].weight.eq(0).all() and len(zero) == 2
    no_norm = ConvLayer(8, 8, norm=None, act="mish")
    assert no_norm[0].bias is not None and isinstance(no_norm[1], nn.Mish)
    blurred = ConvLayer(8, 16, stride=2, blur=True)
    assert blurred[0].stride == (1, 1) and isinstance(blurred[-1], BlurPool)
    assert blurred(torch.rand(1, 8, 15, 15)).shape == ConvLayer(8, 16, stride=2)(
        torch.rand(1, 8, 15, 15)).shape


def test_leaderboard_options_are_wired_in():
    m = create_model("xresnet18", 10, act="mish", se=True, sa=True, blur=True, p=0.3, widen=1.5)
    kinds = {type(x) for x in m.modules()}
    assert {nn.Mish, SqueezeExcite, SimpleSelfAttention, BlurPool} <= kinds
    assert nn.ReLU not in kinds
    assert sum(isinstance(x, SimpleSelfAttention) for x in m.modules()) == 1  # last block, stage 1
    assert m.head[2].p == 0.3 and m.head[3].in_features == 768
    rx = create_model("xresnext50", 10)
    grouped = [x for x in rx.modules() if isinstance(x, nn.Conv2d) and x.groups > 1]
    assert len(grouped) == 16 and all(x.groups == 32 for x in grouped)
    assert grouped[0].in_channels == 128      # ResNeXt 32x4d: 32 groups of 4 channels


def test_blur_pool_is_a_normalised_low_pass():
    pool = BlurPool(3)
    x = torch.full((1, 3, 8, 8), 2.5)
    torch.testing.assert_close(pool(x), torch.full((1, 3, 4, 4), 2.5))   # constants pass
    assert pool.state_dict() == {}                                        # no weights to save


@pytest.mark.parametrize("name", ["simple_cnn", "resblock_cnn", "resblock2_cnn", "xresnet18"])
def test_pooled_head_works_at_any_size(name):
    """Fully convolutional: the same weights classify 128, 160 and 224 px images."""
    model = create_model(name, n_out=10).eval()
    with torch.no_grad():
        for size in (128, 160, 224):
            assert model(torch.rand(1, 3, size, size)).shape == (1, 10)


@pytest.mark.parametrize("name", list_models())
def test_every_model_small_odd_and_grayscale_inputs(name):
    # The deepest nets at a quarter width: same depths, strides and pooling, 16x less work.
    slim = {"widen": 0.25} if name in ("xresnet101", "xresnet152") else {}
    model = create_model(name, n_out=3, c_in=1, **slim)
    for size in (32, 45):
        out = model(torch.rand(2, 1, size, size))
        assert out.shape == (2, 3) and torch.isfinite(out).all()


@pytest.mark.parametrize("opts", [{}, {"se": True, "sa": True, "blur": True, "act": "mish"}])
def test_channels_last_end_to_end_matches_nchw(opts):
    torch.manual_seed(0)
    model = create_model("xresnet18", n_out=10, **opts).eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
    model = model.to(memory_format=torch.channels_last)
    formats = []
    hooks = [m.register_forward_hook(lambda _m, _i, o: formats.append(
        o.is_contiguous(memory_format=torch.channels_last))) for m in model.modules()
        if isinstance(m, nn.Conv2d) and m.kernel_size != (1, 1)]
    with torch.no_grad():
        got = model(x.contiguous(memory_format=torch.channels_last))
    for h in hooks:
        h.remove()
    assert formats and all(formats)            # no silent fall-back to NCHW inside the net
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_a_few_sgd_steps_fit_one_batch():
    torch.manual_seed(0)
    model = create_model("xresnet18", n_out=4, widen=0.5)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x, y = torch.rand(8, 3, 32, 32), torch.arange(8) % 4
    losses = []
    for _ in range(5):
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.7
