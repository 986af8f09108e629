"""resnette: train residual networks for image classification from scratch, fast.

`import resnette` is cheap (no torch): `resnette.data`, `resnette.models`, `resnette.Learner`
and `resnette.ResnetteError` are imported on first use (PEP 562's module `__getattr__`), so the
command line pays only for the command it runs (`resnette --version` starts in a blink).
"""
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version as _version
from typing import Any

try:
    __version__ = _version("resnette")   # one source of truth: pyproject's version
except PackageNotFoundError:             # imported from a source tree that was never installed
    __version__ = "0+unknown"

# public name -> (module, attribute or None for the module itself)
_LAZY = {"data": ("resnette.data", None), "models": ("resnette.models", None),
         "Learner": ("resnette.train", "Learner"), "ResnetteError": ("resnette.utils", "ResnetteError"),
         "ClassificationInterpretation": ("resnette.train", "ClassificationInterpretation"),
         "load_learner": ("resnette.train", "load_learner")}

__all__ = ["Learner", "ResnetteError", "data", "models", "ClassificationInterpretation",
           "load_learner"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'resnette' has no attribute {name!r}")
    module, attr = _LAZY[name]
    value = import_module(module) if attr is None else getattr(import_module(module), attr)
    globals()[name] = value   # cached: the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
