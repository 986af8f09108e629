"""Every named architecture, timm style: a two-line function that only chooses arguments,
registered under its name so `create_model("xresnet50", ...)` and the command line share one
source of truth.

The table is filled once, when `resnette.models` is imported (the model files decorate their
named functions); after that it is only read.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from fnmatch import fnmatchcase
from typing import Any

from torch import nn

from resnette.utils import ResnetteError

ModelFn = Callable[..., nn.Module]
_MODELS: dict[str, ModelFn] = {}


def register(fn: ModelFn) -> ModelFn:
    """Add `fn` to the table under its own name (a name may be registered once)."""
    if fn.__name__ in _MODELS:
        raise ValueError(f"model {fn.__name__!r} is registered twice")
    _MODELS[fn.__name__] = fn
    return fn


def list_models(filter: str | Sequence[str] = "", exclude_filters: str | Sequence[str] = "",
                pretrained: bool = False) -> list[str]:
    """The registered architecture names, sorted; timm's `list_models` filters.

    `filter` is an fnmatch pattern (`"xresnet*"`, `"*resnext*"`) or a list of them (a name
    matching any is listed); `exclude_filters` then removes names matching any of its
    patterns. Matching is case-sensitive, as timm's is on Linux and macOS (`fnmatchcase`, so
    it is the same on every platform). `pretrained=True` lists the models with pretrained
    weights, which is none: resnette trains from scratch.
    """
    names = set(_MODELS)
    if filter:
        names = {n for n in names if _matches(n, filter)}
    if exclude_filters:
        names = {n for n in names if not _matches(n, exclude_filters)}
    return [] if pretrained else sorted(names)


def _matches(name: str, patterns: str | Sequence[str]) -> bool:
    if isinstance(patterns, str):
        patterns = [patterns]
    return any(fnmatchcase(name, p) for p in patterns)


def create_model(name: str, n_out: int | None = None, c_in: int | None = None, *,
                 num_classes: int | None = None, in_chans: int | None = None,
                 pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """Build the architecture `name` with `n_out` outputs for `c_in`-channel images.

    timm's names work too: `num_classes` = `n_out`, `in_chans` = `c_in` (giving both names
    with different values is an error), and `pretrained=False`. As in timm, `n_out` defaults
    to 1000 (ImageNet's classes) and `c_in` to 3. `kwargs` go to the architecture (e.g.
    `se=True`, `act="mish"`, `p=0.2`). Bad input gives a one-line `ResnetteError` that says
    what the valid choices are.
    """
    if name not in _MODELS:
        raise ResnetteError(f"unknown architecture {name!r}; choose one of: {', '.join(list_models())}")
    if pretrained:
        raise ResnetteError(f"there are no pretrained weights for {name!r}: resnette trains from "
                            "scratch; drop pretrained=True (or start from your own run with "
                            "--init-from)")
    n_out = _alias("n_out", n_out, "num_classes", num_classes, 1000)
    c_in = _alias("c_in", c_in, "in_chans", in_chans, 3)
    if not isinstance(n_out, int) or n_out < 1:
        raise ResnetteError(f"n_out must be a positive number of classes, got {n_out!r}")
    if not isinstance(c_in, int) or c_in < 1:
        raise ResnetteError(f"c_in must be a positive number of image channels, got {c_in!r}")
    try:
        model = _MODELS[name](n_out=n_out, c_in=c_in, **kwargs)
    except TypeError as e:
        # Only the "unexpected keyword" kind is the user's doing; anything else is our bug.
        if "unexpected keyword argument" not in str(e):
            raise
        raise ResnetteError(f"architecture {name!r} does not take that option ({e}); "
                            "check the spelling of the model options") from None
    # how it was made, so `learn.export()` can record it and `load_learner` rebuild it
    model.resnette_arch = {"name": name, "n_out": n_out, "c_in": c_in, **kwargs}
    return model


def _alias(ours: str, value: Any, timms: str, alias: Any, default: int) -> Any:
    """One value from fastai's name and timm's name for the same argument."""
    if value is not None and alias is not None and value != alias:
        raise ResnetteError(f"{ours}={value!r} and {timms}={alias!r} disagree; they are the same "
                            "setting (timm's name and fastai's), give one")
    return value if value is not None else alias if alias is not None else default
