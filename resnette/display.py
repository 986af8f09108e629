"""How numbers are shown to people: one rule for the console table, `resnette evaluate`, the
HTML report and everything that reads metrics.csv back.

    counts (epoch, images)  as integers         3, 9469
    times                   as mm:ss (fastai)   00:36, 1:02:05 past an hour
    rates (lr, wd)          in scientific form  3.00e-03
    measured numbers        with 6 decimals     0.912345 (losses, accuracies: fastai's table)
    settings                as typed            0.4, 128, true
  and in sentences and summary tables:
    fractions               as percent          91.2%  (`percent`)
    short durations         in seconds          4.2 s, 37 s  (`seconds`)
    sizes in bytes          binary units        512.0 MiB, 1.50 GiB  (`size`: never GB and
                                                GiB in one message)
    the LR finder's picks   one wording         valley 1.00e-03, steepest ..., minimum/10 ...

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


def percent(fraction: float | None, digits: int = 1) -> str:
    """0.912 -> "91.2%"; None (not measured) -> ""."""
    return "" if fraction is None else f"{100 * fraction:.{digits}f}%"


def seconds(value: float | None) -> str:
    """A short duration in seconds: one decimal under 10 s ("4.2 s"), whole seconds above
    ("37 s"); None -> "". Epoch times in tables use `format_time` (mm:ss) instead."""
    if value is None:
        return ""
    return f"{value:.0f} s" if value >= 10 else f"{value:.1f} s"


def size(n_bytes: float) -> str:
    """Bytes in binary units, GiB from 1 GiB down to MiB below it: "1.50 GiB", "512.0 MiB"."""
    return f"{n_bytes / 2**30:.2f} GiB" if n_bytes >= 2**30 else f"{n_bytes / 2**20:.1f} MiB"


def lr_suggestions(valley: float, steepest: float, minimum: float) -> str:
    """The LR finder's suggestions, in the one wording `resnette train --lr-find` and
    `resnette lr-find` print: rates in the table's scientific form."""
    picks = {"valley": valley, "steepest": steepest, "minimum/10": minimum}
    return "suggested learning rates: " + ", ".join(f"{name} {show('lr', lr)}"
                                                    for name, lr in picks.items())


# The look of resnette's HTML pages (report.html, `resnette runs html`): one style, so the
# pages a user opens side by side read alike.
PAGE_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .5em 0 1.5em; font-size: .9em; }
td, th { border: 1px solid #ccc; padding: .25em .6em; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
figure { margin: 1em 0; } img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #666; font-size: .9em; }
"""
