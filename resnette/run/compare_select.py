"""Choosing among runs: `--where` filters, `--sort`, and what differs between two runs.

A test is `KEY OP VALUE` on a table column (`acc`, `time`, `state`, ...) or any config key
(`lr`, `mixup`, ...): numbers compare as numbers, text with shell wildcards. A column is tested
on the value as the table shows it: `date=2026-12-06*`, `time>01:30` (mm:ss, or seconds),
`epochs=3/5` (done/planned, or `epochs>=3` on the epochs done). A test that cannot match
anything (`acc=>0.5`, `acc>high`) is a one-line error naming the operators, never "no runs".
"""
from __future__ import annotations

import difflib
import fnmatch
from typing import Any, Iterable

from resnette.display import format_time
from resnette.measures import ACCURACY, TOP_K, TRAIN_LOSS, VALID_LOSS
from resnette.run.compare import COLUMNS, RunSummary, finite, when
from resnette.utils import ResnetteError

OPERATORS = (">=", "<=", "!=", "=", ">", "<")
_NUMERIC = {k for k, attr in COLUMNS.items() if attr in ("size", ACCURACY, TOP_K, VALID_LOSS,
                                                          TRAIN_LOSS)}   # columns that are numbers
_BEST_FIRST = {ACCURACY, TOP_K}   # sorted high to low; everything else low to high


def parse_where(text: str) -> tuple[str, str, str]:
    """`arch=xresnet18`, `acc>=0.9`, `data!=digits` -> (key, operator, value)."""
    for op in OPERATORS:
        key, sep, value = text.partition(op)
        if sep and key.strip():
            key, value = key.strip(), value.strip()
            if value[:1] in ("=", "<", ">", "!"):   # `acc=>0.5`: a typo, not a value
                raise ResnetteError(f"--where {text!r}: the value {value!r} starts with an "
                                    f"operator; write KEY OP VALUE with one of "
                                    f"{' '.join(OPERATORS)}, e.g. --where {key}>=0.5")
            _check_value(text, key, op, value)
            return key, op, value
    raise ResnetteError(f"--where {text!r} is not KEY=VALUE (or !=, <, <=, >, >=), e.g. "
                        "--where arch=xresnet18")


def _check_value(text: str, key: str, op: str, value: str) -> None:
    """A column's test must be one the shown values can pass (else it is a typo)."""
    if op in ("=", "!="):   # equal to the shown text (wildcards), or to a number
        return
    if key in _NUMERIC and _as_number(value) is None:
        raise ResnetteError(f"--where {text!r}: {key} is a number; compare it with a number, "
                            f"e.g. --where {key}{op}0.9")
    if key == "time" and _seconds(value) is None:
        raise ResnetteError(f"--where {text!r}: time is shown as mm:ss (or h:mm:ss); give "
                            f"one, or seconds, e.g. --where time{op}01:30")
    if key == "epochs" and _as_number(value) is None:
        raise ResnetteError(f"--where {text!r}: {op} compares the epochs done with a number "
                            f"(epochs{op}3); epochs=3/5 matches done/planned as shown")


def _seconds(text: str) -> float | None:
    """`01:30` -> 90, `1:02:05` -> 3725, `75` -> 75 (as the table shows times)."""
    parts = text.split(":")
    if len(parts) > 3 or any(not p.strip().isdigit() for p in parts[:-1]):
        return None
    last = _as_number(parts[-1])
    if last is None:
        return None
    total = 0.0
    for p in parts[:-1]:
        total = total * 60 + int(p)
    return total * 60 + last if len(parts) > 1 else last


def _shown(s: RunSummary, key: str, op: str, wanted: str) -> tuple[Any, str]:
    """The run's value of a column as the table shows it, and the wanted value to compare
    it with: the date as text, the time in seconds, the epochs as done/planned."""
    value = s.value(key)
    if key == "date":
        return (when(value) if value is not None else None), wanted
    if key == "time" and value is not None:
        if op in ("=", "!=") and _as_number(wanted) is None:
            return format_time(value), wanted
        return value, str(_seconds(wanted))
    if key == "epochs" and _as_number(wanted) is None:
        return (f"{s.done}/{s.planned}" if s.planned is not None else str(s.done)), wanted
    return value, wanted


def matches(s: RunSummary, key: str, op: str, wanted: str) -> bool:
    """Whether run `s` passes one --where test: numbers compare as numbers, text with shell
    wildcards (`data=imagenette*`); a run without the key passes only `!=`."""
    value, wanted = _shown(s, key, op, wanted)
    if value is None:
        return op == "!="
    number = _as_number(wanted)
    if finite(value) and number is not None:
        a, b = float(value), number
        return {"=": a == b, "!=": a != b, ">": a > b, "<": a < b, ">=": a >= b,
                "<=": a <= b}[op]
    text = str(value).lower() if isinstance(value, bool) else str(value)
    if op in ("=", "!="):
        return fnmatch.fnmatchcase(text, wanted) == (op == "=")
    if key == "date":   # shown as YYYY-MM-DD HH:MM: its text orders as the dates do
        return {">": text > wanted, "<": text < wanted, ">=": text >= wanted,
                "<=": text <= wanted}[op]
    return False


def _as_number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def select(runs: list[RunSummary], where: Iterable[str] = (), sort: str | None = None,
           reverse: bool = False) -> list[RunSummary]:
    """Filter by every `--where` test, then sort by a column or config key (accuracy and
    top-5 best first, the rest ascending; runs without the value last)."""
    tests = [parse_where(w) for w in where]
    _check_keys(runs, [t[0] for t in tests] + ([sort] if sort else []))
    kept = [s for s in runs if all(matches(s, *t) for t in tests)]
    if sort is None:
        return kept[::-1] if reverse else kept
    key = sort
    best_first = COLUMNS.get(key) in _BEST_FIRST
    have = [s for s in kept if s.value(key) is not None]
    missing = [s for s in kept if s.value(key) is None]
    have.sort(key=lambda s: _sort_key(s.value(key)), reverse=best_first != reverse)
    return have + missing


def _check_keys(runs: list[RunSummary], keys: list[str]) -> None:
    """A key no run has is a typo, not an empty result: say so, with the nearest key."""
    known = set(COLUMNS) | {k for s in runs for k in s.config}
    for key in keys:
        if runs and key not in known:
            near = difflib.get_close_matches(key, sorted(known), n=1)
            raise ResnetteError(f"no run has a column or setting {key!r}"
                                + (f"; did you mean {near[0]!r}?" if near else "")
                                + f" (columns: name data arch size epochs acc {TOP_K} loss time "
                                "date state; or any config key)")


def _sort_key(v: Any) -> tuple[int, Any]:
    return (0, float(v)) if finite(v) else (1, str(v))


def diff(a: RunSummary, b: RunSummary) -> tuple[list[tuple[str, Any, Any]],
                                                list[tuple[str, Any, Any, Any]]]:
    """The config keys whose values differ (key, a, b), and the metrics side by side with
    b - a (key, a, b, delta); the run's name and folder are not differences."""
    skip = {"name", "run_dir"}
    keys = sorted((set(a.config) | set(b.config)) - skip)
    config = [(k, a.config.get(k), b.config.get(k)) for k in keys
              if a.config.get(k) != b.config.get(k)]
    metrics = []
    for key in (ACCURACY, TOP_K, VALID_LOSS, TRAIN_LOSS, "wall", "done"):
        x, y = getattr(a, key), getattr(b, key)
        if x is None and y is None:
            continue
        metrics.append((key, x, y, y - x if x is not None and y is not None else None))
    return config, metrics
