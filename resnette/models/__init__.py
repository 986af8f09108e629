"""resnette's models: the chapter's nets and XResNet, by name.

    create_model("xresnet50", n_out=10)   # or resnette.models.xresnet50(n_out=10)
    list_models()
    print(summary(model, size=128))
"""
from resnette.models.layers import (BlurPool, ConvLayer, SimpleSelfAttention, SqueezeExcite,
                                    init_cnn, pool_head)
from resnette.models.registry import create_model, list_models, register
from resnette.models.summary import Summary, summary
from resnette.models.xresnet import (ResBlock, XResNet, xresnet18, xresnet18_bottleneck,
                                     xresnet34, xresnet34_bottleneck, xresnet50, xresnet101,
                                     xresnet152, xresnext50, xse_resnext50)
from resnette.models.chapter import fully_conv_net, resblock2_cnn, resblock_cnn, simple_cnn

__all__ = [
    "BlurPool", "ConvLayer", "ResBlock", "SimpleSelfAttention", "SqueezeExcite", "Summary",
    "XResNet", "create_model", "fully_conv_net", "init_cnn", "list_models", "pool_head",
    "register", "resblock2_cnn", "resblock_cnn", "simple_cnn", "summary", "xresnet18",
    "xresnet18_bottleneck", "xresnet34", "xresnet34_bottleneck", "xresnet50", "xresnet101",
    "xresnet152", "xresnext50", "xse_resnext50",
]
