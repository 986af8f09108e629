"""Training: the Learner and its parts (schedules, optimizers, losses, metrics, checkpoints)."""
from .callbacks import (Callback, CancelBatchException, CancelEpochException, CancelFitException,
                        CancelTrainException, CancelValidException)
from .checkpoints import load_checkpoint, save_checkpoint, save_weights
from .exported import load_learner
from .interpret import ClassificationInterpretation
from .learner import Learner
from .losses import CrossEntropy, CutMix, LabelSmoothingCrossEntropy, Mixup
from .lr_find import LRFindResult, SuggestedLRs
from .metrics import accuracy, error_rate, top_k_accuracy
from .optim import SGD, Ranger, make_optimizer, param_groups
from .precision import resolve
from .schedules import Schedule
from .settings import Settings
from .stops import TrainingInterrupted

__all__ = ["Callback", "Learner", "TrainingInterrupted", "LRFindResult", "SuggestedLRs",
           "Schedule", "Settings", "CrossEntropy", "LabelSmoothingCrossEntropy", "Mixup",
           "CutMix", "accuracy", "error_rate", "top_k_accuracy", "SGD", "Ranger",
           "make_optimizer", "param_groups", "load_checkpoint", "save_checkpoint", "save_weights",
           "resolve", "ClassificationInterpretation", "load_learner", "CancelBatchException",
           "CancelTrainException", "CancelValidException", "CancelEpochException",
           "CancelFitException"]
