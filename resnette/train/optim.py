"""Optimizers with fastai's defaults, and weight-decay-free groups for batchnorm and bias.

Three choices, picked by name in `Learner(opt=...)`:
- "adamw": Adam with decoupled ("true") weight decay, fastai's defaults betas (0.9, 0.99),
  eps 1e-5 (the book's Learner default). PyTorch's AdamW computes the same update, so we use it.
- "sgd": SGD with momentum and decoupled weight decay (fastai's SGD; PyTorch's adds wd to the
  gradient instead, which interacts with momentum).
- "ranger": RAdam + Lookahead, the optimizer behind the Imagenette leaderboard's 5-epoch runs.

"Momentum" in a schedule means `momentum` for SGD and beta1 for Adam and RAdam (fastai's
convention); `set_hypers` hides that difference from the training loop.
"""
from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import nn

from ..utils import ResnetteError

OPTIMIZERS = ("adamw", "sgd", "ranger")


def param_groups(model: nn.Module, wd: float) -> list[dict]:
    """Two groups: weights that get weight decay, and batchnorm/bias parameters that do not.

    Decaying a batchnorm scale or a bias towards zero only fights the normalisation (it does
    not regularise the function), so fastai leaves them out (`wd_bn_bias=False`). A parameter
    with one dimension is a bias or a norm's scale/shift in every net we build.
    """
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


class SGD(torch.optim.Optimizer):
    """SGD with momentum (no dampening) and decoupled weight decay: p -= lr * (buf + wd * p)."""

    def __init__(self, params: Iterable, lr: float = 1e-3, momentum: float = 0.9,
                 weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D102 (torch's signature)
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            lr, mom, wd = group["lr"], group["momentum"], group["weight_decay"]
            if wd:
                torch._foreach_mul_(params, 1 - lr * wd)
            grads = [p.grad for p in params]
            if mom:
                bufs = []
                for p, g in zip(params, grads):
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        state["momentum_buffer"] = torch.zeros_like(p)
                    bufs.append(state["momentum_buffer"])
                torch._foreach_mul_(bufs, mom)
                torch._foreach_add_(bufs, grads)
                grads = bufs
            torch._foreach_add_(params, grads, alpha=-lr)


class Ranger(torch.optim.Optimizer):
    """RAdam (rectified Adam) inside Lookahead: fastai's `ranger` (mom 0.95, eps 1e-6, k=6,
    alpha=0.5).

    RAdam: early on, Adam's estimate of the gradient variance rests on a handful of steps, so
    its adaptive step is unreliable; RAdam takes plain momentum steps until the variance
    estimate is trustworthy (rho > 5), then scales Adam's step by the rectification factor.
    Lookahead: every k steps, pull a slow copy of the weights halfway towards the fast ones
    and restart the fast weights from there, which damps the noise of the inner optimizer.
    """

    def __init__(self, params: Iterable, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.95, 0.99), eps: float = 1e-6,
                 weight_decay: float = 0.0, k: int = 6, alpha: float = 0.5):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      k=k, alpha=alpha))

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D102
        for group in self.param_groups:
            lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0  # a Python int: no device sync to read it
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                    state["slow"] = p.detach().clone()
                state["step"] += 1
                step = state["step"]
                if wd:
                    p.mul_(1 - lr * wd)
                g = p.grad
                state["exp_avg"].mul_(b1).add_(g, alpha=1 - b1)
                state["exp_avg_sq"].mul_(b2).addcmul_(g, g, value=1 - b2)
                debias1, debias2 = 1 - b1 ** step, 1 - b2 ** step
                r_inf = 2 / (1 - b2) - 1
                r = r_inf - 2 * step * b2 ** step / debias2
                if r > 5:
                    v = math.sqrt((r - 4) * (r - 2) * r_inf / ((r_inf - 4) * (r_inf - 2) * r))
                    denom = (state["exp_avg_sq"] / debias2).sqrt_().add_(eps)
                    p.addcdiv_(state["exp_avg"], denom, value=-lr * v / debias1)
                else:
                    p.add_(state["exp_avg"], alpha=-lr / debias1)
                if step % group["k"] == 0:
                    state["slow"].add_(p - state["slow"], alpha=group["alpha"])
                    p.copy_(state["slow"])


def make_optimizer(name: str, model: nn.Module, lr: float, wd: float) -> torch.optim.Optimizer:
    """The optimizer called `name`, over `param_groups(model, wd)`, with fastai's defaults."""
    groups = param_groups(model, wd)
    if name == "adamw":
        # The fused kernel updates every tensor in one pass: on a GPU one launch (the step is
        # launch-bound at bs 128, issue 13); on a CPU xresnet18's step takes 7 ms instead of
        # foreach's 33 ms (2 cores), a tenth of a 64 px training step. Other devices: foreach.
        fused = all(p.device.type in ("cpu", "cuda") for p in model.parameters())
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.99), eps=1e-5, weight_decay=wd,
                                 **({"fused": True} if fused else {"foreach": True}))
    if name == "sgd":
        return SGD(groups, lr=lr, momentum=0.9, weight_decay=wd)
    if name == "ranger":
        return Ranger(groups, lr=lr, weight_decay=wd)
    raise ResnetteError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")


def set_hypers(opt: torch.optim.Optimizer, lr: float, mom: float | None) -> None:
    """Set the learning rate (and momentum, i.e. SGD's momentum or Adam's beta1) of every group."""
    for g in opt.param_groups:
        g["lr"] = lr
        if mom is not None:
            if "betas" in g:
                g["betas"] = (mom, g["betas"][1])
            else:
                g["momentum"] = mom


def get_mom(opt: torch.optim.Optimizer) -> float:
    """The momentum (or beta1) of the first group, for the recorder."""
    g = opt.param_groups[0]
    return g["betas"][0] if "betas" in g else g.get("momentum", 0.0)
