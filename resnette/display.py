"""How numbers are shown to people: one rule for the console table, `resnette evaluate`, the
HTML report and everything that reads metrics.csv back.

    counts (epoch, images)  as integers         3, 9469
    times                   as mm:ss (fastai)   00:36, 1:02:05 past an hour
    rates (lr, wd)          in scientific form  3.00e-03
    measured numbers        with 6 decimals     0.912345 (losses, accuracies: fastai's table)
    settings                as typed            0.4, 128, true

Epochs are numbered from 0 everywhere (the table, metrics.csv, the report and the plots), as
fastai's table numbers them. Files keep full precision; only what people read is rounded.
"""
from __future__ import annotations

import math
from typing import Any

COUNTS = frozenset({"epoch", "epochs", "n", "images", "batch", "size", "presize", "bs", "seed"})
TIMES = frozenset({"time"})
RATES = frozenset({"lr", "wd", "valley", "steepest", "minimum"})


def format_time(seconds: float) -> str:
    """mm:ss as fastai prints it (h:mm:ss past an hour)."""
    s = int(round(seconds))
    h, m, s = s // 3600, s // 60 % 60, s % 60
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def show(key: str, value: Any) -> str:
    """A measured value of column `key` as people read it (see the module's table)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):   # not measured
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ", ".join(show(key, v) for v in value)
    if not isinstance(value, (int, float)):
        return str(value)
    if key in TIMES:
        return format_time(value)
    if isinstance(value, int) or (key in COUNTS and float(value).is_integer()):
        return str(int(value))
    if key in RATES:
        return f"{value:.2e}"
    return f"{value:.6f}"


def show_setting(key: str, value: Any) -> str:
    """A setting as the user would type it: 0.4 stays 0.4 and 0.0 reads 0, rates as 3.00e-03."""
    if isinstance(value, float) and key not in RATES and key not in TIMES:
        return f"{value:g}"
    return show(key, value)
