"""What a model's class list must be, wherever it is read back from (a run's classes.json,
an export's embedded classes, `learn.export()`'s learner.toml): one check, so the three
cannot drift apart.

A list of unique class names, as many human names, and per channel a finite mean and a
positive finite std (a zero std would divide every pixel by zero); with the model at hand,
exactly one name per output (a list that does not fit would label the predictions wrongly,
or fail at the first prediction with an index error).
"""
from __future__ import annotations

import math
from typing import Any


def strings(value: Any) -> bool:
    """A list of str."""
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def numbers(value: Any, n: int) -> bool:
    """A list of `n` finite numbers (bools are not numbers here)."""
    return (isinstance(value, list) and len(value) == n and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        for v in value))


def class_info(data: Any, n_out: int | None = None) -> dict:
    """`data` checked and normalised to vocab, names, mean, std, channels; ValueError saying
    what is wrong otherwise. `n_out`: the model's number of outputs, which the vocab must fit."""
    if not isinstance(data, dict):
        raise ValueError("a JSON object (a table) with 'vocab' expected, got "
                         f"{type(data).__name__}")
    vocab = data.get("vocab")
    if not strings(vocab) or not vocab:
        raise ValueError("'vocab' must be a non-empty list of class names")
    if len(set(vocab)) != len(vocab):
        raise ValueError("'vocab' names a class twice")
    if n_out is not None and len(vocab) != n_out:
        raise ValueError(f"'vocab' has {len(vocab)} class names for a model with {n_out} "
                         "outputs")
    names = data.get("names") or vocab
    if not strings(names) or len(names) != len(vocab):
        raise ValueError(f"'names' must be a list of {len(vocab)} names, one per class")
    channels = data.get("channels", 3)
    if channels not in (1, 3) or isinstance(channels, bool):
        raise ValueError(f"'channels' must be 1 or 3, got {channels!r}")
    mean, std = data.get("mean", [0.5] * channels), data.get("std", [0.5] * channels)
    if not numbers(mean, channels) or not numbers(std, channels):
        raise ValueError(f"'mean' and 'std' must be {channels} finite number(s) each")
    if any(s <= 0 for s in std):
        raise ValueError(f"'std' must be positive, got {std}: images would be divided by it")
    return {"vocab": list(vocab), "names": list(names), "mean": [float(m) for m in mean],
            "std": [float(s) for s in std], "channels": int(channels)}
