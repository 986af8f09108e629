"""An exponential moving average (EMA) of the weights, for validation and for the final model.

Late in training the weights jitter around a good point; their running average sits nearer
its centre and usually validates better. We average every floating-point tensor of the state
(weights and batchnorm statistics alike, as timm's ModelEmaV2 does) and copy integer buffers.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from ..utils import ResnetteError


class EMA:
    """Keeps `module`, a frozen copy of the model, at decay*ema + (1-decay)*weights after each
    step."""

    def __init__(self, model: nn.Module, decay: float = 0.999):
        if not 0.0 < decay < 1.0:
            raise ResnetteError(f"ema decay must be between 0 and 1 (got {decay}); try 0.999")
        self.decay = decay
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One averaging step; lerp_ on lists of tensors is a handful of kernels, not one per
        tensor."""
        src = model.state_dict()
        dst = self.module.state_dict()
        floats_d, floats_s = [], []
        for k, d in dst.items():
            s = src[k]
            if d.is_floating_point():
                floats_d.append(d)
                floats_s.append(s.detach())
            else:
                d.copy_(s)
        torch._foreach_lerp_(floats_d, floats_s, 1.0 - self.decay)

    def state_dict(self) -> dict:
        return self.module.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state)
