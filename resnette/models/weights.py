"""What weights read from a file must be before they go into a model: checked for their
values, not only their names and shapes.

`load_state_dict` copies whatever it is given into the model's own tensors, casting on the
way: int64 weights become floats silently, complex ones lose their imaginary part with a
warning, and NaN or 1e30 load without a word. Training then ends many batches later with
"loss became NaN; lower the learning rate", which blames the wrong thing. So every path that
loads weights from outside (`--init-from`, `--resume`, `load_learner`, `learn.load`, and the
commands that rebuild a trained model) passes the tensors through `check_weights` first, and
a bad file is refused in one line that names it.

The rules, for each tensor the model has under the same key:
- the model's tensor is floating point (parameters; buffers such as BatchNorm's running mean
  and variance): the file's must be real floating point (float16/bfloat16/float32/float64,
  not integer, bool or complex), every value finite, and |value| <= MAX_ABS_WEIGHT;
- the model's tensor is an integer (BatchNorm's `num_batches_tracked`, a count): the file's
  must be an integer too, and not negative.

MAX_ABS_WEIGHT = 1e6: trained weights of a batch-normalised net sit far below 1 (weight decay
keeps them there) and BatchNorm's running variances of normalised images stay within a few
hundred; a value past a million is garbage or an attack, and in float32 a few of them
multiplied through the net overflow to inf (1e30 squared already does).
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from resnette.utils import ResnetteError

MAX_ABS_WEIGHT = 1e6

ADVICE = "these are not a trained model's weights; load another file or train again"



class BadWeights(ResnetteError):
    """Weights holding what no model may (NaN, inf, huge, not real floats): the weights file is
    at fault, never the config beside it, so callers that blame a run's files let it through."""

def check_weights(weights: Mapping[str, object], own: Mapping[str, torch.Tensor] | None,
                  source: str) -> None:
    """Refuse (one line naming `source`) the first tensor of `weights` that is not what the
    model's tensor of the same name (`own`, its state dict) must hold. Keys the model does not
    have are left to the caller's name-and-shape check. Without a model (`own` None, e.g. a
    checkpoint checked before its run is touched) each tensor is judged by its own type: an
    integer one is taken for a count, any other must be real floating point and pass the
    value rules; the model's check comes again when the weights are loaded."""
    for key, value in weights.items():
        if own is None or key in own:
            why = _wrong(value, None if own is None else own[key])
            if why:
                raise BadWeights(f"refusing the weights in {source}: {key} {why}; {ADVICE}")


def _wrong(value: object, mine: torch.Tensor | None) -> str | None:
    """Why `value` cannot stand in for the model's tensor `mine`, or None when it can."""
    if not isinstance(value, torch.Tensor):
        return f"is a {type(value).__name__}, not a tensor"
    kind = str(value.dtype).removeprefix("torch.")
    counts = (not mine.is_floating_point() if mine is not None else
              not (value.is_floating_point() or value.is_complex() or value.dtype == torch.bool))
    if counts:
        if value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
            return f"is {kind} where the model counts in integers"
        if value.numel() and bool((value < 0).any()):
            return "is a negative count"
        return None
    if not value.is_floating_point():
        return f"is {kind}, not real floating point"
    lo, hi = _range(value.detach())
    if math.isnan(lo) or math.isnan(hi):
        return "holds NaN"
    if math.isinf(lo) or math.isinf(hi):
        return "holds an infinite value"
    biggest = max(-lo, hi)
    if biggest > MAX_ABS_WEIGHT:
        return (f"holds {biggest:.3g}, beyond the {MAX_ABS_WEIGHT:.0e} any trained weight "
                "stays within")
    return None


def _range(value: torch.Tensor) -> tuple[float, float]:
    """(min, max) in one pass, NaN when any value is NaN: an xresnet50's 25 M weights in a
    fraction of a second (isfinite plus abs().max() took several times as long). Types that
    aminmax does not handle (float8) are widened first. An empty tensor is (0, 0)."""
    if value.numel() == 0:
        return 0.0, 0.0
    try:
        lo, hi = torch.aminmax(value)
    except (RuntimeError, NotImplementedError):
        lo, hi = torch.aminmax(value.float())
    return float(lo), float(hi)


def check_finite_state(state: object, source: str, what: str) -> None:
    """Refuse a NaN or infinite value anywhere in `state` (nested dicts and lists of tensors
    and numbers: an optimizer's momenta, a scaler's scale), which would turn the first step
    after loading into NaN weights. No magnitude bound here: such states are not weights."""
    stack = [state]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, torch.Tensor) and (item.is_floating_point() or item.is_complex()):
            finite = (item.numel() == 0 or bool(torch.isfinite(item).all()) if item.is_complex()
                      else all(math.isfinite(v) for v in _range(item.detach())))
            if not finite:
                raise BadWeights(f"refusing {source}: its {what} holds NaN or infinite values; "
                                    "resume from another checkpoint or start the run again")
        elif isinstance(item, float) and not math.isfinite(item):
            raise BadWeights(f"refusing {source}: its {what} holds NaN or infinite values; "
                                "resume from another checkpoint or start the run again")
