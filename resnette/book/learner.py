"""fastai's `Learner(dls, model, loss_func=, metrics=, cbs=)` on resnette's Learner, and the
chapter's training extras (MixUp, CutMix callbacks; label smoothing; accuracy).

Everything after construction (fit_one_cycle, lr_find, to_fp16, the notebook table and bar,
get_preds, ...) is resnette's Learner itself: this class only translates fastai's arguments.
fastai's defaults are resnette's: Adam with decoupled weight decay 0.01 (none on batchnorm and
bias), betas (0.9, 0.99), eps 1e-5, lr 1e-3, one-cycle momentums (0.95, 0.85, 0.95).
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

from torch import nn

from resnette.train import Learner as _Learner
from resnette.train.callbacks import Callback
from resnette.train.losses import CutMix as _CutMix, Mixup as _Mixup
from resnette.utils import ResnetteError

_OPTS = {"Adam": "adamw", "SGD": "sgd", "ranger": "ranger"}


class MixUp(Callback):
    """fastai's `cbs=MixUp(alpha)`: resnette's Mixup (per image lam ~ Beta(alpha, alpha), folded
    to max(lam, 1 - lam); the loss blends both targets). resnette.book's Learner turns it into
    `mixup=alpha`; given to another Learner it says so instead of silently doing nothing."""

    kind, setting = _Mixup, "mixup"

    def __init__(self, alpha: float = 0.4) -> None:
        self.alpha = alpha

    def before_fit(self, learn: Any) -> None:
        if not any(isinstance(m, self.kind) for m in getattr(learn, "mixers", [])):
            raise ResnetteError(f"{type(self).__name__}() works with resnette.book's Learner; with "
                                f"resnette.Learner pass {self.setting}={self.alpha}")


class CutMix(MixUp):
    """fastai's `cbs=CutMix(alpha)`: resnette's CutMix (a box of area 1 - lam, lam ~ Beta(alpha,
    alpha), pasted from another image; lam recomputed from the clipped box)."""

    kind, setting = _CutMix, "cutmix"

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = alpha


class Learner(_Learner):
    """fastai's Learner signature on resnette's Learner (module docstring)."""

    def __init__(self, dls: Any, model: nn.Module, loss_func: Callable | None = None,
                 opt_func: Any = "Adam", lr: float = 1e-3, splitter: Any = None,
                 cbs: Callback | Iterable[Callback] | None = None, metrics: Any = None,
                 path: Any = None, model_dir: str = "models", wd: float | None = None,
                 wd_bn_bias: bool = False, train_bn: bool = True,
                 moms: tuple[float, float, float] = (0.95, 0.85, 0.95), default_cbs: bool = True,
                 **settings: Any) -> None:
        opt = _OPTS.get(getattr(opt_func, "__name__", opt_func))
        refused = {"opt_func": opt is None, "splitter": splitter is not None,
                   "path": path is not None,
                   "model_dir": model_dir != "models", "wd_bn_bias": wd_bn_bias,
                   "train_bn": not train_bn, "default_cbs": not default_cbs}
        bad = next((k for k, v in refused.items() if v), None)
        if bad:
            raise ResnetteError(f"Learner({bad}=...) is not in resnette.book; it takes loss_func, "
                                "metrics, cbs, lr, wd, moms and opt_func Adam, SGD or ranger")
        cbs = [cbs] if isinstance(cbs, Callback) else list(cbs or [])
        for cb in cbs:
            if isinstance(cb, MixUp):   # CutMix too
                settings[cb.setting] = cb.alpha
        super().__init__(dls, model, loss_func=loss_func, metrics=metrics, cbs=cbs, opt=opt, lr=lr,
                         wd=0.01 if wd is None else wd, moms=tuple(moms), **settings)
