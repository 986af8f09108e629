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

Names (class names, run folders, paths, config values) come from outside and are shown by one
rule per medium: `term` for the terminal (control characters and bidi overrides as visible
escapes, so no name can move the cursor, ring the bell, split a row or reverse a line),
`to_json` for JSON (always valid: no NaN/Infinity tokens, dates as ISO strings); the HTML
pages escape with `html.escape` over `term`, and resnette.plots draws text as text (no
mathtext).
"""
from __future__ import annotations

import datetime
import json
import math
from typing import Any

COUNTS = frozenset({"epoch", "epochs", "n", "images", "batch", "size", "presize", "bs", "seed"})
TIMES = frozenset({"time"})
RATES = frozenset({"lr", "wd", "valley", "steepest", "minimum"})


def format_time(seconds: float) -> str:
    """mm:ss as fastai prints it (h:mm:ss past an hour); a time that is not a number (a
    damaged metrics.csv's `inf`) as itself."""
    if not math.isfinite(seconds):
        return str(seconds)
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
    if not math.isfinite(value):   # inf, -inf: shown as such, never an OverflowError
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


# --------------------------------------------------------------------------- names shown

# Characters that act on a terminal or reorder or break a line instead of being shown: C0
# controls, DEL, C1 controls, the line and paragraph separators (U+2028, U+2029: a line break to
# str.splitlines and many editors), and the bidirectional marks, embeddings, overrides and
# isolates (an RLO, U+202E, shows `gpj.exe` as `exe.jpg`). Each is shown as an escape a reader
# can type back.
_BIDI = frozenset(map(chr, (0x061C, 0x200E, 0x200F, 0x2028, 0x2029, *range(0x202A, 0x202F),
                            *range(0x2066, 0x206A))))
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(ch: str) -> str:
    code = ord(ch)
    if ch in _NAMED:
        return _NAMED[ch]
    if 0xDC80 <= code <= 0xDCFF:     # a byte of a file name that is not UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x20 or 0x7F <= code <= 0x9F:
        return f"\\x{code:02x}"
    if ch in _BIDI or 0xD800 <= code <= 0xDFFF:   # bidi controls; a lone surrogate
        return f"\\u{code:04x}"
    return ch


def has_controls(text: str) -> bool:
    """Whether `text` holds a control character or a bidi control (what `term` escapes, but
    the bytes of a name that is not UTF-8): such a name is refused where resnette makes one."""
    return any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F or ch in _BIDI for ch in text)


def _unsafe(ch: str) -> bool:
    code = ord(ch)
    return code < 0x20 or 0x7F <= code <= 0x9F or ch in _BIDI or 0xD800 <= code <= 0xDFFF


def term(text: Any, raw_bytes: bool = False) -> str:
    """`text` as one line of plain characters for a terminal (or a plot, a table cell, an HTML
    page): ESC as `\\x1b`, a newline as `\\n`, U+202E as `\\u202e`, a non-UTF-8 byte of a file
    name as `\\xff`; everything else, CJK and accents included, as it is.

    `raw_bytes`: for a path in a command's results on stdout (predict's first column, `exported
    PATH`), which a script reads back: its non-UTF-8 bytes 0xA0-0xFF stay raw (stdout writes
    them as they were, as `ls` does in a pipe); 0x80-0x9F, 8-bit control codes, are escaped."""
    text = str(text)
    kept = (lambda ch: 0xDCA0 <= ord(ch) <= 0xDCFF) if raw_bytes else (lambda ch: False)
    if not any(_unsafe(ch) and not kept(ch) for ch in text):   # the common case
        return text
    return "".join(_escape(ch) if _unsafe(ch) and not kept(ch) else ch for ch in text)


def warning_line(message: Any) -> str:
    """A Python warning as the CLI shows it: `warning: <message>`, one line, its control
    characters escaped, without the source file and code line Python would add (the user ran
    `resnette`, not one of its modules)."""
    text = str(message)
    return "warning: " + term(text[len("warning: "):] if text.startswith("warning: ") else text)


def _plain(value: Any) -> Any:
    """`value` with what JSON cannot hold made JSON: NaN and infinities as null (not measured
    or not a number), dates and times as ISO strings, tuples and sets as lists, paths and
    other objects as their text."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    if isinstance(value, (datetime.date, datetime.time)):   # datetime is a date
        return value.isoformat()
    if hasattr(value, "item") and callable(value.item):     # a numpy/torch scalar
        return _plain(value.item())
    return str(value)


def to_json(value: Any, indent: int | None = 1) -> str:
    """The one JSON writer for what resnette emits (`--json` output, evaluation.json, ...):
    always valid JSON (`allow_nan=False` after NaN/inf became null, dates ISO strings), so
    any JSON reader takes it."""
    return json.dumps(_plain(value), indent=indent, allow_nan=False)
