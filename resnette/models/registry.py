"""Every named architecture, timm style: a two-line function that only chooses arguments,
registered under its name so `create_model("xresnet50", ...)` and the command line share one
source of truth.

The table is filled once, when `resnette.models` is imported (the model files decorate their
named functions); after that it is only read.
"""
from __future__ import annotations

from typing import Any, Callable

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


def list_models() -> list[str]:
    """The registered architecture names, sorted."""
    return sorted(_MODELS)


def create_model(name: str, n_out: int, c_in: int = 3, **kwargs: Any) -> nn.Module:
    """Build the architecture `name` with `n_out` outputs for `c_in`-channel images.

    `kwargs` go to the architecture (e.g. `se=True`, `act="mish"`, `p=0.2`). Bad input gives a
    one-line `ResnetteError` that says what the valid choices are.
    """
    if name not in _MODELS:
        raise ResnetteError(f"unknown architecture {name!r}; choose one of: {', '.join(list_models())}")
    if not isinstance(n_out, int) or n_out < 1:
        raise ResnetteError(f"n_out must be a positive number of classes, got {n_out!r}")
    if not isinstance(c_in, int) or c_in < 1:
        raise ResnetteError(f"c_in must be a positive number of image channels, got {c_in!r}")
    try:
        return _MODELS[name](n_out=n_out, c_in=c_in, **kwargs)
    except TypeError as e:
        # Only the "unexpected keyword" kind is the user's doing; anything else is our bug.
        if "unexpected keyword argument" not in str(e):
            raise
        raise ResnetteError(f"architecture {name!r} does not take that option ({e}); "
                            "check the spelling of the model options") from None
