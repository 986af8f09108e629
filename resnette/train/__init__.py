"""Training: the Learner and its parts (schedules, optimizers, losses, metrics, checkpoints)."""
from .checkpoints import load_checkpoint, save_checkpoint, save_weights
from .learner import Learner, TrainingInterrupted
from .losses import CrossEntropy, CutMix, LabelSmoothingCrossEntropy, Mixup
from .lr_find import LRFindResult
from .metrics import accuracy, error_rate, top_k_accuracy
from .optim import SGD, Ranger, make_optimizer, param_groups
from .schedules import Schedule

__all__ = ["Learner", "TrainingInterrupted", "LRFindResult", "Schedule", "CrossEntropy",
           "LabelSmoothingCrossEntropy", "Mixup", "CutMix", "accuracy", "error_rate",
           "top_k_accuracy", "SGD", "Ranger", "make_optimizer", "param_groups",
           "load_checkpoint", "save_checkpoint", "save_weights"]
