"""resnette: train residual networks for image classification from scratch, fast."""
from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("resnette")   # one source of truth: pyproject's version
except PackageNotFoundError:             # imported from a source tree that was never installed
    __version__ = "0+unknown"
from . import data, models
from .train import Learner
from .utils import ResnetteError

__all__ = ["Learner", "ResnetteError", "data", "models"]
