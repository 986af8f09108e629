"""timm's habits on resnette's model table: `num_classes`/`in_chans`, `list_models(pattern)`
with timm's fnmatch semantics, and a clear refusal of `pretrained=True`."""
import fnmatch

import pytest
import torch

from resnette.models import create_model, list_models
from resnette.utils import ResnetteError


def out_in(model: torch.nn.Module) -> tuple[int, int]:
    """(outputs, input channels), read off the model's first conv and last linear layer."""
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    return linears[-1].out_features if isinstance(linears[-1], torch.nn.Linear) else \
        linears[-1].out_channels, convs[0].in_channels


@pytest.mark.parametrize("kwargs", [{"num_classes": 7, "in_chans": 1}, {"n_out": 7, "c_in": 1},
                                    {"n_out": 7, "num_classes": 7, "in_chans": 1, "c_in": 1}])
def test_timm_names_are_aliases_of_n_out_and_c_in(kwargs):
    model = create_model("xresnet18", **kwargs)
    assert out_in(model) == (7, 1)
    assert model(torch.zeros(2, 1, 32, 32)).shape == (2, 7)


def test_the_chapter_nets_take_timm_names_too():
    model = create_model("resblock_cnn", num_classes=4, in_chans=2)
    assert model(torch.zeros(3, 2, 28, 28)).shape == (3, 4)


def test_timm_defaults_1000_classes_3_channels():
    assert out_in(create_model("xresnet18")) == (1000, 3)


@pytest.mark.parametrize("kwargs, msg", [({"n_out": 10, "num_classes": 5}, "n_out=10 and num_classes=5"),
                                         ({"c_in": 3, "in_chans": 1}, "c_in=3 and in_chans=1")])
def test_both_names_with_different_values_is_one_line(kwargs, msg):
    with pytest.raises(ResnetteError, match=msg) as e:
        create_model("xresnet18", **kwargs)
    assert "\n" not in str(e.value)


def test_pretrained_is_refused_clearly_and_false_is_accepted():
    with pytest.raises(ResnetteError, match="no pretrained weights.*from scratch") as e:
        create_model("xresnet50", num_classes=10, pretrained=True)
    assert "\n" not in str(e.value)
    assert out_in(create_model("xresnet50", num_classes=10, pretrained=False))[0] == 10
    assert list_models(pretrained=True) == []


def test_list_models_with_a_pattern_as_timm():
    names = list_models()
    assert list_models("xresnet*") == sorted(n for n in names if n.startswith("xresnet"))
    assert {"xresnet18", "xresnet152", "xresnet34_bottleneck"} <= set(list_models("xresnet*"))
    assert "xse_resnext50" not in list_models("xresnet*") and "simple_cnn" not in list_models("xresnet*")
    assert list_models("*resnext*") == ["xresnext50", "xse_resnext50"]
    assert list_models("xresnet?8") == ["xresnet18"]
    assert list_models("nothing*") == []


def test_a_list_of_patterns_is_their_union_and_exclude_filters_remove():
    both = list_models(["*_cnn", "xresnet1*"])
    assert both == sorted(set(list_models("*_cnn")) | set(list_models("xresnet1*")))
    assert both == sorted(n for n in list_models() if fnmatch.fnmatchcase(n, "*_cnn")
                          or fnmatch.fnmatchcase(n, "xresnet1*"))
    assert list_models("xresnet*", exclude_filters="*bottleneck") == \
        ["xresnet101", "xresnet152", "xresnet18", "xresnet34", "xresnet50"]
    assert list_models(exclude_filters=["xresnet*", "*resnext*"]) == \
        ["resblock2_cnn", "resblock_cnn", "simple_cnn"]


def test_patterns_are_case_sensitive_as_timm_on_posix():
    assert list_models("XRESNET*") == []
