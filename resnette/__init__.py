"""resnette: train residual networks for image classification from scratch, fast."""
from . import data, models
from .train import Learner
from .utils import ResnetteError

__all__ = ["Learner", "ResnetteError", "data", "models"]
