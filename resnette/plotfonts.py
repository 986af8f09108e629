"""Text in resnette's figures drawn as text: the one place where a figure's words are made
safe to draw (resnette.plots calls `as_text` before every drawing).

- never mathtext: matplotlib reads `$...$` in any text as TeX math, so a class named
  `$\\notacmd$` crashed every plot (and the background report) with a ParseException; the
  texts resnette sets (titles, labels, legends, class-name ticks) are drawn as their
  characters. Numeric tick labels keep mathtext: a log axis writes 10^-3 with it.
- control characters (ESC, newline inside a name, RTL overrides) shown escaped, as in the
  terminal (resnette.display.term); a figure's own line breaks (a title's second line) stay.
- glyphs the default font lacks (CJK, ...): drawn with an installed font that has them (found
  by its character map), else one warning naming the font to install, instead of
  matplotlib's warning per missing character.
"""
from __future__ import annotations

import functools
import warnings
from typing import TYPE_CHECKING, Iterable

from resnette.display import term

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from matplotlib.text import Text

# what to install where no font has the glyphs (Debian/Ubuntu's package; others name it alike)
FONT_PACKAGE = "fonts-noto-cjk"
# matplotlib's own last-resort font maps every character to a box: it is no font that "has" one
NOT_FALLBACKS = frozenset({"Last Resort High-Efficiency"})


def as_text(fig: "Figure") -> None:
    """Make every text resnette set in `fig` draw as the characters it holds (module doc)."""
    texts = [t for t in _set_texts(fig) if t.get_text()]
    for t in texts:
        t.set_parse_math(False)
        t.set_text("\n".join(term(line) for line in t.get_text().split("\n")))
    _fit_fonts(texts)


def _set_texts(fig: "Figure") -> list["Text"]:
    """The figure's texts but the numeric tick labels (which matplotlib's number formatters
    write, math and all: 10^-3 on a log axis). Named ticks (labels given as text: the confusion
    matrix's class names) are all made now, so that each is set here and none is made later,
    at drawing time, with the defaults."""
    from matplotlib.text import Text
    from matplotlib.ticker import LogFormatter, ScalarFormatter

    numeric: set[int] = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            if not isinstance(axis.get_major_formatter(), (ScalarFormatter, LogFormatter)):
                axis.get_major_ticks(len(axis.get_majorticklocs()))
            else:
                numeric.update(id(t) for tick in axis.get_major_ticks() + axis.get_minor_ticks()
                               for t in (tick.label1, tick.label2))
            numeric.add(id(axis.offsetText))
    return [t for t in fig.findobj(Text) if id(t) not in numeric]


def _fit_fonts(texts: Iterable["Text"]) -> None:
    """Give each text whose characters the default font lacks a fallback font that has them;
    where none has them, warn (`warn_no_font`: once per process)."""
    from matplotlib import font_manager

    missing_anywhere: set[str] = set()
    for t in texts:
        family = t.get_fontfamily()
        path = font_manager.findfont(t.get_fontproperties())
        lacking = {ch for ch in set(t.get_text()) - {"\n"} if ord(ch) not in _charmap(path)}
        if not lacking:
            continue
        fallback = _font_with(frozenset(lacking))
        if fallback is None:
            missing_anywhere |= lacking
        else:
            t.set_fontfamily([*family, fallback])
    if missing_anywhere:
        warn_no_font()


@functools.cache
def warn_no_font() -> None:
    """The one warning, once per process (a report draws four plots with the same names)."""
    warnings.warn("no installed font has the characters of some names (CJK or another script), "
                  "so the plots draw them as boxes: install a font that has them (on "
                  f"Debian/Ubuntu: apt install {FONT_PACKAGE})", stacklevel=4)


@functools.lru_cache(maxsize=None)
def _charmap(path: str) -> frozenset[int]:
    """The code points a font file has glyphs for (read once per file)."""
    from matplotlib.ft2font import FT2Font
    try:
        return frozenset(FT2Font(path).get_charmap())
    except (OSError, RuntimeError, ValueError):
        return frozenset()


@functools.lru_cache(maxsize=None)
def _font_with(chars: frozenset[str]) -> str | None:
    """The family name of an installed font that has every one of `chars`, else None. The
    family is checked by the file matplotlib picks for it (a bold face of a family may have
    glyphs its regular face, the one drawn, lacks)."""
    from matplotlib import font_manager
    codes = {ord(c) for c in chars}
    for family in sorted({e.name for e in font_manager.fontManager.ttflist} - NOT_FALLBACKS):
        try:
            path = font_manager.findfont(font_manager.FontProperties(family=family),
                                         fallback_to_default=False)
        except ValueError:
            continue
        if codes <= _charmap(path):
            return family
    return None
