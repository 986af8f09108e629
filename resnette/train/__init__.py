"""Training: the Learner and its parts (schedules, optimizers, losses, metrics, checkpoints)."""
from .callbacks import Callback
from .checkpoints import load_checkpoint, save_checkpoint, save_weights
from .learner import Learner
from .losses import CrossEntropy, CutMix, LabelSmoothingCrossEntropy, Mixup
from .lr_find import LRFindResult
from .metrics import accuracy, error_rate, top_k_accuracy
from .optim import SGD, Ranger, make_optimizer, param_groups
from .precision import resolve
from .schedules import Schedule
from .settings import Settings
from .stops import TrainingInterrupted

__all__ = ["Callback", "Learner", "TrainingInterrupted", "LRFindResult", "Schedule", "Settings",
           "CrossEntropy", "LabelSmoothingCrossEntropy", "Mixup", "CutMix", "accuracy",
           "error_rate", "top_k_accuracy", "SGD", "Ranger", "make_optimizer", "param_groups",
           "load_checkpoint", "save_checkpoint", "save_weights", "resolve"]
